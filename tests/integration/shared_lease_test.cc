// The Redis tier's leases end to end (docs/cache.md, "Leases"): two pgrelay instances sharing one
// redis-server and one PostgreSQL. While B holds a lease, its memory hits ask Redis nothing; a
// write through A is still seen by the next read through B; a DO through A holds B's lease off
// the database until its end is heard; with the channel killed B falls back to confirmed reads; a stopped B holds A's commits back by at most one lease length and serves
// nothing stale when it runs again.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <memory>
#include <regex>
#include <thread>

#include "harness.h"
#include "redis_server.h"
#include "shared_cache_util.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "shared_lease_it";

// How many times Redis ran `command` (INFO commandstats).
int64_t redis_calls(const RedisServer& redis, const std::string& command) {
  const auto r = run_command("redis-cli -p " + std::to_string(redis.port()) + " INFO commandstats", 10s);
  REQUIRE(r.exit_code == 0);
  std::smatch m;
  if (!std::regex_search(r.output, m, std::regex("cmdstat_" + command + ":calls=([0-9]+)"))) return 0;
  return std::stoll(m[1].str());
}

void redis_cli(const RedisServer& redis, const std::string& args) {
  const auto r = run_command("redis-cli -p " + std::to_string(redis.port()) + " " + args, 10s);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
}

}  // namespace

TEST_CASE("Redis tier leases: memory hits without Redis, writes still seen across instances") {
  TwoInstances two(kDatabase);
  auto& [redis, d, a, b, ca, cb, console_a, console_b] = two;
  REQUIRE(wait_for_stat(console_a.get(), "redis_lease", 1));
  REQUIRE(wait_for_stat(console_b.get(), "redis_lease", 1));
  const std::string read = "SELECT v FROM kv WHERE k = 1";

  SUBCASE("B's memory hits under the lease make no Redis round trip") {
    CHECK(answered_from(cb.get(), console_b.get(), "hits", read) == "0");
    const int64_t hmget = redis_calls(redis, "hmget");
    const int64_t lease_hits = cache_stat(console_b.get(), "redis_lease_hits");
    const int64_t confirmed = cache_stat(console_b.get(), "redis_confirmed_hits");
    constexpr int kReads = 200;
    for (int i = 0; i < kReads; ++i) CHECK(scalar(cb.get(), read) == "0");
    const int64_t under_lease = cache_stat(console_b.get(), "redis_lease_hits") - lease_hits;
    const int64_t asked = cache_stat(console_b.get(), "redis_confirmed_hits") - confirmed;
    MESSAGE(under_lease << " of " << kReads << " memory hits under the lease, " << asked << " confirmed by Redis");
    CHECK(under_lease + asked == kReads);   // every read a memory hit
    CHECK(under_lease > 0);
    // A round trip (HMGET of the versions) for the confirmed ones only.
    CHECK(redis_calls(redis, "hmget") - hmget == asked);
  }

  SUBCASE("1,000 writes through A, each followed by a read through B: zero stale") {
    const std::string read2 = "SELECT v FROM kv WHERE k = 2";
    (void)answered_from(cb.get(), console_b.get(), "hits", read2);
    const int rounds = std::getenv("CI") ? 300 : 1000;
    const int64_t lease_hits = cache_stat(console_b.get(), "redis_lease_hits");
    const int64_t waits = cache_stat(console_a.get(), "redis_bump_waits");
    const int64_t timeouts = cache_stat(console_a.get(), "redis_bump_wait_timeouts");
    int stale = 0;
    for (int i = 1; i <= rounds; ++i) {
      (void)scalar(cb.get(), read2);   // B holds the answer from before the write (under its lease)
      const std::string write = i % 2 ? "UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 2"
                                      : "BEGIN; UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 2; COMMIT";
      REQUIRE(exec(ca.get(), write).ok());
      if (scalar(cb.get(), read2) != std::to_string(i)) ++stale;
    }
    CHECK(stale == 0);
    const int64_t under_lease = cache_stat(console_b.get(), "redis_lease_hits") - lease_hits;
    const int64_t waited = cache_stat(console_a.get(), "redis_bump_waits") - waits;
    const int64_t timed_out = cache_stat(console_a.get(), "redis_bump_wait_timeouts") - timeouts;
    MESSAGE(under_lease << " reads through B under the lease; A's " << waited << " bumps waited, " << timed_out
                        << " of them the whole lease length");
    CHECK(under_lease > 0);        // the reads before each write were served under the lease
    CHECK(waited >= rounds);       // every commit waited for B's acknowledgement
  }

  SUBCASE("the channel killed: B falls back to confirmed reads and serves nothing stale") {
    (void)answered_from(cb.get(), console_b.get(), "hits", read);
    const int64_t confirmed = cache_stat(console_b.get(), "redis_confirmed_hits");
    for (int round = 1; round <= 5; ++round) {
      (void)scalar(cb.get(), read);   // in B's memory
      redis_cli(redis, "CLIENT KILL TYPE pubsub");
      const std::string value = std::to_string(1000 + round);
      REQUIRE(exec(ca.get(), "UPDATE kv SET v = " + value + " WHERE k = 1").ok());
      CHECK(scalar(cb.get(), read) == value);
      CHECK(scalar(cb.get(), read) == value);   // a memory hit, confirmed while the lease is down
      CHECK(scalar(ca.get(), read) == value);
    }
    CHECK(cache_stat(console_b.get(), "redis_confirmed_hits") > confirmed);
    // Subscribed again, B takes a lease again and serves its new fills under it.
    REQUIRE(wait_for_stat(console_b.get(), "redis_lease", 1, 15));
    REQUIRE(exec(ca.get(), "UPDATE kv SET v = 2000 WHERE k = 1").ok());
    CHECK(answered_from(cb.get(), console_b.get(), "redis_lease_hits", read) == "2000");
  }

  SUBCASE("a DO through A holds B's lease off the database while it runs, and gives it back when it ends") {
    (void)answered_from(cb.get(), console_b.get(), "redis_lease_hits", read);   // in B's memory, under the lease
    const int64_t ends = cache_stat(console_b.get(), "redis_window_ends");
    // It commits and runs on, for a while: B is seen holding the window meanwhile.
    REQUIRE(PQsendQuery(ca.get(), "DO $$ BEGIN UPDATE kv SET v = 4001 WHERE k = 1; COMMIT; PERFORM pg_sleep(1); "
                                  "UPDATE kv SET v = 4002 WHERE k = 1; END $$") == 1);
    CHECK(wait_for_stat(console_b.get(), "redis_windows_held", 1));
    const int64_t lease_hits = cache_stat(console_b.get(), "redis_lease_hits");
    const std::string during = scalar(cb.get(), read);
    CHECK((during == "0" || during == "4001" || during == "4002"));
    CHECK(cache_stat(console_b.get(), "redis_lease_hits") == lease_hits);   // not from its memory under the lease
    while (PGresult* r = PQgetResult(ca.get())) {
      CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
      PQclear(r);
    }
    // The end is heard (well before the 10 s hold would lapse): the lease serves the database again.
    REQUIRE(wait_for_stat(console_b.get(), "redis_window_ends", ends + 1, 5));
    CHECK(cache_stat(console_b.get(), "redis_windows_held") == 0);
    CHECK(answered_from(cb.get(), console_b.get(), "redis_lease_hits", read) == "4002");
    CHECK(cache_stat(console_a.get(), "redis_window_ends") == 0);   // its own end is not heard as another's
  }

  SUBCASE("B stopped: A's commits wait at most one lease length; B serves nothing stale when it runs again") {
    (void)answered_from(cb.get(), console_b.get(), "hits", read);
    REQUIRE(wait_for_stat(console_a.get(), "redis_live_peers", 1));
    REQUIRE(::kill(b.pid(), SIGSTOP) == 0);
    // The commits right after: B may hold a lease and does not acknowledge; A waits it out.
    for (int i = 1; i <= 3; ++i) {
      const auto started = std::chrono::steady_clock::now();
      REQUIRE(exec(ca.get(), "UPDATE kv SET v = " + std::to_string(3000 + i) + " WHERE k = 1").ok());
      MESSAGE("commit " << i << " with B stopped took "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()
                        << " ms");
    }
    // Once B's last ping is a lease length old, A stops counting on it: its commits no longer wait.
    CHECK(wait_for_stat(console_a.get(), "redis_live_peers", 0, 5));
    const int64_t timeouts = cache_stat(console_a.get(), "redis_bump_wait_timeouts");
    for (int i = 4; i <= 10; ++i) REQUIRE(exec(ca.get(), "UPDATE kv SET v = " + std::to_string(3000 + i) + " WHERE k = 1").ok());
    CHECK(cache_stat(console_a.get(), "redis_bump_wait_timeouts") == timeouts);
    REQUIRE(::kill(b.pid(), SIGCONT) == 0);
    // B's lease ran out while it was stopped: its first read asks Redis.
    CHECK(scalar(cb.get(), read) == "3010");
    CHECK(scalar(cb.get(), read) == "3010");
  }
}

TEST_CASE("redis_lease: each instance's own length, shown by SHOW CONFIG; a mismatch is logged") {
  RedisServer redis;
  Conn d = kv_database(kDatabase);
  RelayConfig longer = shared_config(redis);
  longer.databases += "redis_lease = \"1s\"\n";   // still in [cache]: shared_config ends with it
  PgrelayProcess a(shared_config(redis));
  PgrelayProcess b(longer);
  auto console_a = connect_ok(a.conninfo("pgrelay"));
  auto console_b = connect_ok(b.conninfo("pgrelay"));
  auto config_value = [](PGconn* console) {
    std::unique_ptr<PGresult, ResultDeleter> r(PQexec(console, "SHOW CONFIG"));
    REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      if (std::string(PQgetvalue(r.get(), i, 0)) == "cache.redis_lease") return std::string(PQgetvalue(r.get(), i, 1));
    }
    return std::string("(none)");
  };
  CHECK(config_value(console_a.get()) == "300ms");
  CHECK(config_value(console_b.get()) == "1s");
  REQUIRE(wait_for_stat(console_a.get(), "redis_live_peers", 1));
  REQUIRE(wait_for_stat(console_b.get(), "redis_lease", 1));
  // A hears B's pings (its id says 1000 ms) and says so once.
  bool logged = false;
  for (int i = 0; i < 100 && !logged; ++i) {
    logged = a.log().find("has a lease of 1000 ms, this one 300 ms") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(50ms);
  }
  CHECK(logged);
  // Both still serve and invalidate across instances.
  auto ca = connect_ok(a.conninfo(kDatabase));
  auto cb = connect_ok(b.conninfo(kDatabase));
  const std::string read = "SELECT v FROM kv WHERE k = 1";
  CHECK(answered_from(cb.get(), console_b.get(), "hits", read) == "0");
  REQUIRE(exec(ca.get(), "UPDATE kv SET v = 5 WHERE k = 1").ok());
  CHECK(scalar(cb.get(), read) == "5");
}
