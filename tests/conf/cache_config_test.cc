// [cache] and [databases.NAME.cache]: off by default, opted into per process or per database.
#include <doctest/doctest.h>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::ok_config;

std::string error_of(const std::string& toml) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  return c.error().message;
}

}  // namespace

TEST_CASE("the cache is off unless enabled, with sizes and a TTL by default") {
  const Config c = ok_config("[databases.app]\nhost = \"db\"\n");
  CHECK_FALSE(c.cache.enabled);
  CHECK_FALSE(c.databases.at("app").cache.enabled);
  CHECK(c.cache.default_ttl.count() == 60'000);
  CHECK(c.cache.memory_budget == 64u << 20);
  CHECK(c.cache.max_entry_size == 1u << 20);
  CHECK(c.cache.compress_threshold == 1024);
}

TEST_CASE("[cache] sets every database's default, whatever the file order; a database may override") {
  const Config c = ok_config(
      "[databases.app]\nhost = \"db\"\n[databases.app.cache]\ndefault_ttl = \"5s\"\n"
      "[databases.other]\nhost = \"db\"\n[databases.other.cache]\nenabled = false\n"
      "[databases.third]\nhost = \"db\"\n"
      "[cache]\nenabled = true\ndefault_ttl = \"30s\"\nmemory_budget = \"256MB\"\nmax_entry_size = \"4MB\"\n"
      "compress_threshold = 2048\n");
  CHECK(c.cache.enabled);
  CHECK(c.cache.memory_budget == 256u << 20);
  CHECK(c.cache.max_entry_size == 4u << 20);
  CHECK(c.cache.compress_threshold == 2048);
  CHECK(c.databases.at("app").cache.enabled);
  CHECK(c.databases.at("app").cache.default_ttl.count() == 5'000);
  CHECK_FALSE(c.databases.at("other").cache.enabled);
  CHECK(c.databases.at("other").cache.default_ttl.count() == 30'000);
  CHECK(c.databases.at("third").cache.enabled);
  const Config one = ok_config("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nenabled = true\n");
  CHECK_FALSE(one.cache.enabled);
  CHECK(one.databases.at("app").cache.enabled);
}

TEST_CASE("cache errors name the file, the key and what was expected") {
  CHECK(contains(error_of("[cache]\nenabled = \"yes\"\n"), "test.toml:2: cache.enabled: expected true or false"));
  CHECK(contains(error_of("[cache]\ndefault_ttl = 0\n"), "cache.default_ttl"));
  CHECK(contains(error_of("[cache]\nmemory_budget = \"1kB\"\n"), "cache.memory_budget: expected a size"));
  CHECK(contains(error_of("[cache]\nmemory_budget = \"8MB\"\nmax_entry_size = \"4MB\"\n"),
                 "cache.max_entry_size: expected at most a quarter of memory_budget"));
  CHECK(contains(error_of("[cache]\nttl = \"1s\"\n"), "cache.ttl: unknown key"));
  CHECK(contains(error_of("cache = 1\n"), "cache: expected a table"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\ncache = true\n"), "databases.app.cache: expected a table"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nmemory_budget = \"1GB\"\n"),
                 "databases.app.cache.memory_budget: expected it in [cache]"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nenable = true\n"),
                 "databases.app.cache.enable: unknown key"));
}
}  // namespace pgrelay::conf
