// The query cache's Redis tier end to end: two pgrelay instances sharing one redis-server (and
// one PostgreSQL). An answer filled through one is a hit on the other; a write through one is
// seen by the next read through the other; Redis killed, restarted or stalled costs hits, never
// an error or a stale answer.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "harness.h"
#include "redis_server.h"
#include "shared_cache_util.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "shared_cache_it";

}  // namespace

TEST_CASE("Redis tier: shared answers, writes seen across instances, Redis down or slow") {
  TwoInstances two(kDatabase);
  auto& [redis, d, a, b, ca, cb, console_a, console_b] = two;

  SUBCASE("an answer filled through one instance is a hit on the other") {
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    CHECK(answered_from(ca.get(), console_a.get(), "hits", read) == "0");
    // The store to Redis is asynchronous (it never delays the client): it lands soon after.
    const auto stored_by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (cache_stat(console_a.get(), "redis_stores") < 1 && std::chrono::steady_clock::now() < stored_by)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(cache_stat(console_a.get(), "redis_stores") >= 1);
    // B learns the table's catalog facts from another read of it, so its first lookup of `read`
    // is already cacheable (a lookup waiting for facts goes to the server and fills anew).
    (void)scalar(cb.get(), "SELECT v FROM kv WHERE k = 2");
    (void)scalar(cb.get(), "SELECT v FROM kv WHERE k = 2");
    // A change pgrelay cannot see: only a cached answer still says 0.
    direct(d.get(), "UPDATE kv SET v = 7 WHERE k = 1");
    CHECK(answered_from(cb.get(), console_b.get(), "redis_hits", read) == "0");
    // Kept in B's memory too, confirmed against Redis on each hit.
    CHECK(answered_from(cb.get(), console_b.get(), "hits", read) == "0");
    CHECK(cache_stat(console_b.get(), "redis_failures") == 0);
  }

  SUBCASE("a write through one instance is seen by the next read through the other") {
    const std::string read = "SELECT v FROM kv WHERE k = 2";
    (void)answered_from(cb.get(), console_b.get(), "hits", read);
    const int rounds = std::getenv("CI") ? 300 : 1000;
    int64_t b_hits_before = cache_stat(console_b.get(), "hits");
    int stale = 0;
    for (int i = 1; i <= rounds; ++i) {
      // B holds the answer from before the write, in memory and in Redis.
      (void)scalar(cb.get(), read);
      const std::string write = i % 2 ? "UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 2"
                                      : "BEGIN; UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 2; COMMIT";
      REQUIRE(exec(ca.get(), write).ok());
      if (scalar(cb.get(), read) != std::to_string(i)) ++stale;
    }
    CHECK(stale == 0);
    // The loop did run on cached answers: B served the reads between writes from its tiers.
    CHECK(cache_stat(console_b.get(), "hits") > b_hits_before);
    CHECK(cache_stat(console_a.get(), "redis_bumps") >= rounds);
  }

  SUBCASE("the invalidation channel: a write through A makes B's memory entry stale before B asks Redis") {
    const std::string read = "SELECT v FROM kv WHERE k = 2";
    // Both subscribed (worker 0 of each, at start).
    for (int i = 0; i < 50 && (cache_stat(console_a.get(), "redis_channel_up") == 0 ||
                                cache_stat(console_b.get(), "redis_channel_up") == 0); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(cache_stat(console_a.get(), "redis_channel_up") == 1);
    REQUIRE(cache_stat(console_b.get(), "redis_channel_up") == 1);
    for (int round = 0; round < 5; ++round) {
      (void)answered_from(cb.get(), console_b.get(), "hits", read);
      const int64_t heard = cache_stat(console_b.get(), "redis_invalidations_received");
      const int64_t dropped = cache_stat(console_b.get(), "invalidated_generation");
      const int64_t sent = cache_stat(console_a.get(), "redis_invalidations_sent");
      REQUIRE(exec(ca.get(), "UPDATE kv SET v = " + std::to_string(300 + round) + " WHERE k = 2").ok());
      CHECK(cache_stat(console_a.get(), "redis_invalidations_sent") == sent + 1);
      for (int i = 0; i < 100 && cache_stat(console_b.get(), "redis_invalidations_received") == heard; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      CHECK(cache_stat(console_b.get(), "redis_invalidations_received") == heard + 1);
      // B's memory entry is stale by B's own generations now: the read drops it (without the
      // channel, memory would offer it and only Redis's versions would refuse it).
      CHECK(scalar(cb.get(), read) == std::to_string(300 + round));
      CHECK(cache_stat(console_b.get(), "invalidated_generation") > dropped);
    }
    // An instance does not hear itself.
    CHECK(cache_stat(console_a.get(), "redis_invalidations_received") == 0);
  }

  SUBCASE("a procedure that commits and runs on through A: B answers from neither tier meanwhile") {
    direct(d.get(), "CREATE OR REPLACE PROCEDURE commit_then_wait(n int) LANGUAGE plpgsql AS $$ "
                    "BEGIN UPDATE kv SET v = n WHERE k = 1; COMMIT; PERFORM pg_sleep(1.5); END $$");
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    for (int round = 0; round < 2; ++round) {
      const std::string n = std::to_string(500 + round);
      (void)answered_from(cb.get(), console_b.get(), "hits", read);   // B holds the answer from before
      REQUIRE(PQsendQuery(ca.get(), ("CALL commit_then_wait(" + n + ")").c_str()) == 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(400));    // its COMMIT is done; it sleeps on
      for (int i = 0; i < 5; ++i) {
        CHECK(scalar(cb.get(), read) == n);   // the committed row, not the cached answer
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      std::unique_ptr<PGresult, ResultDeleter> called(PQgetResult(ca.get()));
      CHECK(PQresultStatus(called.get()) == PGRES_COMMAND_OK);
      while (PGresult* more = PQgetResult(ca.get())) PQclear(more);
    }
  }

  SUBCASE("a CALL right after a CALL: its connection stays its own while its window opens") {
    // After a CALL of a procedure whose catalog facts were missing, A's pump fetches them on the
    // connection (a query of its own) while the client's next CALL waits for its Redis window:
    // the pump must not give the connection back under that CALL (A crashed on it). A new
    // procedure each round, so each round fetches.
    for (int round = 0; round < 30; ++round) {
      const std::string name = "call_twice_" + std::to_string(round);
      direct(d.get(), "CREATE PROCEDURE " + name + "(n int) LANGUAGE plpgsql AS $$ "
                      "BEGIN UPDATE kv SET v = n WHERE k = 1; COMMIT; END $$");
      for (int call = 0; call < 2; ++call) {
        auto called = exec(ca.get(), "CALL " + name + "(" + std::to_string(2 * round + call) + ")");
        REQUIRE_MESSAGE(called.ok(), "round " << round << ", call " << call << ": " << called.message);
      }
      CHECK(scalar(d.get(), "SELECT v FROM kv WHERE k = 1") == std::to_string(2 * round + 1));
    }
  }

  SUBCASE("DDL through B that hides a table: a client preparing through A afterwards reads the new one") {
    // The cache_differential_shared failure: B ran CREATE TABLE in a schema ahead of public on
    // search_path, and A kept serving a new client's prepared statement from the shared server
    // statement parsed against public's table (PostgreSQL re-parses nothing: no object it used
    // changed).
    // The schema exists before: PostgreSQL re-parses a statement whose search_path gained a
    // schema, not one that a new table in a schema it had hides.
    direct(d.get(), "CREATE SCHEMA postgres");
    const char* text = "SELECT v FROM kv WHERE k = 1";
    auto prepared = [&](PGconn* c) {
      std::unique_ptr<PGresult, ResultDeleter> p(PQprepare(c, "s1", text, 0, nullptr));
      REQUIRE_MESSAGE(PQresultStatus(p.get()) == PGRES_COMMAND_OK, PQerrorMessage(c));
      std::unique_ptr<PGresult, ResultDeleter> e(PQexecPrepared(c, "s1", 0, nullptr, nullptr, nullptr, 0));
      auto r = to_query_result(c, e.get());
      REQUIRE_MESSAGE(r.ok(), r.message);
      REQUIRE(r.rows.size() == 1);
      return r.rows[0].at(0).value_or("NULL");
    };
    // Each of A's four server connections gets the shared statement: four clients in a
    // transaction at once.
    std::vector<Conn> holders;
    for (int i = 0; i < 4; ++i) {
      holders.push_back(connect_ok(a.conninfo(kDatabase)));
      REQUIRE(exec(holders.back().get(), "BEGIN").ok());
      CHECK(prepared(holders.back().get()) == "0");
    }
    for (auto& h : holders) REQUIRE(exec(h.get(), "COMMIT").ok());
    const int64_t heard = cache_stat(console_a.get(), "redis_invalidations_received");
    REQUIRE(exec(cb.get(), "CREATE TABLE postgres.kv AS SELECT 1 AS k, 42 AS v").ok());
    CHECK(scalar(d.get(), text) == "42");   // "$user" comes first on search_path
    for (int i = 0; i < 250 && cache_stat(console_a.get(), "redis_invalidations_received") == heard; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (int i = 0; i < 4; ++i) {
      auto fresh = connect_ok(a.conninfo(kDatabase));
      CHECK(prepared(fresh.get()) == "42");
    }
  }

  SUBCASE("CACHE FLUSH reaches every instance; CACHE FLUSH QUERY stops this one serving Redis's copy") {
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    (void)answered_from(ca.get(), console_a.get(), "hits", read);
    (void)answered_from(cb.get(), console_b.get(), "hits", read);
    // Out-of-band changes, made visible by flushing through A only.
    direct(d.get(), "UPDATE kv SET v = 41 WHERE k = 1");
    CHECK(scalar(cb.get(), read) == "0");
    auto flushed = exec(console_a.get(), "CACHE FLUSH");
    REQUIRE_MESSAGE(flushed.ok(), flushed.message);
    CHECK(scalar(ca.get(), read) == "41");
    CHECK(scalar(cb.get(), read) == "41");

    (void)answered_from(cb.get(), console_b.get(), "hits", read);
    direct(d.get(), "UPDATE kv SET v = 42 WHERE k = 1");
    REQUIRE(exec(console_b.get(), "CACHE FLUSH TABLE public.kv").ok());
    CHECK(scalar(ca.get(), read) == "42");
    CHECK(scalar(cb.get(), read) == "42");

    // QUERY: Redis cannot find a query's answers; the instance that flushed stops serving them
    // (its own memory copy is dropped, Redis's is refused), and fills a fresh one.
    (void)answered_from(ca.get(), console_a.get(), "hits", read);
    direct(d.get(), "UPDATE kv SET v = 43 WHERE k = 1");
    auto q = exec(console_a.get(), "SHOW CACHES");
    REQUIRE(q.ok());
    std::string fingerprint;
    for (const Row& row : q.rows) {
      if (row[1] && row[1]->find("kv") != std::string::npos) fingerprint = row[0].value_or("");
    }
    REQUIRE(!fingerprint.empty());
    REQUIRE(exec(console_a.get(), "CACHE FLUSH QUERY " + fingerprint).ok());
    CHECK(scalar(ca.get(), read) == "43");
  }

  SUBCASE("Redis killed and restarted: no error, nothing stale, both tiers back") {
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    (void)answered_from(ca.get(), console_a.get(), "hits", read);
    redis.kill();
    for (int i = 100; i < 120; ++i) {
      auto w = exec(ca.get(), "UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 1");
      REQUIRE_MESSAGE(w.ok(), w.message);
      // Neither instance can check its entries: both ask the server.
      CHECK(scalar(cb.get(), read) == std::to_string(i));
      CHECK(scalar(ca.get(), read) == std::to_string(i));
    }
    CHECK(cache_stat(console_a.get(), "redis_failures") > 0);
    CHECK(cache_stat(console_a.get(), "redis_breakers_open") > 0);
    redis.start();   // empty: no persistence
    // Back after the breaker's wait: answers are stored and shared again.
    std::string value;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    bool shared_again = false;
    while (!shared_again && std::chrono::steady_clock::now() < until) {
      const int64_t before = cache_stat(console_b.get(), "redis_hits") + cache_stat(console_b.get(), "hits");
      (void)scalar(ca.get(), read);
      value = scalar(cb.get(), read);
      CHECK(value == "119");
      shared_again = cache_stat(console_b.get(), "redis_hits") + cache_stat(console_b.get(), "hits") > before;
      if (!shared_again) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    CHECK(shared_again);
    // A write after the restart is still seen across instances.
    REQUIRE(exec(ca.get(), "UPDATE kv SET v = 200 WHERE k = 1").ok());
    CHECK(scalar(cb.get(), read) == "200");
  }

  SUBCASE("Redis stalled: clients wait no longer than redis_timeout, and get the server's answer") {
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    (void)answered_from(ca.get(), console_a.get(), "hits", read);
    // DEBUG SLEEP blocks the whole Redis server for two seconds.
    auto sleeper = std::thread([&] { (void)run_command("redis-cli -p " + std::to_string(redis.port()) + " DEBUG SLEEP 2", 10s); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // A's lease runs out (it cannot renew while Redis sleeps): from then on its hits need Redis.
    REQUIRE(wait_for_stat(console_a.get(), "redis_lease", 0, 1));
    direct(d.get(), "UPDATE kv SET v = 55 WHERE k = 1");   // a cached answer would say otherwise
    auto worst = std::chrono::milliseconds(0);
    for (int i = 0; i < 5; ++i) {
      const auto started = std::chrono::steady_clock::now();
      CHECK(scalar(ca.get(), read) == "55");
      worst = std::max(worst, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started));
    }
    sleeper.join();
    // 50 ms of redis_timeout, plus the query itself; far below the seconds Redis slept.
    CHECK(worst < std::chrono::milliseconds(400));
  }
}
