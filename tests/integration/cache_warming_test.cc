// Cache warming end to end (docs/cache.md, "Warming"): an instance that served a few hot reads
// saves them (warm_file at shutdown; Redis every warm_save_interval); the next instance that
// warms from them answers its first reads of those statements from memory, one that does not
// sends them to the server; CACHE WARM starts a run on demand; extended-protocol reads (text and
// binary parameters and results) are warmed as well.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <unistd.h>

#include <cstring>

#include <chrono>
#include <csignal>
#include <memory>
#include <thread>

#include "harness.h"
#include "redis_server.h"
#include "shared_cache_util.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "cache_warming_it";
const std::vector<std::string> kHot = {"SELECT v FROM kv WHERE k = 1", "SELECT v FROM kv WHERE k = 2",
                                       "SELECT count(*) FROM kv"};

RelayConfig warm_config(const std::string& file, bool on_start, const std::string& redis_url = "") {
  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  config.databases += "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\nwarm_statements = 10\nwarm_rate = 100\n"
                      "warm_save_interval = \"1s\"\nwarm_file = \"" + file + "\"\nwarm_on_start = " +
                      (on_start ? "true" : "false") + "\n";
  if (!redis_url.empty()) config.databases += "redis_url = \"" + redis_url + "\"\nredis_timeout = \"50ms\"\nredis_key_prefix = \"itwarm\"\n";
  return config;
}

// Reads every hot statement until each has been a hit (the first ones fetch catalog facts and fill).
void serve_hot(PGconn* c, PGconn* console) {
  for (const auto& sql : kHot) {
    bool hit = false;
    for (int i = 0; i < 10 && !hit; ++i) {
      const int64_t before = cache_stat(console, "hits");
      (void)scalar(c, sql);
      hit = cache_stat(console, "hits") > before;
    }
    REQUIRE_MESSAGE(hit, "never a hit: " << sql);
    for (int i = 0; i < 5; ++i) (void)scalar(c, sql);
  }
}

// The memory hits the first reads of every hot statement get (SHOW CACHE's hits are the memory
// tier's; redis_hits counts the answers taken from Redis apart).
int64_t first_read_hits(PGconn* c, PGconn* console) {
  const int64_t before = cache_stat(console, "hits");
  for (const auto& sql : kHot) (void)scalar(c, sql);
  return cache_stat(console, "hits") - before;
}

// `SELECT v FROM kv WHERE k = $1` over the extended protocol (PQexecParams: Parse, Bind,
// Describe, Execute, Sync): a text parameter of unspecified type with text results, or a binary
// int4 parameter with binary results. The value read.
std::string extended_read(PGconn* c, int k, bool binary) {
  const Oid types[1] = {23};
  const uint32_t be = htonl(uint32_t(k));
  const std::string text = std::to_string(k);
  const char* values[1] = {binary ? reinterpret_cast<const char*>(&be) : text.c_str()};
  const int lengths[1] = {binary ? 4 : 0};
  const int formats[1] = {binary ? 1 : 0};
  std::unique_ptr<PGresult, ResultDeleter> r(
      PQexecParams(c, "SELECT v FROM kv WHERE k = $1", 1, binary ? types : nullptr, values, lengths, formats, binary ? 1 : 0));
  REQUIRE_MESSAGE(PQresultStatus(r.get()) == PGRES_TUPLES_OK, PQresultErrorMessage(r.get()));
  REQUIRE(PQntuples(r.get()) == 1);
  if (!binary) return PQgetvalue(r.get(), 0, 0);
  REQUIRE(PQgetlength(r.get(), 0, 0) == 4);
  uint32_t v = 0;
  std::memcpy(&v, PQgetvalue(r.get(), 0, 0), 4);
  return std::to_string(int32_t(ntohl(v)));
}

void stop(PgrelayProcess& p) {
  p.signal(SIGTERM);
  REQUIRE(p.wait_exit(std::chrono::seconds(15)) == 0);
}

std::string temp_path(const char* what) {
  return "/tmp/pgrelay_warm_" + std::string(what) + "_" + std::to_string(::getpid());
}

}  // namespace

TEST_CASE("cache warming: warm_file across a restart, CACHE WARM, and Redis for a new instance") {
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase);
  REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + kDatabase).ok());
  auto d = connect_ok(direct_conninfo(kDatabase));
  direct(d.get(), "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 10), (2, 20)");

  SUBCASE("warm_file: a restarted instance's first reads are hits with warming, misses without") {
    const std::string file = temp_path("file");
    ::unlink(file.c_str());
    {
      PgrelayProcess a(warm_config(file, true));
      auto c = connect_ok(a.conninfo(kDatabase));
      auto console = connect_ok(a.conninfo("pgrelay"));
      serve_hot(c.get(), console.get());
      c.reset();
      stop(a);   // writes warm_file
    }
    REQUIRE(::access(file.c_str(), R_OK) == 0);
    {
      PgrelayProcess warmed(warm_config(file, true));
      auto console = connect_ok(warmed.conninfo("pgrelay"));
      CHECK(wait_for_stat(console.get(), "warm_replayed", int64_t(kHot.size())));
      CHECK(cache_stat(console.get(), "warm_filled") == int64_t(kHot.size()));
      CHECK(cache_stat(console.get(), "warm_failed") == 0);
      auto c = connect_ok(warmed.conninfo(kDatabase));
      CHECK(first_read_hits(c.get(), console.get()) == int64_t(kHot.size()));
      CHECK(warmed.log().find("cache warming (at start): 3 of 3 statements replayed") != std::string::npos);
    }
    {
      PgrelayProcess cold(warm_config(file, false));
      auto console = connect_ok(cold.conninfo("pgrelay"));
      auto c = connect_ok(cold.conninfo(kDatabase));
      CHECK(cache_stat(console.get(), "warm_replayed") == 0);
      const int64_t before = cache_stat(console.get(), "hits");
      (void)scalar(c.get(), kHot[0]);
      CHECK(cache_stat(console.get(), "hits") == before);   // a miss: nothing warmed it
      // CACHE WARM now (the list was loaded from warm_file at start: retried until it is in).
      QueryResult warm;
      for (int i = 0; i < 50; ++i) {
        warm = exec(console.get(), "CACHE WARM " + std::string(kDatabase));
        if (warm.ok()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      REQUIRE_MESSAGE(warm.ok(), warm.message);
      CHECK(wait_for_stat(console.get(), "warm_replayed", int64_t(kHot.size())));
      CHECK(first_read_hits(c.get(), console.get()) == int64_t(kHot.size()));
      // The console's errors: an unknown database, and nothing recorded.
      CHECK_FALSE(exec(console.get(), "CACHE WARM no_such_database").ok());
      CHECK_FALSE(exec(console.get(), "CACHE WARM postgres").ok());
    }
    ::unlink(file.c_str());
  }

  SUBCASE("extended-protocol reads: recorded with their parameters and formats, replayed, the first one a hit") {
    const std::string file = temp_path("extended");
    ::unlink(file.c_str());
    {
      PgrelayProcess a(warm_config(file, true));
      auto c = connect_ok(a.conninfo(kDatabase));
      auto console = connect_ok(a.conninfo("pgrelay"));
      for (const bool binary : {false, true}) {
        const int k = binary ? 2 : 1;
        bool hit = false;
        for (int i = 0; i < 10 && !hit; ++i) {
          const int64_t before = cache_stat(console.get(), "hits");
          CHECK(extended_read(c.get(), k, binary) == std::to_string(k * 10));
          hit = cache_stat(console.get(), "hits") > before;
        }
        REQUIRE_MESSAGE(hit, "never a hit: k = " << k << (binary ? " (binary)" : " (text)"));
      }
      c.reset();
      stop(a);   // writes warm_file
    }
    {
      PgrelayProcess warmed(warm_config(file, true));
      auto console = connect_ok(warmed.conninfo("pgrelay"));
      CHECK(wait_for_stat(console.get(), "warm_replayed", 2));
      CHECK(cache_stat(console.get(), "warm_filled") == 2);
      CHECK(cache_stat(console.get(), "warm_failed") == 0);
      auto c = connect_ok(warmed.conninfo(kDatabase));
      const int64_t before = cache_stat(console.get(), "hits");
      CHECK(extended_read(c.get(), 1, false) == "10");
      CHECK(extended_read(c.get(), 2, true) == "20");
      CHECK(cache_stat(console.get(), "hits") - before == 2);   // both from memory, filled by the replays
    }
    {
      PgrelayProcess cold(warm_config(file, false));
      auto console = connect_ok(cold.conninfo("pgrelay"));
      auto c = connect_ok(cold.conninfo(kDatabase));
      const int64_t before = cache_stat(console.get(), "hits");
      CHECK(extended_read(c.get(), 2, true) == "20");
      CHECK(cache_stat(console.get(), "hits") == before);   // nothing warmed it: a miss
    }
    ::unlink(file.c_str());
  }

  SUBCASE("Redis: a new instance warms from what another one found hot") {
    RedisServer redis;
    PgrelayProcess a(warm_config("", true, redis.url()));
    auto ca = connect_ok(a.conninfo(kDatabase));
    auto console_a = connect_ok(a.conninfo("pgrelay"));
    serve_hot(ca.get(), console_a.get());
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));   // two warm_save_intervals: saved to Redis
    PgrelayProcess b(warm_config("", true, redis.url()));
    auto console_b = connect_ok(b.conninfo("pgrelay"));
    CHECK(wait_for_stat(console_b.get(), "warm_replayed", int64_t(kHot.size())));
    // The warm replays took Redis's answers into memory: the first reads are memory hits.
    CHECK(cache_stat(console_b.get(), "warm_filled") == int64_t(kHot.size()));
    auto cb = connect_ok(b.conninfo(kDatabase));
    CHECK(first_read_hits(cb.get(), console_b.get()) == int64_t(kHot.size()));
    // Without warming, a new instance's first reads come from Redis (or the server), not memory.
    PgrelayProcess c(warm_config("", false, redis.url()));
    auto console_c = connect_ok(c.conninfo("pgrelay"));
    auto cc = connect_ok(c.conninfo(kDatabase));
    CHECK(first_read_hits(cc.get(), console_c.get()) == 0);
  }
}
