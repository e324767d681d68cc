// Internal to protocol/: the SCRAM-SHA-256 primitives and attribute parsing shared by the client
// (scram.cc) and server (scram_server.cc) sides. RFC 5802 section 3 names them.
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"
#include "protocol/saslprep.h"
#include "protocol/sqlstate.h"

namespace pgrelay::protocol::scram_detail {

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

inline Error malformed(std::string what) {
  return {sqlstate::kProtocolViolation, "malformed SCRAM message: " + std::move(what)};
}

inline Digest hmac(const Digest& key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &len);
  return out;
}

inline Digest hmac(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &len);
  return out;
}

inline Digest sha256(const Digest& data) {
  Digest out{};
  SHA256(data.data(), data.size(), out.data());
  return out;
}

// Hi() of RFC 5802 is PBKDF2 with HMAC-SHA-256 and one output block, over the password as
// PostgreSQL prepares it: SASLprep'd, or its raw bytes when SASLprep refuses it (saslprep.h).
// Every SCRAM computation of pgrelay's goes through here, as client and as server.
inline Digest salted_password(std::string_view password, std::string_view salt, int iterations) {
  Digest out{};
  std::string prepared = saslprep_or_raw(password);
  PKCS5_PBKDF2_HMAC(prepared.data(), int(prepared.size()), reinterpret_cast<const unsigned char*>(salt.data()),
                    int(salt.size()), iterations, EVP_sha256(), int(out.size()), out.data());
  OPENSSL_cleanse(prepared.data(), prepared.size());
  return out;
}

inline std::string_view as_text(const Digest& d) { return {reinterpret_cast<const char*>(d.data()), d.size()}; }

inline Digest xor_digest(const Digest& a, const Digest& b) {
  Digest out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = a[i] ^ b[i];
  return out;
}

// Constant time: how much of a secret matched must not leak through timing.
inline bool equal_digest(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Splits "a=x,b=y,..." into attributes; values may contain '=' (base64 padding).
inline std::vector<std::string_view> split_attributes(std::string_view msg) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t comma = msg.find(',', start);
    out.push_back(msg.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

// True, with the value, when `attr` is attribute `name` ("r=...").
inline bool attribute(std::string_view attr, char name, std::string_view& value) {
  if (attr.size() < 2 || attr[0] != name || attr[1] != '=') return false;
  value = attr.substr(2);
  return true;
}

inline bool parse_iterations(std::string_view text, int& out) {
  if (text.empty() || text.size() > 10) return false;
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v <= 0 || v > INT32_MAX) return false;
  out = int(v);
  return true;
}

// RFC 5802 "printable": %x21-2B / %x2D-7E, the characters a nonce may use.
inline bool is_printable_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

}  // namespace pgrelay::protocol::scram_detail
