// For tests of the analyzer's session observers: a SlowQueryLog that writes no file.
#pragma once

#include <memory>

#include <doctest/doctest.h>

#include "proxy/session/slow_query_log.h"

namespace pgrelay::proxy::test {

// Keeps its last 100 entries for SHOW SLOW, writes no JSON lines.
inline std::shared_ptr<SlowQueryLog> no_file_log() {
  auto log = SlowQueryLog::open("", 100);
  REQUIRE(log.ok());
  return *log;
}

}  // namespace pgrelay::proxy::test
