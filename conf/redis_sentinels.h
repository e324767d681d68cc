// Redis Sentinel addresses ([cache] redis_sentinels): "host:port" as redis-cli and redis-py write them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace pgrelay::conf {

// One sentinel to ask where the Redis primary is. Pure value; proxy/net/redis_sentinel asks it.
struct SentinelAddress {
  std::string host;   // host name or IP address; IPv6 without brackets
  int port = 26379;   // Sentinel's default port when the text names none

  bool operator==(const SentinelAddress&) const = default;
};

// "host", "host:port", "[::1]:port" (or a bare IPv6 address, port 26379). Errors say what was
// expected and quote what they got.
pgrelay::Result<SentinelAddress> parse_sentinel_address(std::string_view text);

// Every element of a redis_sentinels list, each of which may itself hold several addresses
// separated by commas ("a:26379,b:26379", the form an environment variable takes). An empty
// part is an error.
pgrelay::Result<std::vector<SentinelAddress>> parse_sentinel_list(const std::vector<std::string>& items);

// "host:port" ("[::1]:26379" for IPv6), for logs, SHOW CONFIG and the console.
std::string to_string(const SentinelAddress& address);

}  // namespace pgrelay::conf
