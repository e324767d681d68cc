// The auth_file: user names and their secrets in PgBouncer's userlist.txt format.
//
// https://www.pgbouncer.org/config.html#authentication-file-format — one user per line:
//   "user" "secret"
// where secret is a SCRAM-SHA-256 secret as PostgreSQL stores it ("SCRAM-SHA-256$4096:..."),
// an MD5 secret ("md5" + 32 hex digits), or the password itself. Inside the quotes "" stands
// for one '"'. Lines starting with ';' or '#' (after blanks) and blank lines are ignored, as is
// anything after the second quoted field. Pure: the text comes in, a map or an error goes out.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::conf {

// User name -> secret, as written in the file.
using Userlist = std::map<std::string, std::string, std::less<>>;

enum class SecretKind { kScram, kMd5, kPlain, kEmpty };
// What a secret is, by its form (a plain password that happens to look like an MD5 secret is
// taken for one, as PostgreSQL and PgBouncer do).
SecretKind classify_secret(std::string_view secret);

// Parses the text of an auth file; `source` names it in errors. Every bad line is reported, one
// per line of the message, as "<source>:<line>: <what was expected>, got <what was found>";
// secrets are never shown. A SCRAM secret that does not parse, an empty user name and a user
// listed twice are errors. SQLSTATE F0000.
Result<Userlist> parse_userlist(std::string_view text, const std::string& source);

// Reads and parses the file at `path`; an unreadable file is an error naming the path.
Result<Userlist> load_userlist(const std::string& path);

}  // namespace pgrelay::conf
