// The query cache's logical replication listener end to end: writes made directly on PostgreSQL
// (never through pgrelay) make pgrelay's cached answers stale within a bound, TRUNCATE and
// writes to a partition included; the listener survives its walsender being terminated; its
// temporary slot is gone once pgrelay stops, a persistent one stays; a role without REPLICATION
// is refused with advice and its database is never answered from the cache.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <map>
#include <thread>

#include "harness.h"
#include "redis_server.h"

using namespace pgrelay::it;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kDatabase = "replication_it";
// Generous for a loaded 2-core CI machine (ASan, the other tests beside this one); the bench
// measures the real bound (p99 of a few ms).
constexpr auto kBound = std::chrono::seconds(10);
// How long the other waits (a slot, the listener's state) may take there.
constexpr auto kPatience = std::chrono::seconds(15);

// The one row of SHOW REPLICATION, by column (empty when there is none).
std::map<std::string, std::string> replication_row(PGconn* console) {
  Result r(PQexec(console, "SHOW REPLICATION"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  std::map<std::string, std::string> row;
  if (PQntuples(r.get()) < 1) return row;
  for (int i = 0; i < PQnfields(r.get()); ++i) row[PQfname(r.get(), i)] = PQgetvalue(r.get(), 0, i);
  return row;
}

int64_t cache_stat(PGconn* console, const std::string& column) {
  Result r(PQexec(console, "SHOW CACHE"));
  REQUIRE(PQresultStatus(r.get()) == PGRES_TUPLES_OK);
  const int i = PQfnumber(r.get(), column.c_str());
  REQUIRE(i >= 0);
  return std::stoll(PQgetvalue(r.get(), 0, i));
}

// What on the server holds a new slot up: transactions with an xid, prepared ones.
std::string slot_blockers() {
  auto d = connect_ok(direct_conninfo());
  return scalar(d.get(),
                "SELECT coalesce(string_agg(format('pid %s xid %s for %s s: %s', pid, backend_xid,"
                " round(extract(epoch FROM now() - xact_start)), left(query, 80)), '; '), 'none')"
                " FROM pg_stat_activity WHERE backend_xid IS NOT NULL") +
         "; prepared: " + scalar(d.get(), "SELECT coalesce(string_agg(gid, ', '), 'none') FROM pg_prepared_xacts");
}

// Waits until the listener streams (and returns its row). A new slot waits for every transaction
// in progress on the server, and the other tests' run beside this one: 60 s.
std::map<std::string, std::string> wait_streaming(PGconn* console, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + timeout;
  std::map<std::string, std::string> row;
  while (Clock::now() < deadline) {
    row = replication_row(console);
    if (row["state"] == "streaming") return row;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("the listener never streamed: state " << row["state"] << ", last error " << row["last_error"]
                                             << "; transactions in progress on the server: " << slot_blockers());
  return row;
}

void direct(PGconn* d, const std::string& sql) {
  auto r = exec(d, sql);
  REQUIRE_MESSAGE(r.ok(), sql << ": " << r.message);
}

// Reads `sql` through `c` until it is answered from the cache, and returns that answer.
std::string cached(PGconn* c, PGconn* console, const std::string& sql) {
  for (int i = 0; i < 20; ++i) {
    const int64_t before = cache_stat(console, "hits");
    std::string value = scalar(c, sql);
    if (cache_stat(console, "hits") > before) return value;
  }
  FAIL("never answered from the cache: " << sql);
  return {};
}

// Reads `sql` through `c` until it says `expected`; the time that took, or FAIL past kBound.
std::chrono::milliseconds until_seen(PGconn* c, const std::string& sql, const std::string& expected) {
  const auto start = Clock::now();
  std::string last;
  while (Clock::now() - start < kBound) {
    last = scalar(c, sql);
    if (last == expected) return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  FAIL(sql << " still says " << last << " (expected " << expected << ") after " << kBound.count() << " s");
  return {};
}

bool slot_exists(PGconn* d, const std::string& slot) {
  return scalar(d, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '" + slot + "'") == "1";
}

// Whether `holds` comes true within kPatience, asked every 25 ms.
template <class Pred>
bool within_patience(Pred holds) {
  for (const auto until = Clock::now() + kPatience; Clock::now() < until;) {
    if (holds()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return holds();
}

bool wait_slot(PGconn* d, const std::string& slot, bool exists) {
  return within_patience([&] { return slot_exists(d, slot) == exists; });
}

// Whether `slot` is free within kPatience: the server's walsender ends a moment after the listener
// that used it, and an active slot cannot be dropped.
bool wait_slot_free(PGconn* d, const std::string& slot) {
  return within_patience([&] {
    return scalar(d, "SELECT count(*) FROM pg_replication_slots WHERE active AND slot_name = '" + slot + "'") == "0";
  });
}

// kDatabase made anew (dropped with what an earlier case left in it); a direct connection to it.
// A slot on it blocks the drop: the walsender of the pgrelay that an earlier subcase stopped
// ends a moment later (slower under ASan), and its temporary slot with it.
Conn fresh_database() {
  auto admin = connect_ok(direct_conninfo());
  const std::string on_it = std::string("FROM pg_replication_slots WHERE database = '") + kDatabase + "'";
  REQUIRE_MESSAGE(within_patience([&] { return scalar(admin.get(), "SELECT count(*) " + on_it + " AND active") == "0"; }),
                  "a replication slot on " << kDatabase << " is still in use");
  exec(admin.get(), "SELECT pg_drop_replication_slot(slot_name) " + on_it);
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase + " WITH (FORCE)");
  REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + kDatabase).ok());
  return connect_ok(direct_conninfo(kDatabase));
}

// `redis`: the cache's Redis tier too. `replication` false: the database entry without a listener.
RelayConfig replication_config(const std::string& user, const std::string& extra = "", const std::string& redis = "",
                               bool replication = true) {
  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  config.databases += "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\n";
  if (!redis.empty()) config.databases += "redis_url = \"" + redis + "\"\nredis_timeout = \"50ms\"\nredis_key_prefix = \"repl\"\n";
  config.add_database(kDatabase, "user = \"" + user + "\"\n" +
                                     (replication ? "[databases." + std::string(kDatabase) + ".cache]\nreplication = true\n" + extra : ""));
  return config;
}

}  // namespace

TEST_CASE("replication listener: direct writes invalidate, TRUNCATE too, it survives its walsender, its slot goes") {
  auto d = fresh_database();
  direct(d.get(),
         "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0), (2, 0);"
         "CREATE TABLE logs (id int); INSERT INTO logs SELECT generate_series(1, 5);"
         "CREATE TABLE parts (k int, v int) PARTITION BY RANGE (k);"
         "CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100);"
         "INSERT INTO parts VALUES (1, 1)");

  PgrelayProcess relay(replication_config("postgres"));
  auto c = connect_ok(relay.conninfo(kDatabase));
  auto console = connect_ok(relay.conninfo("pgrelay"));
  const auto row = wait_streaming(console.get());
  const std::string slot = row.at("slot");
  CHECK(slot.rfind("pgrelay_", 0) == 0);
  CHECK(row.at("publication") == "pgrelay");
  CHECK(row.at("persistent") == "no");
  CHECK(slot_exists(d.get(), slot));
  CHECK(scalar(d.get(), "SELECT puballtables FROM pg_publication WHERE pubname = 'pgrelay'") == "t");

  SUBCASE("an UPDATE, a TRUNCATE and a write to a partition made on the server are seen through the cache") {
    const std::string read = "SELECT v FROM kv WHERE k = 1";
    CHECK(cached(c.get(), console.get(), read) == "0");
    direct(d.get(), "UPDATE kv SET v = 1 WHERE k = 1");
    MESSAGE("UPDATE seen after " << until_seen(c.get(), read, "1").count() << " ms");

    const std::string count = "SELECT count(*) FROM logs";
    CHECK(cached(c.get(), console.get(), count) == "5");
    direct(d.get(), "TRUNCATE logs");
    MESSAGE("TRUNCATE seen after " << until_seen(c.get(), count, "0").count() << " ms");

    const std::string parent = "SELECT sum(v) FROM parts";
    CHECK(cached(c.get(), console.get(), parent) == "1");
    direct(d.get(), "INSERT INTO parts_low VALUES (2, 10)");   // the partition, named directly
    MESSAGE("partition INSERT seen after " << until_seen(c.get(), parent, "11").count() << " ms");

    const auto after = replication_row(console.get());
    CHECK(std::stoll(after.at("commits")) >= 3);
    CHECK(std::stoll(after.at("truncates")) >= 1);
    CHECK(std::stoll(after.at("table_bumps")) >= 4);   // kv, logs, parts_low and its parent parts
  }

  SUBCASE("the walsender terminated: the stream comes back, and what was written meanwhile is seen") {
    const std::string read = "SELECT v FROM kv WHERE k = 2";
    CHECK(cached(c.get(), console.get(), read) == "0");
    CHECK(scalar(d.get(), "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = '" + slot +
                              "'") == "1");
    direct(d.get(), "UPDATE kv SET v = 2 WHERE k = 2");
    until_seen(c.get(), read, "2");
    const auto back = wait_streaming(console.get());
    CHECK(std::stoll(back.at("stream_losses")) >= 1);
    // Streaming again: a write made now is seen through a fresh cached answer.
    CHECK(cached(c.get(), console.get(), read) == "2");
    direct(d.get(), "UPDATE kv SET v = 3 WHERE k = 2");
    until_seen(c.get(), read, "3");
  }

  SUBCASE("its temporary slot is gone once pgrelay stops") {
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(std::chrono::seconds(15)).has_value());
    CHECK(wait_slot(d.get(), slot, false));
  }
}

TEST_CASE("replication listener: a persistent slot stays after a stop, and is resumed from") {
  auto d = fresh_database();
  direct(d.get(), "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0)");
  const std::string slot = "relay_it_persistent";
  const std::string extra = "replication_slot = \"" + slot + "\"\nreplication_slot_persistent = true\n";
  {
    PgrelayProcess relay(replication_config("postgres", extra));
    auto console = connect_ok(relay.conninfo("pgrelay"));
    CHECK(wait_streaming(console.get()).at("persistent") == "yes");
    relay.signal(SIGTERM);
    REQUIRE(relay.wait_exit(std::chrono::seconds(15)).has_value());
  }
  CHECK(wait_slot(d.get(), slot, true));
  {
    PgrelayProcess relay(replication_config("postgres", extra));
    auto c = connect_ok(relay.conninfo(kDatabase));
    auto console = connect_ok(relay.conninfo("pgrelay"));
    wait_streaming(console.get());
    CHECK(cached(c.get(), console.get(), "SELECT v FROM kv") == "0");
    direct(d.get(), "UPDATE kv SET v = 5");
    until_seen(c.get(), "SELECT v FROM kv", "5");
  }
  REQUIRE(wait_slot_free(d.get(), slot));
  direct(d.get(), "SELECT pg_drop_replication_slot('" + slot + "')");
}

TEST_CASE("replication listener: a transaction in progress on the server holds the new slot up, and SHOW REPLICATION says so") {
  auto d = fresh_database();
  direct(d.get(), "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0)");
  // In another database: the server waits for every transaction with an xid, wherever it is.
  auto holder = connect_ok(direct_conninfo());
  direct(holder.get(), "BEGIN");
  CHECK(!scalar(holder.get(), "SELECT txid_current()").empty());

  PgrelayProcess relay(replication_config("postgres"));
  auto c = connect_ok(relay.conninfo(kDatabase));
  auto console = connect_ok(relay.conninfo("pgrelay"));
  std::map<std::string, std::string> row;
  within_patience([&] { return (row = replication_row(console.get()))["state"] == "creating_slot"; });
  CHECK(row["state"] == "creating_slot");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(replication_row(console.get())["state"] == "creating_slot");   // still: the transaction is open
  CHECK(scalar(c.get(), "SELECT v FROM kv") == "0");                  // answered by the server meanwhile
  CHECK(cache_stat(console.get(), "hits") == 0);
  direct(holder.get(), "COMMIT");
  wait_streaming(console.get());
  CHECK(cached(c.get(), console.get(), "SELECT v FROM kv") == "0");
}

TEST_CASE("replication listener: a role without REPLICATION is told so, and its database is never answered from the cache") {
  auto d = fresh_database();
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), "DROP ROLE IF EXISTS relay_norepl");
  direct(admin.get(), "CREATE ROLE relay_norepl LOGIN");
  direct(d.get(), "CREATE PUBLICATION pgrelay FOR ALL TABLES; CREATE TABLE kv (k int); INSERT INTO kv VALUES (1);"
                  "GRANT SELECT ON kv TO relay_norepl");

  PgrelayProcess relay(replication_config("relay_norepl"));
  auto c = connect_ok(relay.conninfo(kDatabase, "relay_norepl"));
  auto console = connect_ok(relay.conninfo("pgrelay"));
  std::map<std::string, std::string> row;
  within_patience([&] { return !(row = replication_row(console.get()))["last_error"].empty(); });
  CHECK(row["last_error"].find("REPLICATION") != std::string::npos);
  CHECK(row["state"] != "streaming");
  for (int i = 0; i < 5; ++i) CHECK(scalar(c.get(), "SELECT k FROM kv") == "1");
  CHECK(cache_stat(console.get(), "hits") == 0);
  c.reset();
  console.reset();
}

TEST_CASE("replication listener with the Redis tier: a direct write is seen through an instance without a listener") {
  RedisServer redis;
  auto d = fresh_database();
  direct(d.get(), "CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0)");

  PgrelayProcess a(replication_config("postgres", "", redis.url()));
  PgrelayProcess b(replication_config("postgres", "", redis.url(), /*replication=*/false));
  auto console_a = connect_ok(a.conninfo("pgrelay"));
  wait_streaming(console_a.get());
  auto cb = connect_ok(b.conninfo(kDatabase));
  auto console_b = connect_ok(b.conninfo("pgrelay"));
  CHECK(replication_row(console_b.get()).empty());   // B has no listener: A's bumps reach it through Redis
  const std::string read = "SELECT v FROM kv WHERE k = 1";
  CHECK(cached(cb.get(), console_b.get(), read) == "0");
  for (int i = 1; i <= 20; ++i) {
    direct(d.get(), "UPDATE kv SET v = " + std::to_string(i) + " WHERE k = 1");
    until_seen(cb.get(), read, std::to_string(i));
  }
  CHECK(cache_stat(console_a.get(), "redis_bumps") >= 20);
}
