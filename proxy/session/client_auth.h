// Client authentication: the hba decision and the exchange that proves who a client is.
//
// https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP
// ClientSession::login() calls authenticate_client() after the StartupMessage and before
// AuthenticationOk. It runs on the session's executor and owns the client socket for the
// duration of the exchange (no other operation may be pending on it).
//
// Methods, as PostgreSQL runs them:
//   trust            nothing asked;
//   reject           FATAL 28000 "pgrelay hba rule N rejects connection for host ...";
//   scram-sha-256    AuthenticationSASL / SASLContinue / SASLFinal against the user's SCRAM secret
//                    (a plain secret is turned into one; an MD5 secret cannot be used);
//   md5              AuthenticationMD5Password against an MD5 or plain secret; with a SCRAM secret
//                    the client is asked for SCRAM instead, as PostgreSQL does;
//   password         the password in clear, only over TLS (rejected, 28000, otherwise);
//   cert             the verified client certificate's CN must be the user name (TLS only):
//                    no certificate -> 28000 "connection requires a valid client certificate",
//                    another CN -> 28000 "certificate authentication failed for user "X"".
// Over TLS, SCRAM offers SCRAM-SHA-256-PLUS (channel binding tls-server-end-point) first, as
// PostgreSQL does, when the certificate's hash is known.
// An unknown user (or one without a usable secret) goes through the same exchange against a fake
// secret and gets exactly what a wrong password gets: FATAL 28P01
// `password authentication failed for user "X"`. Failures are counted in AuthStore's stats and
// logged with the client's address and the real reason, which the client never sees.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/session/services.h"
#include "proxy/net/transport.h"

namespace pgrelay::proxy {

struct ClientAuthRequest {
  uint64_t client_id = 0;
  std::string_view peer;       // "address:port", for log lines
  std::string_view user;
  std::string_view database;   // as the client asked for it
  bool is_tls = false;
  bool is_unix_socket = false;          // came in on the Unix-domain socket ([[hba]] type "local")
  std::string_view address;             // the client's IP address; "" on a Unix socket
  std::string_view tls_cert_cn;         // the verified client certificate's CN; "" = none
  std::string_view tls_endpoint_hash;   // channel binding data of pgrelay's certificate; "" = no PLUS
};

struct ClientAuthResult {
  conf::AuthMethod method = conf::AuthMethod::kTrust;   // the method that let the client in
  // What the client proved, for logging in to the server as it: a plain password, or
  // forwarded_scram_password() of the keys recovered from its SCRAM proof; "" when neither.
  std::string credential;
};

// Authenticates the client on `client` for `entry` (the database entry it asked for). The Error
// is the FATAL to send it (28000, 28P01, or 08P01 for a malformed exchange); an empty sqlstate
// means the client has gone (or client_login_timeout closed it) and nothing can be sent.
// The part of authenticate_client() that needs no message from the client: the hba decision,
// and with it the whole answer for trust, cert, reject and no matching rule (counted and logged
// as authenticate_client() does). nullopt: a password exchange must follow, through
// authenticate_client(). A plain function, so a trust login costs no coroutine frame.
std::optional<Result<ClientAuthResult>> authenticate_without_exchange(Services& services, const conf::Config& config,
                                                                      const ClientAuthRequest& req);

awaitable<Result<ClientAuthResult>> authenticate_client(ClientTransport& client, Services& services,
                                                        const conf::Config& config, const conf::DatabaseEntry& entry,
                                                        const ClientAuthRequest& req);

}  // namespace pgrelay::proxy
