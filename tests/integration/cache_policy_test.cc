// The query cache's policy end to end: rules by table (a TTL, cache = false) and by fingerprint,
// hints in the text, SHOW CACHES, CACHE DISABLE and ENABLE. Which answer came is proven by rows
// changed behind pgrelay's back through a direct connection: an answer from memory does not
// show them, the server's does.
#include <doctest/doctest.h>

#include <thread>

#include "cache_it_util.h"
#include "harness.h"

using namespace pgrelay::it;

namespace {

constexpr const char* kDatabase = "cache_policy_it";

const char* kSchema = R"SQL(
CREATE TABLE sessions (id int PRIMARY KEY, v text);
CREATE TABLE secrets (id int PRIMARY KEY, v text);
CREATE TABLE plain (id int PRIMARY KEY, v text);
CREATE TABLE hinted_no (id int PRIMARY KEY, v text);
CREATE TABLE hinted_ttl (id int PRIMARY KEY, v text);
CREATE TABLE toggled (id int PRIMARY KEY, v text);
CREATE TABLE by_fp (id int PRIMARY KEY, v text);
INSERT INTO sessions VALUES (1, 'old');
INSERT INTO secrets VALUES (1, 'old');
INSERT INTO plain VALUES (1, 'old');
INSERT INTO hinted_no VALUES (1, 'old');
INSERT INTO hinted_ttl VALUES (1, 'old');
INSERT INTO toggled VALUES (1, 'old');
INSERT INTO by_fp VALUES (1, 'old');
)SQL";

// Runs `sql` `n` times; returns how many executions were answered from the cache, and the last answer.
std::pair<int64_t, std::string> repeated(PGconn* c, const std::string& sql, int n = 5) {
  const int64_t before = cache_hits();
  std::string value;
  for (int i = 0; i < n; ++i) value = scalar(c, sql);
  return {cache_hits() - before, value};
}

void direct(PGconn* d, const std::string& sql) {
  auto r = exec(d, sql);
  REQUIRE_MESSAGE(r.ok(), sql << ": " << r.message);
}

// SHOW CACHES' row whose normalized query names `table`.
enum Col { kFingerprint, kQuery, kHits, kMisses, kEntries, kBytes, kTtlMs, kDisabled, kWhyNot };
Row caches_row(const std::string& table) {
  auto r = exec(g_console, "SHOW CACHES");
  REQUIRE_MESSAGE(r.ok(), r.message);
  for (const Row& row : r.rows) {
    REQUIRE(row.size() == 9);
    if (row[kQuery] && row[kQuery]->find("from " + table + " ") != std::string::npos) return row;
  }
  FAIL("no SHOW CACHES row for " << table);
  return {};
}

int64_t num(const Row& row, Col c) { return row[c] ? std::stoll(*row[c]) : -1; }

}  // namespace

TEST_CASE("query cache policy: rules, hints, SHOW CACHES, CACHE DISABLE and ENABLE") {
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase);
  REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + kDatabase).ok());
  auto d = connect_ok(direct_conninfo(kDatabase));
  direct(d.get(), kSchema);

  RelayConfig config = RelayConfig().pool("transaction", 4).set("admin_users", "[\"postgres\"]");
  // [cache]'s rule (qualified) applies to every database; the database adds one (unqualified).
  config.add_database(kDatabase, "[[databases.cache_policy_it.cache.rules]]\ntable = \"sessions\"\nttl = \"3s\"\n");
  const std::string cache_section =
      "\n[cache]\nenabled = true\ndefault_ttl = \"60s\"\n"
      "[[cache.rules]]\ntable = \"public.secrets\"\ncache = false\n";
  config.databases += cache_section;
  PgrelayProcess relay(config);
  auto console = connect_ok(relay.conninfo("pgrelay"));
  g_console = console.get();
  auto a = connect_ok(relay.conninfo(kDatabase));

  // A table rule's TTL: served from memory before it passes, the server's answer after; a read
  // of a table without a rule (default_ttl 60s) is still served from memory then.
  CHECK(primed(a.get(), "SELECT v FROM sessions WHERE id = 1") == "old");
  CHECK(primed(a.get(), "SELECT v FROM plain WHERE id = 1") == "old");
  direct(d.get(), "UPDATE sessions SET v = 'new' WHERE id = 1; UPDATE plain SET v = 'new' WHERE id = 1");
  CHECK(scalar(a.get(), "SELECT v FROM sessions WHERE id = 1") == "old");
  CHECK(num(caches_row("sessions"), kTtlMs) == 3000);
  CHECK(num(caches_row("plain"), kTtlMs) == 60000);
  std::this_thread::sleep_for(3500ms);
  CHECK(scalar(a.get(), "SELECT v FROM sessions WHERE id = 1") == "new");
  CHECK(scalar(a.get(), "SELECT v FROM plain WHERE id = 1") == "old");

  // cache = false: never a hit, every answer the server's.
  {
    auto [hits, value] = repeated(a.get(), "SELECT v FROM secrets WHERE id = 1");
    CHECK(hits == 0);
    CHECK(value == "old");
    direct(d.get(), "UPDATE secrets SET v = 'new' WHERE id = 1");
    CHECK(scalar(a.get(), "SELECT v FROM secrets WHERE id = 1") == "new");
    const Row row = caches_row("secrets");
    CHECK(*row[kWhyNot] == "rule");
    CHECK(num(row, kHits) == 0);
    CHECK(num(row, kMisses) >= 5);
    CHECK(num(row, kEntries) == 0);
  }

  // /* pgrelay:nocache */: never a hit.
  {
    const std::string sql = "SELECT v FROM hinted_no WHERE id = 1 /* pgrelay:nocache */";
    auto [hits, value] = repeated(a.get(), sql);
    CHECK(hits == 0);
    direct(d.get(), "UPDATE hinted_no SET v = 'new' WHERE id = 1");
    CHECK(scalar(a.get(), sql) == "new");
    CHECK(*caches_row("hinted_no")[kWhyNot] == "nocache hint");
    CHECK(num(caches_row("hinted_no"), kEntries) == 0);
    // A malformed hint is ignored (the read is cached as usual), never an error to the client.
    CHECK(primed(a.get(), "SELECT v FROM hinted_no WHERE id = 1 /* pgrelay:cache ttl=soon */") == "new");
  }

  // /* pgrelay:cache ttl=1s */: served from memory, then the server's answer after a second.
  {
    const std::string sql = "/* pgrelay:cache ttl=1s */ SELECT v FROM hinted_ttl WHERE id = 1";
    CHECK(primed(a.get(), sql) == "old");
    direct(d.get(), "UPDATE hinted_ttl SET v = 'new' WHERE id = 1");
    CHECK(scalar(a.get(), sql) == "old");
    CHECK(num(caches_row("hinted_ttl"), kTtlMs) == 1000);
    std::this_thread::sleep_for(1500ms);
    CHECK(scalar(a.get(), sql) == "new");
  }

  // SHOW CACHES: why_not from the judgements: a write, a volatile function.
  REQUIRE(exec(a.get(), "UPDATE secrets SET v = v WHERE id = 2").ok());
  (void)repeated(a.get(), "SELECT now() FROM plain WHERE id = 1", 3);
  {
    auto r = exec(console.get(), "SHOW CACHES");
    REQUIRE(r.ok());
    bool write = false, volatile_fn = false;
    for (const Row& row : r.rows) {
      const std::string query = row[kQuery].value_or("");
      if (query.rfind("update secrets", 0) == 0) write = row[kWhyNot] == std::optional<std::string>("not a read");
      if (query.rfind("select now()", 0) == 0) volatile_fn = row[kWhyNot] == std::optional<std::string>("not immutable: now");
    }
    CHECK(write);
    CHECK(volatile_fn);
    const Row plain = caches_row("plain");
    CHECK(*plain[kQuery] == "select v from plain where id = ?");
    CHECK(*plain[kWhyNot] == "");
    CHECK(num(plain, kHits) >= 2);
    CHECK(num(plain, kEntries) == 1);
    CHECK(num(plain, kBytes) > 0);
    CHECK(*plain[kDisabled] == "no");
  }

  // CACHE DISABLE: no lookups and no fills for the fingerprint, its answers dropped; ENABLE undoes it.
  {
    const std::string sql = "SELECT v FROM toggled WHERE id = 1";
    CHECK(primed(a.get(), sql) == "old");
    const std::string fp = *caches_row("toggled")[kFingerprint];
    // The fingerprint SHOW QUERIES prints for the same statement.
    auto queries = exec(console.get(), "SHOW QUERIES");
    REQUIRE(queries.ok());
    bool in_queries = false;
    for (const Row& row : queries.rows) in_queries = in_queries || row[2] == std::optional<std::string>(fp);
    CHECK(in_queries);

    auto disabled = exec(console.get(), "CACHE DISABLE " + fp);
    REQUIRE_MESSAGE(disabled.ok(), disabled.message);
    Row row = caches_row("toggled");
    CHECK(*row[kDisabled] == "yes");
    CHECK(*row[kWhyNot] == "disabled");
    CHECK(num(row, kEntries) == 0);
    direct(d.get(), "UPDATE toggled SET v = 'new' WHERE id = 1");
    auto [hits, value] = repeated(a.get(), sql);
    CHECK(hits == 0);
    CHECK(value == "new");
    direct(d.get(), "UPDATE toggled SET v = 'newer' WHERE id = 1");   // nothing was filled meanwhile
    CHECK(scalar(a.get(), sql) == "newer");
    CHECK(num(caches_row("toggled"), kEntries) == 0);

    REQUIRE(exec(console.get(), "CACHE ENABLE " + fp).ok());
    CHECK(primed(a.get(), sql) == "newer");
    direct(d.get(), "UPDATE toggled SET v = 'newest' WHERE id = 1");
    CHECK(scalar(a.get(), sql) == "newer");
    row = caches_row("toggled");
    CHECK(*row[kDisabled] == "no");
    CHECK(*row[kWhyNot] == "");
    CHECK(num(row, kEntries) == 1);

    auto bad = exec(console.get(), "CACHE DISABLE nothex");
    CHECK(bad.sqlstate == "42601");
  }

  // A fingerprint rule, added by RELOAD: new sessions never cache that statement.
  {
    const std::string sql = "SELECT v FROM by_fp WHERE id = 1";
    CHECK(primed(a.get(), sql) == "old");
    const std::string fp = *caches_row("by_fp")[kFingerprint];
    config.databases += "[[cache.rules]]\nfingerprint = \"" + fp + "\"\ncache = false\n";
    relay.write_config(config);
    auto reloaded = exec(console.get(), "RELOAD");
    REQUIRE_MESSAGE(reloaded.ok(), reloaded.message);
    auto b = connect_ok(relay.conninfo(kDatabase));
    direct(d.get(), "UPDATE by_fp SET v = 'new' WHERE id = 1");
    auto [hits, value] = repeated(b.get(), sql);
    CHECK(hits == 0);
    CHECK(value == "new");
    CHECK(*caches_row("by_fp")[kWhyNot] == "rule");
  }
}
