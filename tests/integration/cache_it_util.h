// Helpers of the query cache's integration tests: the console's hit count, and running a read
// until the cache answers it.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "harness.h"

namespace pgrelay::it {

// The admin console of the pgrelay under test; each test case sets it.
inline PGconn* g_console = nullptr;

// SHOW CACHE's hits.
inline int64_t cache_hits() {
  auto r = exec(g_console, "SHOW CACHE");
  REQUIRE(r.ok());
  REQUIRE(r.rows.size() == 1);
  return std::stoll(*r.rows[0][4]);
}

// Runs `sql` through pgrelay until an execution is answered from the cache (the first ones
// fetch catalog facts, a view's own names a round later, then one fills), and returns that
// answer's first value. Fails when it never is.
inline std::string primed(PGconn* c, const std::string& sql) {
  for (int i = 0; i < 10; ++i) {
    const int64_t before = cache_hits();
    std::string value = scalar(c, sql);
    if (cache_hits() > before) return value;
  }
  FAIL("never answered from the cache: " << sql);
  return {};
}

}  // namespace pgrelay::it
