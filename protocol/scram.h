// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: the client side, and stored secrets.
//
// https://www.postgresql.org/docs/15/sasl-authentication.html
// Pure: the caller supplies the nonce (random bytes come from proxy/), so tests can use the
// RFC 7677 vectors. Channel binding (tls-server-end-point, RFC 5929) when the caller gives the
// data; "n,," otherwise. The server side is protocol/scram_server.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::protocol {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";
// The most PBKDF2 iterations pgrelay computes for a server (PostgreSQL's default is 4096): each
// costs a SHA-256 HMAC on the event loop, so a server asking for more is refused (54000).
inline constexpr int kMaxScramIterations = 1'000'000;

// What a SCRAM client needs instead of the password, for one salt and iteration count
// (RFC 5802 section 3). pgrelay recovers ClientKey from a client's verified proof and logs in
// to PostgreSQL with it (as PgBouncer does); the server's stored secret must be the same one.
struct ScramKeys {
  std::string client_key;   // 32 raw bytes
  std::string server_key;   // 32 raw bytes
  std::string salt;         // raw bytes
  int iterations = 0;

  bool operator==(const ScramKeys&) const = default;
};

// "SCRAM-SHA-256-KEYS$<iterations>:<base64 salt>$<base64 ClientKey>:<base64 ServerKey>", a
// text form that can travel where a password does. decode errors are 08P01.
std::string encode_scram_keys(const ScramKeys& keys);
Result<ScramKeys> decode_scram_keys(std::string_view text);

class ScramClient {
 public:
  // `client_nonce` is printable ASCII without ',' (e.g. base64 of 18 random bytes).
  // `user` goes into "n=" (escaped); PostgreSQL ignores it, so leave it empty there. It
  // exists so the math can be checked against RFC 7677's vector, which names a user.
  ScramClient(std::string password, std::string client_nonce, std::string user = {});
  // Proves knowledge of the password with keys instead of it. handle_server_first() then
  // requires the server's salt and iteration count to be the keys' (else 28000: the server's
  // secret is not the one the keys came from).
  ScramClient(ScramKeys keys, std::string client_nonce);

  // Before client_first_message(), over TLS: `data` is the tls-server-end-point hash of the
  // server's certificate. `use` when the server offered SCRAM-SHA-256-PLUS and that is the
  // mechanism chosen (gs2 header "p=tls-server-end-point,,"); otherwise "y,,": we could bind
  // but the server did not offer it (RFC 5802 section 6, so a server that can bind sees the
  // downgrade).
  void set_channel_binding(std::string data, bool use);

  // "n,,n=<user>,r=<nonce>" (or with the gs2 header above): PostgreSQL ignores the SCRAM user
  // name and uses the startup user.
  std::string client_first_message() const;

  // Consumes server-first-message ("r=...,s=...,i=..."), returns client-final-message.
  // Errors (28000/08P01) when the server nonce does not extend ours, the salt is not base64,
  // or the iteration count is not a positive integer; 54000 when it is over kMaxScramIterations.
  Result<std::string> handle_server_first(std::string_view server_first);

  // Checks server-final-message ("v=<signature>" or "e=<error>") against the expected
  // server signature. Error 28000 when it does not match.
  Result<void> verify_server_final(std::string_view server_final) const;

 private:
  std::string password_;
  std::optional<ScramKeys> keys_;
  std::string client_nonce_;
  std::string gs2_header_ = "n,,";
  std::string channel_binding_;     // data appended to the gs2 header in "c=" (with "p=" only)
  std::string client_first_bare_;   // "n=<user>,r=<nonce>", part of the AuthMessage
  std::string expected_server_signature_;   // raw bytes
};

// PostgreSQL's stored form: "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
std::string scram_build_secret(std::string_view password, std::string_view salt, int iterations);

// Base64 (RFC 4648, with padding), used by SCRAM.
std::string base64_encode(std::string_view raw);
Result<std::string> base64_decode(std::string_view text);

}  // namespace pgrelay::protocol
