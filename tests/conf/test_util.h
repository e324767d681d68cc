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

// Parses TOML that must be invalid; the error's message.
inline std::string error_of(const std::string& toml) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  return c.error().message;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace pgrelay::conf::test
