// Shutdown with the query cache's Redis tier (leases, warming, pipelining on): SIGTERM ends
// pgrelay with exit status 0 every time, with its clients gone, with clients mid-query, and with
// Redis stopped. The teardown after "pgrelay stopped" destroys the workers' event loops and what
// lived on them (the Redis tier, its invalidation channel, the cache warmer's Redis connection);
// an object closed after its loop has gone is a use after free, which crashed (SIGSEGV, exit 139)
// in about one exit in eight. Freed memory is scribbled over (glibc's MALLOC_PERTURB_) so that
// such a use crashes more often than by luck; an ASan build reports it every time.
#include <doctest/doctest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.h"
#include "redis_server.h"
#include "shared_cache_util.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "redis_shutdown_it";
constexpr int kRounds = 6;

RelayConfig config_for(const RedisServer& redis) {
  RelayConfig config = shared_config(redis);
  config.set("pipelining", "true").set("shutdown_timeout", "\"1s\"").set("workers", "2");
  // Warming on (the default list size), saving to Redis every second, so the warmer's own Redis
  // connection is open at exit.
  config.databases += "warm_save_interval = \"1s\"\nwarm_rate = 1000\n";
  return config;
}

// Reads and writes through `relay`, so that the Redis tier, its channel and the warm list are in use.
void serve(PgrelayProcess& relay) {
  auto c = connect_ok(relay.conninfo(kDatabase));
  for (int i = 0; i < 5; ++i) {
    REQUIRE(scalar(c.get(), "SELECT v FROM kv WHERE k = 1") == std::to_string(i));
    REQUIRE(exec(c.get(), "UPDATE kv SET v = v + 1 WHERE k = 1").ok());
    (void)scalar(c.get(), "SELECT v FROM kv WHERE k = 2");
  }
}

void check_stops(PgrelayProcess& relay, int round) {
  relay.signal(SIGTERM);
  const auto code = relay.wait_exit(15s);
  REQUIRE_MESSAGE(code.has_value(), "round " << round << ": still running 15 s after SIGTERM; log:\n" << relay.log());
  CHECK_MESSAGE(*code == 0, "round " << round << ": exit status " << *code << " (139: SIGSEGV); log:\n" << relay.log());
  CHECK(relay.log().find("pgrelay stopped") != std::string::npos);
}

}  // namespace

TEST_CASE("SIGTERM with the Redis tier, leases and warming: exit 0, clients gone, mid-query, Redis stopped") {
  ::setenv("MALLOC_PERTURB_", "165", 1);   // inherited by every pgrelay started below
  auto d = kv_database(kDatabase);
  RedisServer redis;

  SUBCASE("two instances, their clients gone") {
    for (int round = 1; round <= kRounds; ++round) {
      direct(d.get(), "UPDATE kv SET v = 0");
      PgrelayProcess a(config_for(redis)), b(config_for(redis));
      serve(a);
      (void)connect_ok(b.conninfo(kDatabase));
      auto console = connect_ok(a.conninfo("pgrelay"));
      REQUIRE(wait_for_stat(console.get(), "redis_lease", 1));
      console.reset();
      check_stops(a, round);
      check_stops(b, round);
    }
  }

  SUBCASE("a client mid-query and one idle in a transaction: closed at shutdown_timeout") {
    for (int round = 1; round <= kRounds; ++round) {
      direct(d.get(), "UPDATE kv SET v = 0");
      PgrelayProcess relay(config_for(redis));
      serve(relay);
      auto busy = connect_ok(relay.conninfo(kDatabase));
      REQUIRE(PQsendQuery(busy.get(), "SELECT pg_sleep(5)") == 1);
      auto writer = connect_ok(relay.conninfo(kDatabase));
      REQUIRE(exec(writer.get(), "BEGIN").ok());
      REQUIRE(exec(writer.get(), "UPDATE kv SET v = v + 1 WHERE k = 2").ok());
      check_stops(relay, round);
    }
  }

  SUBCASE("Redis stopped before SIGTERM") {
    for (int round = 1; round <= kRounds; ++round) {
      direct(d.get(), "UPDATE kv SET v = 0");
      if (!redis.running()) redis.start();
      PgrelayProcess relay(config_for(redis));
      serve(relay);
      redis.kill();
      auto c = connect_ok(relay.conninfo(kDatabase));
      (void)scalar(c.get(), "SELECT v FROM kv WHERE k = 1");   // with Redis away: from the server
      REQUIRE(exec(c.get(), "UPDATE kv SET v = v + 1 WHERE k = 1").ok());
      c.reset();
      check_stops(relay, round);
    }
  }
}
