// Fuzz target: postgresql:// URLs (DATABASE_URL, a [databases] url) and what the environment
// makes of them on top of a config.
//
// Input: a URL.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "conf/loader.h"
#include "conf/url.h"
#include "fuzz/fuzz_util.h"

namespace cf = pgrelay::conf;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view url(reinterpret_cast<const char*>(data), size);
  auto u = cf::parse_postgres_url(url);
  if (u.ok()) check(u->port > 0 && u->port <= 65535);
  (void)cf::parse_url_after_scheme(url, cf::PostgresUrl{});

  cf::Environment env;
  env.database_url = std::string(url);
  auto c = cf::apply_environment(cf::Config{}, env);
  if (c.ok() != u.ok()) {
    // The environment may refuse what parses (a missing database name): it must say why.
    check(!c.ok() && !c.error().message.empty());
  }
  return 0;
}
