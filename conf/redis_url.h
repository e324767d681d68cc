// redis://, rediss:// and unix:// URLs (the forms redis-cli and redis-py accept) into an endpoint.
#pragma once

#include <string>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::conf {

// Where the Redis tier connects and as whom. Pure value; proxy/net/redis_connection opens it.
struct RedisEndpoint {
  enum class Kind { kTcp, kTls, kUnix };
  Kind kind = Kind::kTcp;
  std::string host = "127.0.0.1";   // kTcp, kTls; IPv6 without brackets
  int port = 6379;                  // kTcp, kTls
  std::string path;                 // kUnix: the socket's path
  std::string user;                 // ACL user ("" = AUTH with the password only, as `requirepass`)
  std::string password;             // "" = no AUTH
  int db = 0;                       // SELECT db when not 0

  bool operator==(const RedisEndpoint&) const = default;
};

// Accepts
//   redis://[user[:password]@]host[:port][/db]       (port 6379, db 0 when absent)
//   rediss://...                                     (the same over TLS)
//   unix://[[user][:password]@]/path/to/socket[?db=N]
// with percent-encoded user, password, host and path, IPv6 hosts in brackets. A password alone
// is written "redis://:secret@host". Errors say what was expected and never echo the password.
pgrelay::Result<RedisEndpoint> parse_redis_url(std::string_view url);

// The URL again without its password ("redis://app:***@cache:6379/2"), for logs and SHOW CONFIG.
std::string redacted_redis_url(const RedisEndpoint& endpoint);

}  // namespace pgrelay::conf
