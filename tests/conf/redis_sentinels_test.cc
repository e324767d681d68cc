// [cache]'s Redis Sentinel keys: redis_sentinels (a list, or host:port strings separated by
// commas), redis_master_name, redis_sentinel_password; errors name the file, line and key.
#include <doctest/doctest.h>

#include <string>

#include "conf/loader.h"
#include "conf/redis_sentinels.h"
#include "conf/runtime_settings.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::error_of;
using test::ok_config;

SentinelAddress ok_address(std::string_view text) {
  auto a = parse_sentinel_address(text);
  REQUIRE_MESSAGE(a.ok(), std::string(text) << ": " << (a.ok() ? "" : a.error().message));
  return *a;
}

std::string address_error(std::string_view text) {
  auto a = parse_sentinel_address(text);
  REQUIRE_MESSAGE(!a.ok(), std::string(text) << " parsed");
  return a.error().message;
}

std::string row(const Config& c, const std::string& key) {
  for (const auto& r : setting_rows(c))
    if (r.key == key) return r.value;
  FAIL("no SHOW CONFIG row " << key);
  return {};
}

}  // namespace

TEST_CASE("a sentinel's address: host, port, IPv6, Sentinel's default port") {
  CHECK(ok_address("sentinel-1:26380") == SentinelAddress{.host = "sentinel-1", .port = 26380});
  CHECK(ok_address("10.0.0.7") == SentinelAddress{.host = "10.0.0.7", .port = 26379});
  CHECK(ok_address("[::1]:5000") == SentinelAddress{.host = "::1", .port = 5000});
  CHECK(ok_address("[fe80::1]") == SentinelAddress{.host = "fe80::1", .port = 26379});
  CHECK(ok_address("fe80::2") == SentinelAddress{.host = "fe80::2", .port = 26379});
  CHECK(to_string(ok_address("[::1]:5000")) == "[::1]:5000");
  CHECK(to_string(ok_address("s")) == "s:26379");
  for (const char* bad : {"", ":26379", "host:", "host:0", "host:65536", "host:26x", "[::1", "[::1]5000", "a b:1",
                          "redis://host:26379", "user@host:1"}) {
    CAPTURE(bad);
    CHECK(contains(address_error(bad), "expected a sentinel as host:port"));
  }
}

TEST_CASE("redis_sentinels: a list, one string, or addresses separated by commas") {
  const Config list = ok_config("[cache]\nredis_sentinels = [\"s1:26379\", \"s2:26380\"]\nredis_master_name = \"mymaster\"\n");
  REQUIRE(list.cache.redis_sentinels.size() == 2);
  CHECK(list.cache.redis_sentinels[1] == SentinelAddress{.host = "s2", .port = 26380});
  CHECK(list.cache.redis_master_name == "mymaster");
  CHECK_FALSE(list.cache.redis.has_value());   // the data connections' address comes from the sentinels
  const Config one = ok_config("[cache]\nredis_sentinels = \"s1:1, s2:2,s3\"\nredis_master_name = \"m\"\n");
  REQUIRE(one.cache.redis_sentinels.size() == 3);
  CHECK(one.cache.redis_sentinels[2] == SentinelAddress{.host = "s3", .port = 26379});
  // redis_url still gives the scheme and credentials; the sentinels' own password is apart.
  const Config both = ok_config(
      "[cache]\nredis_url = \"redis://app:pw@ignored:1/2\"\nredis_sentinels = [\"s1\"]\nredis_master_name = \"m\"\n"
      "redis_sentinel_password = \"spw\"\n");
  REQUIRE(both.cache.redis.has_value());
  CHECK(both.cache.redis->password == "pw");
  CHECK(both.cache.redis->db == 2);
  CHECK(both.cache.redis_sentinel_password == "spw");
  // A database entry copies [cache]'s.
  const Config db = ok_config("[cache]\nredis_sentinels = [\"s1\"]\nredis_master_name = \"m\"\n[databases.app]\nhost = \"h\"\n");
  CHECK(db.databases.at("app").cache.redis_sentinels.size() == 1);
}

TEST_CASE("redis_sentinels errors name the file, line, key and what was expected") {
  std::string e = error_of("[cache]\nredis_sentinels = [\"s1\"]\n");
  CHECK(contains(e, "test.toml:2"));
  CHECK(contains(e, "cache.redis_sentinels: expected redis_master_name beside it"));
  e = error_of("[cache]\nredis_master_name = \"m\"\n");
  CHECK(contains(e, "cache.redis_master_name: expected redis_sentinels beside it"));
  e = error_of("[cache]\nredis_sentinel_password = \"x\"\n");
  CHECK(contains(e, "cache.redis_sentinel_password: expected redis_sentinels beside it"));
  CHECK_FALSE(contains(e, "\"x\""));   // a secret is never echoed
  e = error_of("[cache]\n\nredis_sentinels = [\"s1:99999\"]\nredis_master_name = \"m\"\n");
  CHECK(contains(e, "test.toml:3"));
  CHECK(contains(e, "expected a sentinel as host:port"));
  CHECK(contains(e, "s1:99999"));
  CHECK(contains(error_of("[cache]\nredis_sentinels = []\nredis_master_name = \"m\"\n"), "cache.redis_sentinels"));
  CHECK(contains(error_of("[cache]\nredis_sentinels = \"a,,b\"\nredis_master_name = \"m\"\n"), "expected a sentinel"));
  CHECK(contains(error_of("[cache]\nredis_sentinels = [\"s\"]\nredis_master_name = \"my master\"\n"),
                 "cache.redis_master_name: expected the master's name"));
  CHECK(contains(error_of("[cache]\nredis_url = \"unix:///tmp/r.sock\"\nredis_sentinels = [\"s\"]\nredis_master_name = \"m\"\n"),
                 "cache.redis_url: expected redis:// or rediss:// with redis_sentinels"));
  CHECK(contains(error_of("[cache]\n[databases.app]\nhost = \"h\"\n[databases.app.cache]\nredis_sentinels = [\"s\"]\n"),
                 "databases.app.cache.redis_sentinels: expected it in [cache]"));
}

TEST_CASE("REDIS_URL with sentinels: credentials from the environment, never a unix:// socket") {
  Environment env;
  env.redis_url = "redis://:envpw@ignored";
  const Config base = ok_config("[cache]\nredis_sentinels = [\"s1\"]\nredis_master_name = \"m\"\n");
  auto applied = apply_environment(base, env);
  REQUIRE(applied.ok());
  REQUIRE(applied->cache.redis.has_value());
  CHECK(applied->cache.redis->password == "envpw");
  env.redis_url = "unix:///tmp/r.sock";
  auto refused = apply_environment(base, env);
  REQUIRE_FALSE(refused.ok());
  CHECK(contains(refused.error().message, "REDIS_URL: expected redis:// or rediss:// with [cache] redis_sentinels"));
}

TEST_CASE("SHOW CONFIG's Sentinel rows; the password hidden, SET refused") {
  const Config c = ok_config("[cache]\nredis_sentinels = [\"s1:1\", \"[::1]:2\"]\nredis_master_name = \"m\"\n"
                             "redis_sentinel_password = \"secret\"\n");
  CHECK(row(c, "cache.redis_sentinels") == "s1:1, [::1]:2");
  CHECK(row(c, "cache.redis_master_name") == "m");
  CHECK(row(c, "cache.redis_sentinel_password") == "***");
  CHECK(row(Config{}, "cache.redis_sentinels").empty());
  auto set = apply_setting(c, "cache.redis_master_name", "\"other\"");
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().sqlstate == "55P02");
}

}  // namespace pgrelay::conf
