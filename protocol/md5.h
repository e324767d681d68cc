// MD5 password hashing as PostgreSQL's AuthenticationMD5Password expects it.
//
// https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.3 :
// "md5" + hex(md5(hex(md5(password + user)) + salt)).
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace pgrelay::protocol {

// hex(md5(data)), 32 lowercase hex digits. These functions return "" only when the crypto
// library refuses MD5 (FIPS mode), which the caller treats as a failed login.
std::string md5_hex(std::string_view data);

// The PasswordMessage payload answering an MD5 challenge with `salt`.
std::string md5_password_response(std::string_view password, std::string_view user,
                                  const std::array<std::byte, 4>& salt);

// The stored form "md5" + hex(md5(password + user)), as in pg_authid and userlist.txt.
std::string md5_stored_secret(std::string_view password, std::string_view user);

// True for "md5" followed by 32 lowercase or uppercase hex digits.
bool looks_like_md5_secret(std::string_view text);

// Server side: true when `response` (a PasswordMessage payload) answers the challenge `salt`
// for the stored secret `stored` ("md5" + 32 hex). Constant time in the response's content.
bool md5_verify_response(std::string_view stored, const std::array<std::byte, 4>& salt, std::string_view response);

}  // namespace pgrelay::protocol
