// The query-result cache end to end: a repeated read is answered from memory (shown by a write
// that bypasses pgrelay staying unseen), and every write through pgrelay, every key input and
// every uncacheable class gives the server's own answer.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "cache_it_util.h"
#include "harness.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "cache_it";
constexpr const char* kOffDatabase = "cache_off_it";

const char* kSchema = R"SQL(
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE SCHEMA s2;
CREATE TABLE s2.items (id int PRIMARY KEY, v text);
INSERT INTO s2.items VALUES (1, 's2');
CREATE TABLE events (id int, region text, ts timestamptz) PARTITION BY LIST (region);
CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
INSERT INTO events VALUES (1, 'eu', '2024-01-01 12:00:00+00');
CREATE VIEW v_items AS SELECT id, upper(v) AS v FROM items;
CREATE FUNCTION bump_items() RETURNS int VOLATILE LANGUAGE sql AS 'UPDATE items SET v = v || ''!'' WHERE id = 3 RETURNING id';
-- Writes no statement names: through a view, a column default, an operator.
CREATE FUNCTION touch() RETURNS int VOLATILE LANGUAGE sql AS 'UPDATE items SET v = v || ''+'' WHERE id = 2 RETURNING id';
CREATE VIEW touching AS SELECT touch() AS t;
CREATE TABLE stamped (id int, t int DEFAULT touch());
CREATE FUNCTION touch_eq(int, int) RETURNS bool VOLATILE LANGUAGE sql AS 'SELECT touch() IS NOT NULL AND $1 = $2';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = touch_eq);
CREATE PROCEDURE commit_then_wait(k int) LANGUAGE plpgsql AS $$
BEGIN UPDATE items SET v = 'proc' WHERE id = k; COMMIT; PERFORM pg_sleep(0.5); END $$;
)SQL";

// The same with parameters, over the extended protocol (PQexecParams: Parse, Bind, Describe,
// Execute, Sync).
std::string primed_params(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  for (int i = 0; i < 10; ++i) {
    const int64_t before = cache_hits();
    auto r = exec_params(c, sql, params);
    REQUIRE_MESSAGE(r.ok(), r.message);
    REQUIRE(r.rows.size() == 1);
    if (cache_hits() > before) return r.rows[0][0].value_or("NULL");
  }
  FAIL("never answered from the cache: " << sql);
  return {};
}

std::string param_value(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  auto r = exec_params(c, sql, params);
  REQUIRE_MESSAGE(r.ok(), r.message);
  REQUIRE(r.rows.size() == 1);
  return r.rows[0][0].value_or("NULL");
}

// Runs `sql` through pgrelay as often as priming a cacheable one would, and returns the last value.
std::string repeated(PGconn* c, const std::string& sql) {
  for (int i = 0; i < 4; ++i) (void)scalar(c, sql);
  return scalar(c, sql);
}

void direct(PGconn* d, const std::string& sql) {
  auto r = exec(d, sql);
  REQUIRE_MESSAGE(r.ok(), sql << ": " << r.message);
}

}  // namespace

TEST_CASE("query cache: hits, invalidation by writes through pgrelay, keys, and what is never cached") {
  auto admin = connect_ok(direct_conninfo());
  for (const char* db : {kDatabase, kOffDatabase}) {
    exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + db);
    REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + db).ok());
  }
  auto d = connect_ok(direct_conninfo(kDatabase));
  direct(d.get(), kSchema);

  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  config.add_database(kOffDatabase, "[databases.cache_off_it.cache]\nenabled = false\n");
  // The same server database under a second name, in session mode; and a third with a short TTL.
  config.add_database("cache_session_it", "dbname = \"cache_it\"\npool_mode = \"session\"\n");
  config.add_database("cache_ttl_it", "dbname = \"cache_it\"\n[databases.cache_ttl_it.cache]\ndefault_ttl = \"1500ms\"\n");
  config.databases += "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\n";
  PgrelayProcess relay(config);
  auto console = connect_ok(relay.conninfo("pgrelay"));
  g_console = console.get();
  auto a = connect_ok(relay.conninfo(kDatabase));
  auto b = connect_ok(relay.conninfo(kDatabase));

  SUBCASE("a repeated read comes from memory; a write through pgrelay is seen at once") {
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 1") == "a");
    direct(d.get(), "UPDATE items SET v = 'bypassed' WHERE id = 1");
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 1") == "a");   // a hit: the bypassing write is unseen
    CHECK(scalar(b.get(), "SELECT v FROM items WHERE id = 1") == "a");   // from another client too
    REQUIRE(exec(b.get(), "UPDATE items SET v = 'relayed' WHERE id = 1").ok());
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 1") == "relayed");

    // Inside a transaction: its own reads go to the server; others see the write at its commit.
    REQUIRE(exec(b.get(), "BEGIN").ok());
    REQUIRE(exec(b.get(), "UPDATE items SET v = 'in-tx' WHERE id = 1").ok());
    CHECK(scalar(b.get(), "SELECT v FROM items WHERE id = 1") == "in-tx");
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 1") == "relayed");
    REQUIRE(exec(b.get(), "COMMIT").ok());
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 1") == "in-tx");

    // The console counts what happened.
    auto show = exec(console.get(), "SHOW CACHE");
    REQUIRE(show.ok());
    REQUIRE(show.rows.size() == 1);
    const Row& row = show.rows[0];
    REQUIRE(row.size() == 45);   // then 21 of the Redis tier and its lease (none here), 3 of warming, 2 of Sentinel
    CHECK(std::stoll(*row[40]) == 0);   // warm_replayed: nothing was saved to warm from
    CHECK(std::stoll(*row[9]) >= 2);    // insertions: "a", then "relayed" (the last fill may still be on its way)
    CHECK(std::stoll(*row[4]) >= 3);    // hits
    CHECK(std::stoll(*row[8]) >= 1);    // pending: the first executions fetched facts
    CHECK(std::stoll(*row[17]) >= 2);   // table_bumps: the two commits that wrote items
    CHECK(std::stoll(*row[19]) >= 1);   // catalog_fetches

    // CACHE FLUSH: an out-of-band change made visible by hand.
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 2") == "b");
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 3") == "c");
    direct(d.get(), "UPDATE items SET v = v || '-direct'");
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 2") == "b");
    auto flushed = exec(console.get(), "CACHE FLUSH TABLE public.items");
    REQUIRE_MESSAGE(flushed.ok(), flushed.message);
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 2") == "b-direct");
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 3") == "c-direct");
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 3") == "c-direct");
    direct(d.get(), "UPDATE items SET v = 'again' WHERE id = 3");
    REQUIRE(exec(console.get(), "CACHE FLUSH").ok());
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 3") == "again");
  }

  SUBCASE("writes reach reads through views, partitions, volatile functions, TRUNCATE and DDL") {
    CHECK(primed(a.get(), "SELECT v FROM v_items WHERE id = 2") == "B");
    direct(d.get(), "UPDATE items SET v = 'bypassed' WHERE id = 2");
    CHECK(scalar(a.get(), "SELECT v FROM v_items WHERE id = 2") == "B");   // cached through the view
    REQUIRE(exec(b.get(), "UPDATE items SET v = 'view' WHERE id = 2").ok());
    CHECK(scalar(a.get(), "SELECT v FROM v_items WHERE id = 2") == "VIEW");

    CHECK(primed(a.get(), "SELECT count(*) FROM events") == "1");
    REQUIRE(exec(b.get(), "INSERT INTO events_eu VALUES (2, 'eu', now())").ok());
    CHECK(scalar(a.get(), "SELECT count(*) FROM events") == "2");

    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 3") == "c");
    REQUIRE(exec(b.get(), "SELECT bump_items()").ok());
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 3") == "c!");

    (void)primed(a.get(), "SELECT * FROM items WHERE id = 3");
    auto before = exec(a.get(), "SELECT * FROM items WHERE id = 3");
    REQUIRE(before.rows.size() == 1);
    CHECK(before.rows[0].size() == 2);
    REQUIRE(exec(b.get(), "ALTER TABLE items ADD COLUMN extra int DEFAULT 7").ok());
    auto after = exec(a.get(), "SELECT * FROM items WHERE id = 3");
    REQUIRE(after.rows.size() == 1);
    CHECK(after.rows[0].size() == 3);

    CHECK(primed(a.get(), "SELECT count(*) FROM s2.items") == "1");
    REQUIRE(exec(b.get(), "TRUNCATE s2.items").ok());
    CHECK(scalar(a.get(), "SELECT count(*) FROM s2.items") == "0");
  }

  SUBCASE("writes nobody names, and commits before the end of a statement or transaction, are seen at once") {
    const std::string q = "SELECT v FROM items WHERE id = 2";
    auto same_as_server = [&](const std::string& sql) {
      CAPTURE(sql);
      CHECK(scalar(a.get(), sql) == scalar(d.get(), sql));
    };
    for (const char* write : {"SELECT * FROM touching", "INSERT INTO stamped (id) VALUES (1)",
                              "SELECT count(*) FROM items WHERE id === 1"}) {
      CAPTURE(write);
      (void)primed(a.get(), q);
      REQUIRE(exec(b.get(), write).ok());
      same_as_server(q);
    }

    // COMMIT AND CHAIN: visible from its commit, while the writer stays in a transaction.
    const std::string q1 = "SELECT v FROM items WHERE id = 1";
    CHECK(primed(a.get(), q1) == "a");
    for (const char* sql : {"BEGIN", "UPDATE items SET v = 'chained' WHERE id = 1", "COMMIT AND CHAIN"})
      REQUIRE(exec(b.get(), sql).ok());
    CHECK(scalar(a.get(), q1) == "chained");
    REQUIRE(exec(b.get(), "ROLLBACK").ok());

    // A procedure that commits and runs on: the commit is visible before the CALL ends.
    CHECK(primed(a.get(), q1) == "chained");
    REQUIRE(PQsendQuery(b.get(), "CALL commit_then_wait(1)") == 1);
    for (int i = 0; i < 200 && scalar(d.get(), q1) != "proc"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(scalar(a.get(), q1) == "proc");
    CHECK(scalar(a.get(), q1) == "proc");
    while (PGresult* r = PQgetResult(b.get())) {
      CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
      PQclear(r);
    }
    CHECK(primed(a.get(), q1) == "proc");   // cached again once it ended

    // COMMIT PREPARED makes visible what PREPARE TRANSACTION held back.
    if (scalar(d.get(), "SHOW max_prepared_transactions") != "0") {
      exec(d.get(), "ROLLBACK PREPARED 'cache_it_2pc'");   // left by an interrupted run
      for (const char* sql : {"BEGIN", "UPDATE items SET v = 'prepared' WHERE id = 1", "PREPARE TRANSACTION 'cache_it_2pc'"})
        REQUIRE(exec(b.get(), sql).ok());
      CHECK(primed(a.get(), q1) == "proc");
      REQUIRE(exec(b.get(), "COMMIT PREPARED 'cache_it_2pc'").ok());
      CHECK(scalar(a.get(), q1) == "prepared");
    }
  }

  SUBCASE("an answer is not served past default_ttl") {
    auto t = connect_ok(relay.conninfo("cache_ttl_it"));
    CHECK(primed(t.get(), "SELECT v FROM items WHERE id = 2") == "b");
    direct(d.get(), "UPDATE items SET v = 'past-ttl' WHERE id = 2");
    std::this_thread::sleep_for(std::chrono::milliseconds(1600));
    CHECK(scalar(t.get(), "SELECT v FROM items WHERE id = 2") == "past-ttl");
  }

  SUBCASE("extended protocol: parameters are part of the key, and 'now' as a value is never cached") {
    const std::string sql = "SELECT v FROM items WHERE id = $1";
    CHECK(primed_params(a.get(), sql, {"1"}) == "a");
    CHECK(primed_params(a.get(), sql, {"2"}) == "b");
    direct(d.get(), "UPDATE items SET v = 'bypassed' WHERE id IN (1, 2)");
    CHECK(param_value(a.get(), sql, {"1"}) == "a");   // hits, each under its own value
    CHECK(param_value(b.get(), sql, {"2"}) == "b");
    CHECK(param_value(a.get(), sql, {"3"}) == "c");   // another value: the server
    REQUIRE(exec_params(b.get(), "UPDATE items SET v = $1 WHERE id = $2", {"relayed", "1"}).ok());
    CHECK(param_value(a.get(), sql, {"1"}) == "relayed");
    // The simple-protocol text of the same query is another key, with its own answer.
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 2") == "bypassed");

    const std::string at = "SELECT count(*) FROM events WHERE ts < $1::timestamptz";
    const int64_t hits = cache_hits();
    for (int i = 0; i < 5; ++i) CHECK(param_value(a.get(), at, {"now"}) == "1");
    CHECK(cache_hits() == hits);
  }

  SUBCASE("the key holds search_path and TimeZone") {
    REQUIRE(exec(a.get(), "SET search_path = s2, public").ok());
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 1") == "s2");
    CHECK(primed(b.get(), "SELECT v FROM items WHERE id = 1") == "a");
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 1") == "s2");
    REQUIRE(exec(a.get(), "SET TimeZone = 'UTC'").ok());
    REQUIRE(exec(b.get(), "SET TimeZone = 'Asia/Tokyo'").ok());
    CHECK(primed(a.get(), "SELECT ts::text FROM events WHERE id = 1") == "2024-01-01 12:00:00+00");
    CHECK(primed(b.get(), "SELECT ts::text FROM events WHERE id = 1") == "2024-01-01 21:00:00+09");
  }

  SUBCASE("a session-mode client's writes after its own SET search_path reach every name for the table") {
    REQUIRE(exec(a.get(), "SET search_path = s2, public").ok());
    CHECK(primed(a.get(), "SELECT v FROM items WHERE id = 1") == "s2");
    CHECK(primed(b.get(), "SELECT v FROM items WHERE id = 1") == "a");   // facts for the default search_path are in
    auto session = connect_ok(relay.conninfo("cache_session_it"));
    REQUIRE(exec(session.get(), "SET search_path = s2, public").ok());
    REQUIRE(exec(session.get(), "UPDATE items SET v = 'from-session' WHERE id = 1").ok());
    CHECK(scalar(a.get(), "SELECT v FROM items WHERE id = 1") == "from-session");
    // Its reads are not answered from the cache: pgrelay does not track its SETs.
    const int64_t hits = cache_hits();
    CHECK(repeated(session.get(), "SELECT v FROM items WHERE id = 1") == "from-session");
    CHECK(cache_hits() == hits);
  }

  SUBCASE("what may not be cached always gives the server's answer") {
    for (const char* sql : {"SELECT v FROM items WHERE id = 2 AND now() IS NOT NULL", "SELECT v FROM items WHERE id = 2 FOR UPDATE",
                            "SELECT v FROM items WHERE id = 2 AND random() >= 0", "SELECT v FROM items WHERE id = 2 AND current_user IS NOT NULL",
                            "SELECT 1; SELECT v FROM items WHERE id = 2"}) {
      CAPTURE(sql);
      const std::string fresh = std::string("fresh-") + std::to_string(std::hash<std::string>{}(sql) % 1000);
      const int64_t hits = cache_hits();
      (void)repeated(a.get(), sql);
      CHECK(cache_hits() == hits);
      direct(d.get(), "UPDATE items SET v = '" + fresh + "' WHERE id = 2");
      auto r = exec(a.get(), sql);
      REQUIRE(r.ok());
      REQUIRE_FALSE(r.rows.empty());
      CHECK(*r.rows[0][0] == fresh);
    }
  }

  SUBCASE("single flight: concurrent misses of one answer send one query; the first execution fills") {
    auto show = [&] {
      auto r = exec(g_console, "SHOW CACHE");
      REQUIRE(r.ok());
      return r.rows[0];
    };
    // A cacheable query slow enough (a hash join of 300,000 rows) for the others to arrive while
    // it runs. Its names' catalog facts come first, from another text over the same names.
    direct(d.get(), "CREATE TABLE big AS SELECT n FROM generate_series(1, 300000) n; ANALYZE big");
    const std::string warm = "SELECT count(*) FROM big a JOIN big b ON a.n = b.n + 1 WHERE a.n > 299990";
    CHECK(scalar(a.get(), warm) == "10");
    const std::string slow = "SELECT count(*) FROM big a JOIN big b ON a.n = b.n + 1 WHERE a.n > 7";
    // Eight clients at once; `expected` is the answer. Returns the fills and hits they made.
    auto burst = [&](const std::string& sql, const std::string& expected) {
      const Row before = show();
      std::vector<std::string> answers(8);
      std::vector<std::thread> clients;
      std::atomic<int> ready{0};
      for (size_t i = 0; i < answers.size(); ++i) {
        clients.emplace_back([&, i] {
          auto c = connect_ok(relay.conninfo(kDatabase));
          ready.fetch_add(1);
          while (ready.load() < int(answers.size())) std::this_thread::yield();
          answers[i] = scalar(c.get(), sql);
        });
      }
      for (auto& t : clients) t.join();
      for (const auto& v : answers) CHECK(v == expected);
      const Row after = show();
      return std::pair{std::stoll(*after[9]) - std::stoll(*before[9]), std::stoll(*after[4]) - std::stoll(*before[4])};
    };
    // The server's own count of executions (pg_stat_statements, in the postgres database).
    auto admin_pg = connect_ok(direct_conninfo());
    auto server_calls = [&] {
      return std::stoll(scalar(admin_pg.get(),
                               "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s JOIN pg_database db ON db.oid = s.dbid "
                               "WHERE db.datname = 'cache_it' AND s.query LIKE '%big a JOIN big b ON a.n = b.n + $1 WHERE a.n > $2%'"));
    };
    const int64_t calls = server_calls();
    auto [fills, hits] = burst(slow, "299993");
    CHECK(server_calls() - calls == 1);   // eight clients, one execution on the server
    CHECK(fills == 1);   // one fill, by the first execution
    CHECK(hits >= 6);    // the others were hits (one may have looked before the flight began)
    // A text whose names nobody has fetched facts for yet: one session fetches and fills.
    direct(d.get(), "CREATE TABLE big2 AS SELECT * FROM big; ANALYZE big2");
    auto [fills2, hits2] = burst("SELECT count(*) FROM big2 a JOIN big2 b ON a.n = b.n + 1 WHERE a.n > 7", "299993");
    CHECK(fills2 == 1);
    CHECK(hits2 >= 6);
  }

  SUBCASE("a database with the cache off is never answered from memory") {
    auto off_direct = connect_ok(direct_conninfo(kOffDatabase));
    direct(off_direct.get(), "CREATE TABLE t (v text); INSERT INTO t VALUES ('one')");
    auto off = connect_ok(relay.conninfo(kOffDatabase));
    const int64_t hits = cache_hits();
    CHECK(repeated(off.get(), "SELECT v FROM t") == "one");
    CHECK(cache_hits() == hits);
    direct(off_direct.get(), "UPDATE t SET v = 'two'");
    CHECK(scalar(off.get(), "SELECT v FROM t") == "two");
  }

  a.reset();
  b.reset();
  d.reset();
  g_console = nullptr;
  console.reset();
  for (const char* db : {kDatabase, kOffDatabase}) exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + db + " WITH (FORCE)");
}

TEST_CASE("query cache: its catalog query never waits behind another transaction's DDL on a view") {
  // A view's definition (pg_get_viewdef) takes the view's lock. The pump once read catalog facts
  // for a view a migration was replacing: the client's next request waited for that query of
  // pgrelay's own, then cut it off after 5 s, and the client found its connection closed.
  constexpr const char* kLockDatabase = "cache_lock_it";
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kLockDatabase);
  REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + kLockDatabase).ok());
  {
    auto d = connect_ok(direct_conninfo(kLockDatabase));
    direct(d.get(), "CREATE TABLE lk_t (x int); CREATE TABLE lk_t2 (y int); INSERT INTO lk_t2 VALUES (7); "
                    "CREATE VIEW lk_v AS SELECT 1 AS x");
    RelayConfig config = RelayConfig().pool("transaction", 2);
    config.databases += "\n[cache]\nenabled = true\n";
    PgrelayProcess relay(config);
    auto b = connect_ok(relay.conninfo(kLockDatabase));
    // b's write reads the view: its facts are wanted, and read once the transaction is over.
    REQUIRE(exec(b.get(), "BEGIN").ok());
    REQUIRE(exec(b.get(), "INSERT INTO lk_t SELECT x FROM lk_v").ok());
    // A migration replaces the view: it waits for b's transaction, then holds the view's lock.
    auto m = connect_ok(direct_conninfo(kLockDatabase));
    REQUIRE(PQsendQuery(m.get(), "BEGIN; CREATE OR REPLACE VIEW lk_v AS SELECT 2 AS x") == 1);
    bool waiting = false;
    for (int i = 0; i < 200 && !waiting; ++i) {
      waiting = scalar(d.get(), "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'lk_v'::regclass") == "1";
      if (!waiting) std::this_thread::sleep_for(25ms);
    }
    REQUIRE(waiting);
    REQUIRE(exec(b.get(), "COMMIT").ok());   // the migration has the lock from here
    // b's next read wants facts of its own: it waits for no lock of the migration's.
    const auto started = std::chrono::steady_clock::now();
    auto r = exec(b.get(), "SELECT y FROM lk_t2");
    CHECK_MESSAGE(r.ok(), r.message);
    CHECK(r.rows.size() == 1);
    if (!r.rows.empty()) CHECK(r.rows[0].at(0) == "7");
    CHECK(std::chrono::steady_clock::now() - started < 3s);
    // The migration commits; the client reads the new view.
    CHECK(await_result(m.get(), 5s).ok());
    REQUIRE(exec(m.get(), "COMMIT").ok());
    CHECK(scalar(b.get(), "SELECT x FROM lk_v") == "2");
  }
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kLockDatabase + " WITH (FORCE)");
}

TEST_CASE("query cache: the byte budget holds; eviction keeps what is asked for again") {
  auto admin = connect_ok(direct_conninfo());
  RelayConfig config = RelayConfig().pool("transaction", 2).set("admin_users", "[\"postgres\"]");
  config.databases += "\n[cache]\nenabled = true\nmemory_budget = \"1MB\"\nmax_entry_size = \"64KB\"\ncompress_threshold = \"1GB\"\n";
  PgrelayProcess relay(config);
  auto console = connect_ok(relay.conninfo("pgrelay"));
  g_console = console.get();
  auto c = connect_ok(relay.conninfo("postgres"));
  // About 20 KB each, 150 distinct answers: three times the budget.
  auto text = [](int i) { return "SELECT repeat('x', 20000) || '" + std::to_string(i) + "'"; };
  auto answer = [](int i) { return std::string(20000, 'x') + std::to_string(i); };
  CHECK(primed(c.get(), text(0)) == answer(0));
  for (int i = 1; i <= 150; ++i) {
    CHECK(scalar(c.get(), text(i)) == answer(i));
    if (i % 10 == 0) (void)primed(c.get(), text(0));   // one answer asked for all along
  }
  auto show = exec(console.get(), "SHOW CACHE");
  REQUIRE(show.ok());
  const Row& row = show.rows.at(0);
  const int64_t entries = std::stoll(*row[0]), bytes = std::stoll(*row[1]), budget = std::stoll(*row[3]);
  CHECK(budget == 1 << 20);
  CHECK(bytes <= budget);
  CHECK(entries < 150);
  CHECK(std::stoll(*row[10]) > 0);   // evictions
  const int64_t hits = cache_hits();
  CHECK(scalar(c.get(), text(0)) == answer(0));
  CHECK(cache_hits() == hits + 1);   // the hot one survived the churn
  g_console = nullptr;
}
