// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: the client side, and stored secrets.
//
// https://www.postgresql.org/docs/15/sasl-authentication.html
// Pure: the caller supplies the nonce (random bytes come from proxy/), so tests can use the
// RFC 7677 vectors. Channel binding is not offered yet ("n,," gs2 header).
#pragma once

#include <string>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::protocol {

inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";

class ScramClient {
 public:
  // `client_nonce` is printable ASCII without ',' (e.g. base64 of 18 random bytes).
  // `user` goes into "n=" (escaped); PostgreSQL ignores it, so leave it empty there. It
  // exists so the math can be checked against RFC 7677's vector, which names a user.
  ScramClient(std::string password, std::string client_nonce, std::string user = {});

  // "n,,n=<user>,r=<nonce>": PostgreSQL ignores the SCRAM user name and uses the startup user.
  std::string client_first_message() const;

  // Consumes server-first-message ("r=...,s=...,i=..."), returns client-final-message.
  // Errors (28000/08P01) when the server nonce does not extend ours, the salt is not base64,
  // or the iteration count is not a positive integer.
  Result<std::string> handle_server_first(std::string_view server_first);

  // Checks server-final-message ("v=<signature>" or "e=<error>") against the expected
  // server signature. Error 28000 when it does not match.
  Result<void> verify_server_final(std::string_view server_final) const;

 private:
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;   // "n=<user>,r=<nonce>", part of the AuthMessage
  std::string expected_server_signature_;   // raw bytes
};

// PostgreSQL's stored form: "SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>".
std::string scram_build_secret(std::string_view password, std::string_view salt, int iterations);

// Base64 (RFC 4648, with padding), used by SCRAM.
std::string base64_encode(std::string_view raw);
Result<std::string> base64_decode(std::string_view text);

}  // namespace pgrelay::protocol
