// SCRAM-SHA-256 server side (RFC 5802, RFC 7677) as PostgreSQL runs it, over stored secrets.
//
// https://www.postgresql.org/docs/15/sasl-authentication.html
// Pure: the caller supplies the server nonce and salts (random bytes come from proxy/), so tests
// can replay RFC 7677. Channel binding (RFC 5802 section 6, type tls-server-end-point of RFC
// 5929) is checked against data the caller gives: proxy/ offers SCRAM-SHA-256-PLUS over TLS and
// passes its certificate's hash. Without that data a client-first-message with "p=" is an error
// while "n,," and "y,," are accepted; with it, "y,," is a downgrade and refused, as PostgreSQL does.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.h"
#include "protocol/scram.h"

namespace pgrelay::protocol {

// A role's SCRAM-SHA-256 secret as PostgreSQL stores it in pg_authid.rolpassword.
struct ScramSecret {
  int iterations = 0;
  std::string salt;         // raw bytes
  std::string stored_key;   // 32 raw bytes: H(ClientKey)
  std::string server_key;   // 32 raw bytes

  bool operator==(const ScramSecret&) const = default;
};

// PostgreSQL's stored form "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (base64
// parts). Errors (08P01) say which part is wrong.
Result<ScramSecret> parse_scram_secret(std::string_view text);
bool looks_like_scram_secret(std::string_view text);   // starts with "SCRAM-SHA-256$"

// The secret PostgreSQL would store for `password` with this salt and iteration count.
ScramSecret scram_secret_from_password(std::string_view password, std::string_view salt, int iterations);

// True when `password` is the one `secret` was made from (for cleartext password login).
bool scram_verify_password(const ScramSecret& secret, std::string_view password);

// One SCRAM-SHA-256 exchange on the server side. Use once: handle_client_first, then
// handle_client_final.
class ScramServer {
 public:
  // `channel_binding`: the tls-server-end-point data when SCRAM-SHA-256-PLUS was offered (the
  // connection is TLS), "" when it was not. `plus`: the client selected SCRAM-SHA-256-PLUS.
  explicit ScramServer(ScramSecret secret, std::string channel_binding = {}, bool plus = false);

  // The data of SASLInitialResponse ("n,,n=,r=<client nonce>") -> server-first-message
  // ("r=<client nonce><server nonce>,s=<salt>,i=<iterations>"). `server_nonce` is printable
  // ASCII without ',' (base64 of 18 random bytes, as PostgreSQL). Errors: 08P01 malformed, a
  // binding flag that contradicts the mechanism or what was offered ("y" when PLUS was), or a
  // binding type other than tls-server-end-point; 0A000 channel binding when none was offered,
  // an authorization identity ("a=") or a mandatory extension.
  Result<std::string> handle_client_first(std::string_view client_first, std::string_view server_nonce);

  // The data of SASLResponse ("c=<gs2 header>,r=<nonce>,p=<proof>") -> server-final-message
  // ("v=<server signature>"). Errors: 08P01 malformed, a nonce that is not the one of this
  // exchange, or channel binding data ("c=") that is not this connection's; 28P01 when the
  // proof is wrong (the password is).
  Result<std::string> handle_client_final(std::string_view client_final);

  // After handle_client_final succeeded: ClientKey (= ClientProof XOR ClientSignature) with the
  // secret's ServerKey, salt and iteration count, enough to log in to a server that stores the
  // same secret.
  const std::optional<ScramKeys>& keys() const { return keys_; }

 private:
  ScramSecret secret_;
  std::string channel_binding_;     // tls-server-end-point data, when offered
  bool plus_ = false;               // SCRAM-SHA-256-PLUS selected
  bool binding_used_ = false;       // the client sent "p=tls-server-end-point"
  std::string gs2_header_;          // "n,,", "y,," or "p=tls-server-end-point,,", echoed base64-encoded in "c="
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;               // client nonce + server nonce
  std::optional<ScramKeys> keys_;
};

}  // namespace pgrelay::protocol
