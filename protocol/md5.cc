// MD5 password hashing for AuthenticationMD5Password and md5 stored secrets (OpenSSL EVP).
#include "protocol/md5.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>

namespace pgrelay::protocol {

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest fails only on allocation failure or without an MD5 provider (FIPS mode).
  // An empty answer fails that one login; aborting would take every session down with it.
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1 || len != 16) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (unsigned i = 0; i < 16; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::string md5_stored_secret(std::string_view password, std::string_view user) {
  std::string in;
  in.reserve(password.size() + user.size());
  in.append(password).append(user);
  std::string hex = md5_hex(in);
  return hex.empty() ? std::string() : "md5" + hex;
}

std::string md5_password_response(std::string_view password, std::string_view user,
                                  const std::array<std::byte, 4>& salt) {
  // The inner hash is the stored secret without its "md5" prefix: PostgreSQL salts what it
  // stores, never the password itself.
  std::string stored = md5_stored_secret(password, user);
  if (stored.size() != 35) return {};
  std::string in = stored.substr(3);
  for (std::byte b : salt) in.push_back(char(b));
  std::string hex = md5_hex(in);
  return hex.empty() ? std::string() : "md5" + hex;
}

bool looks_like_md5_secret(std::string_view text) {
  if (text.size() != 35 || !text.starts_with("md5")) return false;
  for (char c : text.substr(3)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool md5_verify_response(std::string_view stored, const std::array<std::byte, 4>& salt, std::string_view response) {
  if (!looks_like_md5_secret(stored)) return false;
  std::string in(stored.substr(3));
  for (char& c : in) c = char(std::tolower(static_cast<unsigned char>(c)));   // md5_hex is lowercase
  for (std::byte b : salt) in.push_back(char(b));
  std::string hex = md5_hex(in);
  if (hex.empty()) return false;
  const std::string expected = "md5" + hex;
  return response.size() == expected.size() &&
         CRYPTO_memcmp(response.data(), expected.data(), expected.size()) == 0;
}

}  // namespace pgrelay::protocol
