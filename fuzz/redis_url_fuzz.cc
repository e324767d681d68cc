// Fuzz target: redis://, rediss:// and unix:// URLs ([cache] redis_url, REDIS_URL), and their
// redacted form, which must never show the password.
//
// Input: a URL.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "conf/redis_url.h"
#include "fuzz/fuzz_util.h"

namespace cf = pgrelay::conf;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view url(reinterpret_cast<const char*>(data), size);
  auto e = cf::parse_redis_url(url);
  if (!e.ok()) {
    check(!e.error().message.empty());
    return 0;
  }
  if (e->kind != cf::RedisEndpoint::Kind::kUnix) check(e->port > 0 && e->port <= 65535);
  check(e->db >= 0);
  std::string shown = cf::redacted_redis_url(*e);
  if (!e->password.empty()) check(shown.find("***") != std::string::npos);
  return 0;
}
