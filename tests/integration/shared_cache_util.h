// Helpers of the Redis tier's integration tests (shared_cache_test, shared_lease_test): SHOW
// CACHE by column, a pgrelay configured for one redis-server, reads run until a tier answers.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "harness.h"
#include "redis_server.h"

namespace pgrelay::it {

// SHOW CACHE of one instance, by column name.
inline int64_t cache_stat(PGconn* console, const std::string& column) {
  std::unique_ptr<PGresult, ResultDeleter> r(PQexec(console, "SHOW CACHE"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  REQUIRE(PQntuples(r.get()) == 1);
  const int i = PQfnumber(r.get(), column.c_str());
  REQUIRE_MESSAGE(i >= 0, "SHOW CACHE has no column " << column);
  return std::stoll(PQgetvalue(r.get(), 0, i));
}

inline RelayConfig shared_config(const RedisServer& redis, const std::string& timeout = "50ms") {
  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  config.databases += "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\nredis_url = \"" + redis.url() +
                      "\"\nredis_timeout = \"" + timeout + "\"\nredis_key_prefix = \"it\"\n";
  return config;
}

inline void direct(PGconn* d, const std::string& sql) {
  auto r = exec(d, sql);
  REQUIRE_MESSAGE(r.ok(), sql << ": " << r.message);
}

// Reads `sql` through `c` until `console`'s instance answers it from a tier (`column` moves),
// and returns that answer. The first executions fetch catalog facts and fill.
inline std::string answered_from(PGconn* c, PGconn* console, const std::string& column, const std::string& sql) {
  for (int i = 0; i < 10; ++i) {
    const int64_t before = cache_stat(console, column);
    std::string value = scalar(c, sql);
    if (cache_stat(console, column) > before) return value;
  }
  FAIL("never answered from the cache (" << column << "): " << sql);
  return {};
}


// The database `name` made anew with one table, kv (k, v), holding (1, 0) and (2, 0): a direct
// connection to it.
inline Conn kv_database(const std::string& name) {
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), "DROP DATABASE IF EXISTS " + name);
  REQUIRE(exec(admin.get(), "CREATE DATABASE " + name).ok());
  auto d = connect_ok(direct_conninfo(name));
  direct(d.get(), "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0), (2, 0)");
  return d;
}

// One redis-server, the kv database made anew (`d`: a direct connection), and two pgrelay
// instances sharing them, with a client of the database and a console on each
// (`auto& [redis, d, a, b, ca, cb, console_a, console_b] = two;`).
struct TwoInstances {
  explicit TwoInstances(const std::string& database)
      : d(kv_database(database)),
        a(shared_config(redis)),
        b(shared_config(redis)),
        ca(connect_ok(a.conninfo(database))),
        cb(connect_ok(b.conninfo(database))),
        console_a(connect_ok(a.conninfo("pgrelay"))),
        console_b(connect_ok(b.conninfo("pgrelay"))) {}
  RedisServer redis;
  Conn d;
  PgrelayProcess a, b;
  Conn ca, cb, console_a, console_b;
};

// Polls SHOW CACHE's `column` until it reads `want` (true) or `seconds` pass (false).
inline bool wait_for_stat(PGconn* console, const std::string& column, int64_t want, int seconds = 10) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (cache_stat(console, column) != want) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace pgrelay::it
