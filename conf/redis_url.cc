// Redis URLs: the scheme and Redis' own parts (db number, socket path) over conf/url.h's parser.
#include "conf/redis_url.h"

#include <string>

#include "conf/conf_error.h"
#include "conf/url.h"

namespace pgrelay::conf {
namespace {

constexpr const char* kExpected =
    "expected redis://[user[:password]@]host[:port][/db], rediss://... (TLS) or unix:///path/to/socket[?db=N]";

// A Redis logical database number: digits only, 0..2^31-1 (the server checks its own limit).
bool parse_db(std::string_view text, int& db) {
  if (text.empty() || text.size() > 10) return false;
  long long value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > 0x7fffffff) return false;
  db = static_cast<int>(value);
  return true;
}

pgrelay::Result<RedisEndpoint> parse_unix(std::string_view rest) {
  PostgresUrl defaults;
  defaults.host.clear();
  defaults.port = 0;
  auto url = parse_url_after_scheme(rest, std::move(defaults));
  if (!url) return url.error();
  if (!url->host.empty() || url->port != 0) {
    return config_error("a unix:// URL has no host or port: expected unix:///path/to/socket (three slashes)");
  }
  if (url->dbname.empty()) return config_error("expected a socket path in unix:///path/to/socket, got none");
  RedisEndpoint e;
  e.kind = RedisEndpoint::Kind::kUnix;
  e.host.clear();
  e.port = 0;
  e.path = "/" + url->dbname;
  e.user = url->user;
  e.password = url->password;
  for (const auto& [key, value] : url->params) {
    if (key != "db") return config_error("expected only ?db=N after a unix:// socket path, got ?" + key + "=...");
    if (!parse_db(value, e.db)) return config_error("expected ?db= a database number 0..2147483647, got \"" + value + "\"");
  }
  return e;
}

pgrelay::Result<RedisEndpoint> parse_tcp(std::string_view rest, bool tls) {
  PostgresUrl defaults;
  defaults.port = 6379;
  auto url = parse_url_after_scheme(rest, std::move(defaults));
  if (!url) return url.error();
  if (!url->params.empty()) {
    return config_error("expected no ?parameters in a redis:// URL (the database goes in the path: /N), got ?" +
                        url->params.begin()->first + "=...");
  }
  if (!url->more_hosts.empty()) return config_error("expected one host in a redis:// URL, got several");
  RedisEndpoint e;
  e.kind = tls ? RedisEndpoint::Kind::kTls : RedisEndpoint::Kind::kTcp;
  e.host = url->host;
  e.port = url->port;
  e.user = url->user;
  e.password = url->password;
  if (!url->dbname.empty() && !parse_db(url->dbname, e.db)) {
    return config_error("expected a database number 0..2147483647 as the path (redis://host/2), got \"/" +
                        url->dbname + "\"");
  }
  return e;
}

}  // namespace

pgrelay::Result<RedisEndpoint> parse_redis_url(std::string_view text) {
  if (text.starts_with("redis://")) return parse_tcp(text.substr(8), false);
  if (text.starts_with("rediss://")) return parse_tcp(text.substr(9), true);
  if (text.starts_with("unix://")) return parse_unix(text.substr(7));
  const size_t sep = text.find("://");
  if (sep == std::string_view::npos || sep > 16) return config_error(kExpected);
  for (unsigned char c : text.substr(0, sep)) {
    if (c < 0x20 || c == 0x7f) return config_error(kExpected);
  }
  return config_error(std::string(kExpected) + "; the scheme '" + std::string(text.substr(0, sep)) +
                      "://' is none of these");
}

std::string redacted_redis_url(const RedisEndpoint& e) {
  std::string out;
  switch (e.kind) {
    case RedisEndpoint::Kind::kTcp: out = "redis://"; break;
    case RedisEndpoint::Kind::kTls: out = "rediss://"; break;
    case RedisEndpoint::Kind::kUnix: out = "unix://"; break;
  }
  if (!e.user.empty() || !e.password.empty()) {
    out += e.user;
    if (!e.password.empty()) out += ":***";
    out += "@";
  }
  if (e.kind == RedisEndpoint::Kind::kUnix) {
    out += e.path;
    if (e.db != 0) out += "?db=" + std::to_string(e.db);
    return out;
  }
  out += e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host;
  out += ":" + std::to_string(e.port);
  if (e.db != 0) out += "/" + std::to_string(e.db);
  return out;
}

}  // namespace pgrelay::conf
