// The query cache against PostgreSQL itself (issue 15's bar): a seeded random sequence of reads,
// writes, transactions and session changes from five clients (two roles, several search_paths,
// TimeZones, DateStyles, encodings) through pgrelay with the cache on, where every read's whole
// answer (status, SQLSTATE, command tag, columns, values, notices) must equal the one PostgreSQL
// gives the same role with the same settings on a direct connection, asked right after.
//
// Operations run one at a time, so "the answer at that point" is well defined. Only pgrelay's
// clients write (a reference connection only reads, outside transactions, and mirrors its client's
// session SETs and pins), so once a statement through pgrelay has completed the reference sees
// the same committed state. Exceptions, each checked for what it can promise: two clients in
// flight at once (a slow read racing a write, or the same read twice: single flight), a procedure
// that commits and runs on, and the hit check's write that bypasses pgrelay (on a table nothing
// else touches), which shows that the cache answers at all.
//
// Environment: PGRELAY_DIFF_SEED (default: from the clock), PGRELAY_DIFF_STEPS (default 3000),
// PGRELAY_DIFF_TRACE (operations a failure lists, default 12), PGRELAY_DIFF_CACHE=off (the same
// run without the cache: a mismatch that stays is not the cache's), PGRELAY_DIFF_SKIP (a comma
// list of operations to leave out, to tell which one a failure needs: `window` a procedure or DO
// block that commits and runs on, `chain` COMMIT AND CHAIN, `hidden` a read of a view whose
// function writes, `prepared` COMMIT PREPARED, run where max_prepared_transactions > 0, as in
// the integration cluster), PGRELAY_DIFF_SHARED=1 (two pgrelay instances sharing a redis-server:
// the cache's Redis tier and its leases; clients 1 and 3 go through the second, so client 1
// shares client 0's keys across instances), PGRELAY_DIFF_DIRECT=N (N% of the writes outside
// transactions go straight to PostgreSQL on the client's reference connection, seen through
// every instance's replication listener; a read may lag one by up to 3 s, and is asked again
// until it agrees; ctest runs cache_differential_shared with both). A failure names the seed,
// the step, the client, the statement, both answers, the last operations and pgrelay's log;
// the same seed and step count replay it.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>

#include "cache_differential_runner.h"
#include "harness.h"
#include "redis_server.h"

using namespace pgrelay::it;
using namespace pgrelay::it::diff;

namespace {

// Few values each, so texts repeat and the cache fills and hits. Every ORDER BY is on a unique
// key (a tie could come out in another order from a later plan); other answers are compared sorted.
// No float aggregate: its last digit depends on the order rows are summed.
const std::vector<Template> kReads = {
    {"SELECT id, name, tier, balance, score, created, note FROM customers WHERE id = $1", {{"1", "2", "7", "15"}}, 4},
    {"SELECT id, name FROM customers WHERE balance > $1 ORDER BY id", {{"50", "100"}}, 2},
    {"SELECT tier, count(*), sum(balance), min(score) FROM customers GROUP BY tier ORDER BY tier", {}, 2},
    {"SELECT count(*) FROM customers WHERE note IS NULL", {}},
    {"SELECT * FROM orders WHERE customer_id = $1 ORDER BY id", {{"1", "2", "5"}}, 2},
    {"SELECT status, count(*), sum(amount) FROM orders GROUP BY status ORDER BY status NULLS FIRST", {}},
    {"SELECT c.name, sum(o.amount) FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id <= $1 GROUP BY c.name ORDER BY c.name",
     {{"5", "10"}}},
    {"SELECT * FROM customer_orders WHERE customer_id = $1 ORDER BY order_id", {{"1", "3"}}, 2},
    {"SELECT count(*), sum(amount) FROM customer_orders", {}},
    {"SELECT * FROM tier_totals ORDER BY tier", {}, 2},
    {"TABLE tier_totals", {}},
    {"SELECT n FROM \"OrderStats\" WHERE k = $1", {{"all", "other"}}, 2},
    {"SELECT * FROM products WHERE id = $1", {{"1", "2", "3", "41", "45"}}, 5},
    {"SELECT id, name, price, stock FROM products WHERE stock > $1 ORDER BY id", {{"5", "10"}}, 3},
    {"SELECT sum(stock), max(price), min(weight), count(tag) FROM products", {}, 2},
    {"SELECT id, weight, weight * 3, updated FROM products WHERE id <= $1 ORDER BY id", {{"4", "8"}}, 2},
    {"SELECT tag, count(*) FROM products GROUP BY tag", {}},
    {"SELECT id, price_band(price) FROM products WHERE id BETWEEN $1 AND $1 + 5 ORDER BY id", {{"1", "20"}}, 2},
    {"SELECT count(*) FROM products WHERE tag = $1", {{"tag1", "tag2"}}},
    {"SELECT id, 100 / (stock - 5) FROM products WHERE id <= $1 ORDER BY id", {{"3", "12"}}},
    {"SELECT id, random() < 2 AS always FROM products WHERE id = $1", {{"1", "2"}}},
    {"SELECT count(*) FROM events", {}, 3},
    {"SELECT region, count(*), max(id) FROM events GROUP BY region ORDER BY region", {}, 2},
    {"SELECT id, region, ts, payload FROM events WHERE id = $1", {{"2", "3", "50"}}, 2},
    {"SELECT count(*), max(id) FROM events_eu", {}, 2},
    {"SELECT id, ts FROM events_us WHERE id < $1", {{"10", "20"}}},
    {"SELECT id, secret FROM secrets ORDER BY id", {}, 2},
    {"SELECT count(*) FROM secrets WHERE id > $1", {{"3"}}},
    {"SELECT * FROM dup ORDER BY id", {}, 3},
    {"SELECT v FROM dup WHERE id = $1", {{"1", "2"}}, 2},
    {"SELECT v FROM s2.dup WHERE id = $1", {{"1", "2"}}},
    {"SELECT count(*) FROM customers WHERE created < now()", {}},
    {"SELECT to_char(balance, 'FM99990.00') FROM customers WHERE id = $1", {{"1", "2"}}},
    {"SELECT created::date, created::text, created AT TIME ZONE 'UTC' FROM customers WHERE id = $1", {{"3", "4"}}},
    {"WITH big AS (SELECT * FROM orders WHERE amount > $1) SELECT count(*) FROM big", {{"50", "100"}}},
    {"SELECT DISTINCT customer_id FROM orders WHERE amount > $1", {{"90"}}},
    {"SELECT name FROM customers WHERE name LIKE $1 ORDER BY id", {{"cust1%", "cust2%"}}},
    {"SELECT c.tier, p.tag FROM customers c JOIN products p USING (id) WHERE c.id < $1 ORDER BY c.id", {{"6"}}},
    {"SELECT 'now'::timestamptz <= now(), $1::int * 2", {{"21"}}},
    {"SELECT now(), random()", {}, 1, Check::kShape},
    {"SELECT count(*) FROM events WHERE ts < $1", {{"04/02/2024", "2024-04-02 10:00"}}},   // read by DateStyle and TimeZone
    {"SELECT note FROM customers WHERE id = $1", {{"1", "2"}}},                           // bytes by client_encoding
    {"SELECT id, row_number() OVER (ORDER BY id DESC) FROM products WHERE id <= $1 ORDER BY id", {{"5"}}},
    {"SELECT count(*) FROM products; SELECT v FROM dup WHERE id = $1", {{"1"}}},   // two statements: never looked up
    {"SELECT id, noisy(stock) FROM products WHERE id = $1", {{"2", "3"}}},   // a notice: never stored
    {"SELECT * FROM no_such_table", {}},
    // The session itself (never cached): a divergence shows where it starts, not at a later read.
    {"SELECT current_user, current_setting('search_path'), current_setting('TimeZone'), current_setting('DateStyle'), "
     "current_setting('extra_float_digits'), current_setting('client_encoding')",
     {}, 2},
};


const std::vector<Write> kWrites = {
    {"UPDATE products SET stock = stock + 1, updated = '2024-09-09 09:09:09+00' WHERE id = $1", ids(1, 45), 6},
    {"UPDATE products SET price = price + 0.5, weight = weight * 1.5, tag = NULL WHERE id = $1", ids(1, 45), 3},
    {"INSERT INTO products (id, name, stock, tag) VALUES ($1::int, 'new', 4, 'tag1') "
     "ON CONFLICT (id) DO UPDATE SET stock = products.stock + 10",
     ids(36, 50), 3},
    {"DELETE FROM products WHERE id = $1", ids(30, 50), 2},
    {"MERGE INTO products p USING (VALUES ($1::int, $2::int)) s(id, stock) ON p.id = s.id "
     "WHEN MATCHED THEN UPDATE SET stock = s.stock WHEN NOT MATCHED THEN INSERT (id, name, stock) VALUES (s.id, 'merged', s.stock)",
     {ids(1, 50)[0], {"0", "7", "12"}}, 2},
    {"SELECT touch_product($1)", ids(1, 10), 2},
    {"SELECT * FROM product_touch", {}, 3, kHidden},   // the view calls touch_product(1)
    {"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) UPDATE products SET stock = stock - 1 WHERE id = $1", ids(1, 10)},
    {"INSERT INTO events VALUES ($1::int, $2, '2024-05-05 12:00:00+00', 'ins')", {ids(1, 60)[0], {"eu", "us"}}, 3},
    {"INSERT INTO events_eu VALUES ($1::int, 'eu', '2024-06-06 06:00:00+00', 'part')", ids(1, 60), 3},
    {"UPDATE events SET region = $2 WHERE id = $1", {ids(1, 60)[0], {"eu", "us"}}, 2},
    {"DELETE FROM events_us WHERE id = $1", ids(1, 60), 2},
    {"WITH d AS (DELETE FROM events WHERE id = $1 RETURNING id) SELECT count(*) FROM d", ids(1, 60)},
    {"UPDATE customers SET balance = balance + 5, note = NULL WHERE id = $1", ids(1, 30)},
    {"DELETE FROM customers WHERE id = $1", ids(1, 30)},
    {"INSERT INTO customers VALUES ($1::int, 'cust' || $1, 'gold', 10, 1.5, '2024-05-05 05:05:05+00', NULL) ON CONFLICT (id) DO NOTHING",
     ids(1, 30), 2},
    {"INSERT INTO orders VALUES ($1::int, $2::int, 12.5, '2024-06-01 00:00:00+00', 'new') ON CONFLICT (id) DO NOTHING",
     {ids(55, 120)[0], ids(1, 30)[0]}},
    {"UPDATE orders SET status = $2 WHERE id = $1", {ids(1, 120)[0], {"paid", "shipped"}}},
    {"UPDATE \"OrderStats\" SET n = n + 100 WHERE k = 'other'", {}, 2},
    {"INSERT INTO secrets (id, secret) VALUES ($1::int, 'new') ON CONFLICT (id) DO NOTHING", ids(1, 20)},
    {"UPDATE secrets SET secret = secret || '+' WHERE id = $1", ids(1, 20)},
    {"DELETE FROM secrets WHERE id = $1", ids(1, 20)},
    {"UPDATE dup SET v = v || '.' WHERE id = $1", ids(1, 6), 3},
    {"INSERT INTO dup VALUES ($1::int, 'ins') ON CONFLICT (id) DO UPDATE SET v = 'upserted'", ids(1, 8), 2},
    {"UPDATE s2.dup SET v = v || '!' WHERE id = $1", ids(1, 6), 2},
    {"DELETE FROM dup WHERE id = $1", ids(1, 8)},
    {"UPDATE products SET stock = stock + 1 WHERE id = $1; SELECT stock FROM products WHERE id = $1", ids(1, 10), 1, kAlone},
    {"BEGIN; UPDATE dup SET v = v || 'm' WHERE id = $1; COMMIT", ids(1, 6), 1, kAlone},
    {"UPDATE products SET stock = 0 WHERE id = $1; SELECT 1 / 0", ids(1, 10), 1, kAlone},   // all of it rolls back
    {"REFRESH MATERIALIZED VIEW tier_totals", {}, 2, kOwner | kAlone},
    {"TRUNCATE events_us", {}, 1, kAlone},
    {"TRUNCATE dup", {}, 1, kAlone},
    {"ALTER TABLE products ADD COLUMN IF NOT EXISTS extra int DEFAULT 7", {}, 1, kOwner | kAlone | kDdl},
    {"ALTER TABLE products DROP COLUMN IF EXISTS extra", {}, 1, kOwner | kAlone | kDdl},
    // Same name, other thresholds: an IMMUTABLE function's answers change with its definition.
    {"CREATE OR REPLACE FUNCTION price_band(numeric) RETURNS text IMMUTABLE LANGUAGE sql "
     "AS $$SELECT CASE WHEN $1 < 20 THEN 'low' WHEN $1 < 40 THEN 'mid' ELSE 'high' END$$",
     {}, 1, kOwner | kAlone | kDdl},
    {"CREATE OR REPLACE FUNCTION price_band(numeric) RETURNS text IMMUTABLE LANGUAGE sql "
     "AS $$SELECT CASE WHEN $1 < 10 THEN 'low' WHEN $1 < 30 THEN 'mid' ELSE 'high' END$$",
     {}, 1, kOwner | kAlone | kDdl},
    {"CREATE OR REPLACE VIEW customer_orders AS SELECT c.id AS customer_id, c.name, o.id AS order_id, o.amount, o.status "
     "FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status IS DISTINCT FROM 'new'",
     {}, 1, kOwner | kAlone | kDdl},
    {"CREATE OR REPLACE VIEW customer_orders AS SELECT c.id AS customer_id, c.name, o.id AS order_id, o.amount, o.status "
     "FROM customers c JOIN orders o ON o.customer_id = c.id",
     {}, 1, kOwner | kAlone | kDdl},
    // Names that resolve elsewhere afterwards: s2's dup hides and comes back, Alice's own is
    // dropped (her `dup` is then public's) and made again.
    {"ALTER TABLE s2.dup RENAME TO dup_hidden", {}, 1, kOwner | kAlone | kDdl},
    {"ALTER TABLE s2.dup_hidden RENAME TO dup", {}, 1, kOwner | kAlone | kDdl},
    {"DROP TABLE IF EXISTS cache_diff_alice.dup", {}, 1, kOwner | kAlone | kDdl},
    {"CREATE TABLE IF NOT EXISTS cache_diff_alice.dup AS SELECT g AS id, 'alice-new' || g AS v FROM generate_series(1, 4) g",
     {}, 1, kOwner | kAlone | kDdl},
    {"REVOKE SELECT ON products FROM cache_diff_bob", {}, 1, kOwner | kAlone | kDdl},
    {"GRANT SELECT ON products TO cache_diff_bob", {}, 1, kOwner | kAlone | kDdl},
};

}  // namespace

TEST_CASE("query cache: a seeded random differential run against PostgreSQL") {
  const uint64_t seed = std::stoull(env_or("PGRELAY_DIFF_SEED", std::to_string(std::random_device{}() ^
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()))));
  const int steps = std::stoi(env_or("PGRELAY_DIFF_STEPS", "3000"));
  MESSAGE("PGRELAY_DIFF_SEED=" << seed << " PGRELAY_DIFF_STEPS=" << steps);

  auto admin = connect_ok(direct_conninfo());
  // A run that died in a two-phase commit left a prepared transaction, which keeps the database.
  const auto left = exec(admin.get(), std::string("SELECT gid FROM pg_prepared_xacts WHERE database = '") + kDatabase + "'");
  for (const auto& row : left.rows) {
    exec(connect_ok(direct_conninfo(kDatabase)).get(), "ROLLBACK PREPARED " + quote_literal(row.at(0).value_or("")));
  }
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase + " WITH (FORCE)");
  for (const char* role : {kAlice, kBob}) {
    // Roles are the cluster's: one left by a failed run (still owning objects elsewhere) is reused.
    exec(admin.get(), std::string("DROP ROLE IF EXISTS ") + role);
    const auto created = exec(admin.get(), std::string("CREATE ROLE ") + role + " LOGIN");
    REQUIRE_MESSAGE((created.ok() || created.sqlstate == "42710"), created.message);
  }
  const auto created_db = exec(admin.get(), std::string("CREATE DATABASE ") + kDatabase + " OWNER " + kAlice);
  REQUIRE_MESSAGE(created_db.ok(), created_db.message);
  auto direct = connect_ok(direct_conninfo(kDatabase));
  {
    auto r = exec(direct.get(), kSchema);
    REQUIRE_MESSAGE(r.ok(), r.message);
  }

  // Fewer server connections per pool than clients of a role: clients share them.
  RelayConfig config = RelayConfig().pool("transaction", 2).set("admin_users", "[\"postgres\"]");
  // PGRELAY_DIFF_CACHE=off runs the same sequence without the cache: a mismatch that stays is
  // not the cache's.
  const bool cache_on = env_or("PGRELAY_DIFF_CACHE", "on") != "off";
  // PGRELAY_DIFF_SKIP leaves out the operations that show the bugs the header lists; nothing is
  // left out by default.
  const std::string skip = env_or("PGRELAY_DIFF_SKIP", "");
  auto skipped = [&](const char* what) { return skip.find(what) != std::string::npos; };
  config.databases += std::string("\n[cache]\nenabled = ") + (cache_on ? "true" : "false") + "\ndefault_ttl = \"60s\"\n";
  std::optional<RedisServer> redis;
  if (env_or("PGRELAY_DIFF_SHARED", "") == "1") redis.emplace();
  if (redis) config.databases += "redis_url = \"" + redis->url() + "\"\nredis_timeout = \"50ms\"\n";
  // PGRELAY_DIFF_DIRECT (see the top): reads may lag a direct write by up to kDirectBound.
  const int direct_percent = cache_on ? std::stoi(env_or("PGRELAY_DIFF_DIRECT", "0")) : 0;
  constexpr auto kDirectBound = std::chrono::seconds(3);
  if (direct_percent > 0) listen_to_replication(direct.get(), config, kDatabase);
  PgrelayProcess relay(config);
  std::optional<PgrelayProcess> second;   // with the Redis tier: the odd clients' instance
  if (redis) second.emplace(config);
  if (direct_percent > 0) wait_streaming(second ? std::vector{relay.conninfo("pgrelay"), second->conninfo("pgrelay")}
                                                : std::vector{relay.conninfo("pgrelay")});

  Runner t;
  t.rng.seed(seed);
  t.seed = seed;
  t.steps = steps;
  t.relay = &relay;
  t.trace = Trace(std::stoul(env_or("PGRELAY_DIFF_TRACE", "12")));   // operations a failure lists
  // Role, startup parameters, SETs. Clients 0 and 1 are alike, so they share cache entries.
  const std::vector<std::array<const char*, 3>> kClients = {
      {kAlice, "", ""},
      {kAlice, "", ""},
      {kAlice, "", "SET search_path = s2, public; SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'SQL, DMY'"},
      {kBob, "", "SET extra_float_digits = 0; SET TimeZone = 'America/New_York'"},
      {kBob, "options='-c search_path=s2,public -c DateStyle=German'", ""},
  };
  std::vector<Client>& clients = t.clients;
  clients.resize(kClients.size());
  // All log in before any SETs: a login with new startup parameters runs on a server connection
  // and pgrelay takes the client's ParameterStatus from it, and it may still carry another
  // client's SET TimeZone (a session bug, not the cache's).
  for (size_t i = 0; i < clients.size(); ++i) {
    clients[i].role = kClients[i][0];
    clients[i].startup = kClients[i][1];
    clients[i].settings = kClients[i][2];
    PgrelayProcess& instance = second && i % 2 == 1 ? *second : relay;
    clients[i].relay.open(instance.conninfo(kDatabase, clients[i].role, clients[i].startup));
    clients[i].reference.open(direct_conninfo(kDatabase, clients[i].role, clients[i].startup));
  }
  for (Client& c : clients) {
    if (!c.settings.empty()) {
      REQUIRE(exec(c.relay.conn.get(), c.settings).ok());
      REQUIRE(exec(c.reference.conn.get(), c.settings).ok());
    }
  }
  size_t transactions = 0;
  auto below = [&](size_t n) { return t.below(n); };
  auto percent = [&](int p) { return t.percent(p); };
  std::vector<double> read_weights, write_weights;
  for (const auto& tpl : kReads) read_weights.push_back(tpl.weight);
  for (const auto& w : kWrites) write_weights.push_back(w.weight);
  std::discrete_distribution<size_t> pick_read(read_weights.begin(), read_weights.end());
  std::discrete_distribution<size_t> pick_write(write_weights.begin(), write_weights.end());

  // The phase (see the loop): when it ends, how many steps write, who acts, which reads are hot.
  int phase_end = 0, write_percent = 0;
  std::vector<size_t> active, hot;
  // Returns whether it succeeded (inside a transaction, a failure aborts it).
  auto read = [&](size_t client, bool check) {
    // Most reads come from the phase's few hot templates, so a text repeats before a write moves it.
    const Template& tpl = kReads[percent(70) ? hot[below(hot.size())] : pick_read(t.rng)];
    Statement s = t.instantiate(tpl.sql, tpl.values, t.pick_protocol(25));
    const bool ordered = std::string(tpl.sql).find("ORDER BY") != std::string::npos;
    return check ? t.compare(client, s, ordered, tpl.check) : t.relayed(client, s).ok();
  };
  auto write = [&](size_t client, bool in_transaction) {
    for (;;) {
      const Write& w = kWrites[pick_write(t.rng)];
      if ((w.flags & kOwner) && clients[client].role != kAlice) continue;
      if ((w.flags & kAlone) && in_transaction) continue;
      if ((w.flags & kHidden) && skipped("hidden")) continue;
      const Statement s = t.instantiate(w.sql, w.values, t.pick_protocol(30));
      // Not DDL nor REFRESH: the replication stream carries neither.
      const bool streamed = !(w.flags & kDdl) && std::string_view(w.sql).rfind("REFRESH", 0) != 0;
      if (!in_transaction && streamed && percent(direct_percent)) {
        t.note("c" + std::to_string(client) + " DIRECT: " + s.shown() + " -> " + brief(run(clients[client].reference, s)));
        t.direct_until = std::chrono::steady_clock::now() + kDirectBound;
        // "BEGIN; ...; COMMIT" that failed half-way leaves its transaction open, as through pgrelay.
        if (PQtransactionStatus(clients[client].reference.conn.get()) != PQTRANS_IDLE) {
          (void)run(clients[client].reference, {"ROLLBACK", {}, Protocol::kSimple});
        }
        return;
      }
      (void)t.relayed(client, s);
      if (w.flags & kDdl) t.deallocate_all();
      return;
    }
  };
  // A SET (or set_config) text for one of kSettings, and whether it is LOCAL.
  auto setting = [&](bool allow_local, bool* local) {
    const auto& [name, values] = kSettings[below(kSettings.size())];
    const std::string& value = values[below(values.size())];
    *local = allow_local && percent(30);
    if (!*local && percent(25)) return "SELECT set_config(" + quote_literal(name) + ", " + quote_literal(value) + ", false)";
    // search_path is a list: quoted, it would be one schema named `"$user", public`.
    return std::string(*local ? "SET LOCAL " : "SET ") + name + " = " + (name == "search_path" ? value : quote_literal(value));
  };

  // A transaction runs over several steps; the other clients only read meanwhile (a write could
  // wait on its locks, and this test runs one statement at a time).
  struct Open {
    size_t client;
    bool dirty = false;                 // it wrote, SET or failed: its reads differ from the reference's
    std::vector<std::string> sets;      // session SETs to mirror on the reference if it commits
  };
  std::optional<Open> tx;
  std::vector<std::vector<const char*>> unpin(clients.size());   // per client, what undoes its pins
  bool hit_checked = false;
  const auto started = std::chrono::steady_clock::now();

  for (int& step = t.step; step < steps; ++step) {
    if (!tx && !hit_checked && step >= steps / 2) {
      // The cache is exercised: after three runs a read is answered from memory, which a write
      // bypassing pgrelay (on a table the random mix never touches) shows by staying unseen.
      hit_checked = true;
      // A pinned client is never answered from the cache.
      for (; !unpin[0].empty(); unpin[0].pop_back()) t.session_statement(0, unpin[0].back());
      const Statement probe{"SELECT v FROM probe WHERE id = 1", {}, Protocol::kSimple};
      for (int i = 0; i < 3; ++i) REQUIRE(t.relayed(0, probe).ok());
      if (direct_percent == 0) {
        REQUIRE(exec(direct.get(), "UPDATE probe SET v = 'bypassed' WHERE id = 1").ok());
        const Outcome o = t.relayed(0, probe);
        REQUIRE(o.ok());
        CHECK_MESSAGE((o.rows.at(0).at(0).value_or("NULL") == "original") == cache_on, "cache on: " << cache_on << ": " << describe(o));
        REQUIRE(exec(direct.get(), "UPDATE probe SET v = 'original' WHERE id = 1").ok());
      } else {   // the listener would show a bypassing write: the console counts the hit instead
        const int64_t before = shown_stat(show_cache(relay.conninfo("pgrelay")), "hits");
        REQUIRE(t.relayed(0, probe).ok());
        CHECK(shown_stat(show_cache(relay.conninfo("pgrelay")), "hits") == before + 1);
      }
    }
    // Phases of a hundred to four hundred steps: the quiet ones (few writes, one client or the two
    // that share a key) let answers stay cached long enough to be hit; the busy ones press on
    // invalidation. (Any whole-database invalidation drops every client's catalog facts.)
    if (step >= phase_end) {
      phase_end = step + 100 + static_cast<int>(below(300));
      write_percent = std::array{3, 12, 30}[below(3)];
      const size_t shape = below(3);
      active = shape == 0 ? std::vector<size_t>{0, 1, 2, 3, 4} : shape == 1 ? std::vector<size_t>{0, 1}
                                                                              : std::vector<size_t>{below(5)};
      hot.clear();
      for (int i = 0; i < 8; ++i) hot.push_back(pick_read(t.rng));
    }
    std::vector<size_t> others;   // who may act now besides an open transaction's client
    for (size_t c : active) {
      if (!tx || c != tx->client) others.push_back(c);
    }
    if (tx && (others.empty() || percent(50))) {
      const size_t client = tx->client;
      const int r = static_cast<int>(below(100));
      if (r < 15) {
        // COMMIT AND CHAIN commits and opens the next transaction at once: the others read its
        // writes from then on, while this client stays in a transaction.
        const size_t end_kind = below(100);
        const bool chain = end_kind >= 85 && !skipped("chain");
        const char* end_sql = chain ? "COMMIT AND CHAIN" : end_kind >= 55 && end_kind < 85 ? "ROLLBACK" : "COMMIT";
        const Outcome end = t.relayed(client, {end_sql, {}, Protocol::kSimple});
        REQUIRE_MESSAGE(end.ok(), describe(end));
        // An aborted transaction's COMMIT says ROLLBACK: its SETs are gone too.
        if (end.command == "COMMIT") {
          for (const auto& set : tx->sets) REQUIRE(exec(clients[client].reference.conn.get(), set).ok());
        }
        if (chain) {
          tx = Open{client, false, {}};
          continue;
        }
        tx.reset();
        read(client, true);   // the first read after the transaction: its writes must show
      } else if (r < 55) {
        // Until it writes, it sees what the reference sees (nobody else writes meanwhile).
        if (!read(client, !tx->dirty)) tx->dirty = true;
      } else if (r < 92) {
        write(client, true);
        tx->dirty = true;
      } else {
        bool local = false;
        const std::string set = setting(true, &local);
        (void)t.relayed(client, {set, {}, Protocol::kSimple});
        if (!local) tx->sets.push_back(set);
        tx->dirty = true;
      }
      continue;
    }
    const size_t client = others[below(others.size())];
    if (!tx && !unpin[client].empty() && percent(15)) {
      t.session_statement(client, unpin[client].back());
      unpin[client].pop_back();
      continue;
    }
    if (tx) {
      read(client, true);
      continue;
    }
    const int r = static_cast<int>(below(100));
    if (r < write_percent) {
      write(client, false);
    } else if (r < write_percent + write_percent / 3 + 1) {
      static const char* kBegins[] = {"BEGIN", "BEGIN ISOLATION LEVEL READ COMMITTED", "BEGIN ISOLATION LEVEL REPEATABLE READ",
                                      "START TRANSACTION ISOLATION LEVEL SERIALIZABLE", "BEGIN READ ONLY"};
      const Outcome b = t.relayed(client, {kBegins[below(5)], {}, Protocol::kSimple});
      REQUIRE_MESSAGE(b.ok(), describe(b));
      tx = Open{client, false, {}};
      ++transactions;
    } else if (r == 92 && percent(25) && t.two_phase && !skipped("prepared")) {
      t.prepared_commit(client, (client + 1 + below(clients.size() - 1)) % clients.size(), std::to_string(1 + below(30)));
    } else if (r >= 93 && r < 95 && percent(25) && !skipped("window")) {
      t.commit_window(client, (client + 1 + below(clients.size() - 1)) % clients.size(), std::to_string(1 + below(30)), percent(50));
    } else if (r >= 95 && r < 98) {
      // The same read from the two clients with one key, or a read and another client's write.
      const bool writes = percent(60);
      const size_t b = !writes && client < 2 ? 1 - client : (client + 1 + below(clients.size() - 1)) % clients.size();
      t.race(kRaces[below(kRaces.size())], client, b, writes);
    } else if (r >= 98 && percent(75)) {
      bool local = false;
      t.compare(client, {setting(false, &local), {}, Protocol::kSimple}, false, Check::kFull);
    } else if (r >= 98) {
      const auto& [pin, undo] = kPins[below(kPins.size())];
      t.session_statement(client, pin);
      unpin[client].push_back(undo);
    } else {
      read(client, true);
    }
  }
  if (tx) REQUIRE(t.relayed(tx->client, {"ROLLBACK", {}, Protocol::kSimple}).ok());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  MESSAGE("seed " << seed << ": " << steps << " steps, " << t.compared << " answers compared, " << transactions << " transactions, "
                  << t.raced << " races, " << seconds << " s" << std::string(t.two_phase ? "" : "; no two-phase commit on this server"));
  if (direct_percent > 0) {
    MESSAGE(t.lagged << " reads lagged a direct write (within " << kDirectBound.count() << " s), the longest by "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(t.longest_lag).count() << " ms");
  }
  CHECK(hit_checked);
  // How much the cache took part, for whoever reads the log (the console's SHOW CACHE is new:
  // nothing here depends on it).
  MESSAGE("SHOW CACHE:" << show_cache(relay.conninfo("pgrelay")));
  if (second) MESSAGE("the second instance's SHOW CACHE:" << show_cache(second->conninfo("pgrelay")));

  for (Client& c : clients) {
    c.relay.conn.reset();
    c.reference.conn.reset();
  }
  direct.reset();
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase + " WITH (FORCE)");
  for (const char* role : {kAlice, kBob}) exec(admin.get(), std::string("DROP ROLE IF EXISTS ") + role);
}
