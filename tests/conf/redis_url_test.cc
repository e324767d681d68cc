// The Redis tier's keys: redis://, rediss://, unix:// URLs, REDIS_URL, redis_timeout, redis_lease and the key prefix.
#include <doctest/doctest.h>

#include <string>

#include "conf/loader.h"
#include "conf/redis_url.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::ok_config;
using Kind = RedisEndpoint::Kind;

RedisEndpoint ok_url(std::string_view text) {
  auto u = parse_redis_url(text);
  REQUIRE_MESSAGE(u.ok(), std::string(text) << ": " << (u.ok() ? "" : u.error().message));
  return *u;
}

std::string url_error(std::string_view text) {
  auto u = parse_redis_url(text);
  REQUIRE_MESSAGE(!u.ok(), std::string(text) << " parsed");
  return u.error().message;
}

std::string config_error_of(const std::string& toml) {
  auto c = parse_config(toml, "test.toml");
  REQUIRE_MESSAGE(!c.ok(), "expected an error for:\n" << toml);
  return c.error().message;
}

}  // namespace

TEST_CASE("redis:// with every part, and the defaults") {
  const RedisEndpoint u = ok_url("redis://app:s%40cret@cache.internal:6380/3");
  CHECK(u.kind == Kind::kTcp);
  CHECK(u.user == "app");
  CHECK(u.password == "s@cret");
  CHECK(u.host == "cache.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 3);

  const RedisEndpoint d = ok_url("redis://cache");
  CHECK(d.host == "cache");
  CHECK(d.port == 6379);
  CHECK(d.db == 0);
  CHECK(d.user.empty());
  CHECK(d.password.empty());
  CHECK(ok_url("redis://cache/").db == 0);
  CHECK(ok_url("redis://").host == "127.0.0.1");
}

TEST_CASE("a password alone, a user alone, IPv6, TLS") {
  const RedisEndpoint p = ok_url("redis://:pw@h");
  CHECK(p.user.empty());
  CHECK(p.password == "pw");
  const RedisEndpoint u = ok_url("redis://someone@h");
  CHECK(u.user == "someone");
  CHECK(u.password.empty());
  const RedisEndpoint v6 = ok_url("rediss://[::1]:6390/1");
  CHECK(v6.kind == Kind::kTls);
  CHECK(v6.host == "::1");
  CHECK(v6.port == 6390);
  CHECK(v6.db == 1);
}

TEST_CASE("unix:// sockets, percent-decoded, with ?db=N and credentials") {
  const RedisEndpoint s = ok_url("unix:///var/run/redis/redis%20server.sock?db=2");
  CHECK(s.kind == Kind::kUnix);
  CHECK(s.path == "/var/run/redis/redis server.sock");
  CHECK(s.db == 2);
  const RedisEndpoint a = ok_url("unix://app:pw@/tmp/r.sock");
  CHECK(a.user == "app");
  CHECK(a.password == "pw");
  CHECK(a.path == "/tmp/r.sock");
  CHECK(a.db == 0);
}

TEST_CASE("bad Redis URLs say what was expected and never show the password") {
  CHECK(contains(url_error("http://h"), "expected redis://"));
  CHECK(contains(url_error("http://h"), "'http://'"));
  CHECK(contains(url_error("cache:6379"), "expected redis://"));
  CHECK(contains(url_error(""), "expected redis://"));
  CHECK(contains(url_error("redis://h/x"), "database number"));
  CHECK(contains(url_error("redis://h/-1"), "database number"));
  CHECK(contains(url_error("redis://h/99999999999"), "database number"));
  CHECK(contains(url_error("redis://h?db=1"), "no ?parameters"));
  CHECK(contains(url_error("redis://h:0"), "out of range"));
  CHECK(contains(url_error("redis://h:x"), "not a number"));
  CHECK(contains(url_error("redis://h:"), "port is empty"));
  CHECK(contains(url_error("redis://::1/0"), "brackets"));
  CHECK(contains(url_error("unix://host/tmp/s"), "no host or port"));
  CHECK(contains(url_error("unix://"), "socket path"));
  CHECK(contains(url_error("unix:///tmp/s?database=1"), "only ?db=N"));
  CHECK(contains(url_error("unix:///tmp/s?db=x"), "database number"));
  const std::string bad_escape = url_error("redis://u:top%zzsecret@h");
  CHECK(contains(bad_escape, "password"));
  CHECK_FALSE(contains(bad_escape, "secret"));
  CHECK_FALSE(contains(url_error("redis://u:topsecret@h/x"), "topsecret"));
}

TEST_CASE("redacted_redis_url hides the password only") {
  CHECK(redacted_redis_url(ok_url("redis://app:pw@h:1/2")) == "redis://app:***@h:1/2");
  CHECK(redacted_redis_url(ok_url("rediss://[::1]")) == "rediss://[::1]:6379");
  CHECK(redacted_redis_url(ok_url("unix://:pw@/tmp/s?db=3")) == "unix://:***@/tmp/s?db=3");
}

TEST_CASE("[cache] redis keys: off by default, 5 ms, prefix pgrelay") {
  const Config d = ok_config("");
  CHECK_FALSE(d.cache.redis.has_value());
  CHECK(d.cache.redis_timeout.count() == 5);
  CHECK(d.cache.redis_key_prefix == "pgrelay");
  CHECK(d.cache.redis_lease.count() == 300);

  const Config c = ok_config(
      "[cache]\nredis_url = \"rediss://:pw@cache:6380/1\"\nredis_timeout = \"20ms\"\nredis_key_prefix = \"prod-eu\"\n"
      "[databases.app]\nhost = \"db\"\n");
  REQUIRE(c.cache.redis.has_value());
  CHECK(c.cache.redis->kind == Kind::kTls);
  CHECK(c.cache.redis->password == "pw");
  CHECK(c.cache.redis_timeout.count() == 20);
  CHECK(c.cache.redis_key_prefix == "prod-eu");
  CHECK(c.databases.at("app").cache.redis == c.cache.redis);
  CHECK(ok_config("[cache]\nredis_lease = \"1s\"\n").cache.redis_lease.count() == 1000);
  CHECK(ok_config("[cache]\nredis_lease = \"50ms\"\n").cache.redis_lease.count() == 50);
  CHECK(ok_config("[cache]\nredis_lease = \"5s\"\n").cache.redis_lease.count() == 5000);
}

TEST_CASE("[cache] redis key errors name the file, the key and what was expected") {
  const std::string bad_url = config_error_of("[cache]\nredis_url = \"http://u:topsecret@cache\"\n");
  CHECK(contains(bad_url, "test.toml:2: cache.redis_url: expected redis://"));
  CHECK_FALSE(contains(bad_url, "topsecret"));
  CHECK(contains(config_error_of("[cache]\nredis_url = 6379\n"), "cache.redis_url: expected a string"));
  CHECK(contains(config_error_of("[cache]\nredis_timeout = 0\n"), "cache.redis_timeout: expected a duration greater than 0"));
  CHECK(contains(config_error_of("[cache]\nredis_timeout = \"0.1ms\"\n"), "cache.redis_timeout"));
  CHECK(contains(config_error_of("[cache]\nredis_key_prefix = \"a b\"\n"), "cache.redis_key_prefix: expected 1 to 64"));
  CHECK(contains(config_error_of("[cache]\nredis_key_prefix = \"x*\"\n"), "cache.redis_key_prefix"));
  CHECK(contains(config_error_of("[cache]\nredis_key_prefix = \"\"\n"), "cache.redis_key_prefix"));
  CHECK(contains(config_error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nredis_url = \"redis://h\"\n"),
                 "databases.app.cache.redis_url: expected it in [cache]"));
  CHECK(contains(config_error_of("[cache]\nredis_lease = \"49ms\"\n"),
                 "test.toml:2: cache.redis_lease: expected a duration from 50ms to 5s, got 49ms"));
  CHECK(contains(config_error_of("[cache]\nredis_lease = \"6s\"\n"), "cache.redis_lease: expected a duration from 50ms to 5s, got 6000ms"));
  CHECK(contains(config_error_of("[cache]\nredis_lease = 0\n"), "cache.redis_lease: expected a duration greater than 0"));
  CHECK(contains(config_error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nredis_lease = \"1s\"\n"),
                 "databases.app.cache.redis_lease: expected it in [cache]"));
}

TEST_CASE("REDIS_URL applies when redis_url is absent, never over it") {
  Environment env;
  env.redis_url = "redis://:pw@from-env:7000/4";
  auto c = apply_environment(ok_config("[databases.app]\nhost = \"db\"\n"), env);
  REQUIRE(c.ok());
  REQUIRE(c->cache.redis.has_value());
  CHECK(c->cache.redis->host == "from-env");
  CHECK(c->cache.redis->db == 4);
  CHECK(c->databases.at("app").cache.redis == c->cache.redis);

  auto file_wins = apply_environment(ok_config("[cache]\nredis_url = \"redis://from-file\"\n"), env);
  REQUIRE(file_wins.ok());
  CHECK(file_wins->cache.redis->host == "from-file");

  env.redis_url = "memcached://x";
  auto bad = apply_environment(ok_config(""), env);
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.error().message, "REDIS_URL: expected redis://"));
}

}  // namespace pgrelay::conf
