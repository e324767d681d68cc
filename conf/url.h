// postgresql:// connection URLs (libpq's URI form) into their parts.
#pragma once

#include <map>
#include <string>
#include <vector>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::conf {

struct PostgresUrl {
  std::string user;
  std::string password;
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string dbname;                         // empty when the URL has no path
  // libpq's multi-host form "a:5432,b:5433": the hosts after the first (host, port above).
  struct Host { std::string host; int port = 5432; };
  std::vector<Host> more_hosts;
  std::map<std::string, std::string> params;  // ?key=value pairs, percent-decoded
};

// Accepts postgresql:// and postgres://, percent-encoded user/password/dbname, IPv6 in
// brackets, and a missing port (5432). Errors say which part is wrong.
pgrelay::Result<PostgresUrl> parse_postgres_url(std::string_view url);

// The part after "scheme://" of any URL of that shape (user info, one host, port, /path, ?params),
// for other services' URLs (conf/redis_url.h): `defaults` holds the host and port a URL leaves
// out; the path, percent-decoded, lands in `dbname`. Errors as parse_postgres_url's.
pgrelay::Result<PostgresUrl> parse_url_after_scheme(std::string_view rest, PostgresUrl defaults);

}  // namespace pgrelay::conf
