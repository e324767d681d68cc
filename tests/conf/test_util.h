// Helpers shared by the conf/ tests.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "conf/loader.h"

namespace pgrelay::conf::test {

// Parses TOML that must be valid.
inline Config ok_config(const std::string& toml) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  return *c;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace pgrelay::conf::test
