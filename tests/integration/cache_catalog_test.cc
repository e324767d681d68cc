// The cache's catalog queries against a real PostgreSQL catalog: tables, partitions, views,
// materialized views, unlogged, RLS, triggers, cascading foreign keys, functions of each
// volatility, operators and casts; then the judgements over what they return.
#include <doctest/doctest.h>

#include <algorithm>

#include "cache/catalog_queries.h"
#include "harness.h"

using namespace pgrelay::it;
using namespace pgrelay::cache;

namespace {

constexpr const char* kDatabase = "cache_catalog_it";

const char* kSchema = R"SQL(
CREATE SCHEMA shop;
CREATE TABLE accounts (id int PRIMARY KEY, bid int, owner text);
CREATE TABLE shop.branches (bid int PRIMARY KEY, name text);
CREATE TABLE orders (id int, ts timestamptz, region text) PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
CREATE TABLE orders_us PARTITION OF orders FOR VALUES IN ('us');
CREATE UNLOGGED TABLE scratch (x int);
CREATE TABLE secret (id int, owner text);
ALTER TABLE secret ENABLE ROW LEVEL SECURITY;
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (pid int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE plain_ref (pid int REFERENCES accounts);
CREATE TABLE audited (x int);
CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t_audit AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit_fn();
CREATE TABLE ruled (x int);
CREATE RULE r_log AS ON INSERT TO ruled DO ALSO INSERT INTO scratch VALUES (NEW.x);
CREATE VIEW v_acc AS SELECT a.id, b.name FROM accounts a JOIN shop.branches b USING (bid);
CREATE VIEW v_recent AS SELECT * FROM orders WHERE ts > now() - interval '1 day';
CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM accounts;
CREATE SEQUENCE seq;
CREATE FUNCTION twice(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE FUNCTION twice(text) RETURNS text STABLE LANGUAGE sql AS 'SELECT $1 || $1';
CREATE FUNCTION bump() RETURNS int VOLATILE LANGUAGE sql AS 'INSERT INTO scratch VALUES (1) RETURNING x';
CREATE FUNCTION pure(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1';
CREATE SCHEMA other;
CREATE TABLE other.accounts (id int);
)SQL";

std::vector<Column> columns(const Row& row) {
  std::vector<Column> out;
  for (const auto& c : row) out.push_back(c ? Column(*c) : Column());
  return out;
}

// Fetches the facts for every name `sql` uses, under `search_path`, as the test's superuser.
void fetch(PGconn* c, const std::string& search_path, const AccessAnalysis& a, FetchedCatalog& catalog) {
  REQUIRE(exec(c, "BEGIN").ok());
  REQUIRE(exec_params(c, std::string(set_search_path_sql()), {search_path}).ok());
  if (!a.reads.empty() || !a.writes.empty()) {
    std::vector<RelationName> names = a.reads;
    names.insert(names.end(), a.writes.begin(), a.writes.end());
    auto params = FetchedCatalog::relation_params(names);
    auto r = exec_params(c, std::string(relations_sql()), {params[0], params[1]});
    REQUIRE_MESSAGE(r.ok(), r.message);
    REQUIRE(r.rows.size() == names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      RelationInfo info;
      auto cols = columns(r.rows[i]);
      REQUIRE(parse_relation_row(cols, info));
      catalog.add(names[i], std::move(info));
    }
  }
  if (!a.routines.empty()) {
    auto params = FetchedCatalog::routine_params(a.routines);
    auto r = exec_params(c, std::string(routines_sql()), {params[0], params[1], params[2]});
    REQUIRE_MESSAGE(r.ok(), r.message);
    REQUIRE(r.rows.size() == a.routines.size());
    for (size_t i = 0; i < a.routines.size(); ++i) {
      RoutineInfo info;
      auto cols = columns(r.rows[i]);
      REQUIRE(parse_routine_row(cols, info));
      catalog.add(a.routines[i], info);
    }
  }
  REQUIRE(exec(c, "COMMIT").ok());
}

// Judges `sql` under `search_path`, fetching names (views' too) until nothing is pending.
ReadJudgement read_verdict(PGconn* c, const std::string& search_path, const std::string& sql) {
  FetchedCatalog catalog;
  AccessAnalysis a = analyze_access(sql);
  for (int round = 0; round < 5; ++round) {
    ReadJudgement j = judge_read(a, catalog);
    if (j.verdict != Verdict::kPending) return j;
    AccessAnalysis missing;
    missing.reads = j.missing_relations;
    missing.routines = j.missing_routines;
    fetch(c, search_path, missing, catalog);
  }
  FAIL("still pending after 5 fetches: " << sql);
  return {};
}

WriteJudgement write_verdict(PGconn* c, const std::string& sql) {
  FetchedCatalog catalog;
  AccessAnalysis a = analyze_access(sql);
  fetch(c, "\"$user\", public", a, catalog);
  return judge_write(a, catalog);
}

std::string oid_of(PGconn* c, const std::string& relation) { return scalar(c, "SELECT '" + relation + "'::regclass::oid"); }

}  // namespace

TEST_CASE("the catalog queries and judgements against a real catalog") {
  auto admin = connect_ok(direct_conninfo());
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase);
  REQUIRE(exec(admin.get(), std::string("CREATE DATABASE ") + kDatabase).ok());
  auto c = connect_ok(direct_conninfo(kDatabase));
  auto created = exec(c.get(), kSchema);
  REQUIRE_MESSAGE(created.ok(), created.message);
  const std::string path = "\"$user\", public";

  SUBCASE("cacheable reads depend on the tables they read, through views") {
    auto j = read_verdict(c.get(), path, "SELECT a.id, twice(a.bid), lower(b.name) FROM accounts a JOIN shop.branches b USING (bid) WHERE a.id = $1");
    CHECK_MESSAGE(j.verdict == Verdict::kNotCacheable, "twice(text) is STABLE: every overload must be IMMUTABLE");
    j = read_verdict(c.get(), path, "SELECT a.id, pure(a.bid), lower(b.name) FROM accounts a JOIN shop.branches b USING (bid) WHERE a.id = $1::int");
    REQUIRE_MESSAGE(j.verdict == Verdict::kCacheable, j.reason);
    auto view = read_verdict(c.get(), path, "SELECT * FROM v_acc WHERE id > 3");
    REQUIRE_MESSAGE(view.verdict == Verdict::kCacheable, view.reason);
    CHECK(view.depends_on == j.depends_on);   // the view's tables, not the view
    auto mv = read_verdict(c.get(), path, "SELECT * FROM mv");
    CHECK_MESSAGE(mv.verdict == Verdict::kCacheable, mv.reason);
    auto part = read_verdict(c.get(), path, "SELECT count(*) FROM orders WHERE region = 'eu'");
    CHECK_MESSAGE(part.verdict == Verdict::kCacheable, part.reason);
  }

  SUBCASE("each catalog reason not to cache") {
    struct Case {
      const char* sql;
      const char* reason;
    };
    for (const Case& k : {Case{"SELECT * FROM scratch", "unlogged table"}, Case{"SELECT * FROM secret", "row-level security"},
                          Case{"SELECT * FROM v_recent", "not immutable: now"}, Case{"SELECT * FROM seq", "sequence"},
                          Case{"SELECT * FROM nothere", "unknown relation"}, Case{"SELECT bump()", "not immutable: bump"},
                          Case{"SELECT random() FROM accounts", "not immutable: random"},
                          Case{"SELECT to_char(ts, 'YYYY') FROM orders", "not immutable: to_char"},
                          Case{"SELECT no_such_fn(1)", "unknown function"}}) {
      CAPTURE(k.sql);
      auto j = read_verdict(c.get(), path, k.sql);
      CHECK(j.verdict == Verdict::kNotCacheable);
      CHECK(j.reason.find(k.reason) == 0);
    }
    // A temporary table shadows the permanent one for this session: resolved, and refused.
    REQUIRE(exec(c.get(), "CREATE TEMP TABLE accounts (id int)").ok());
    auto temp = read_verdict(c.get(), path, "SELECT * FROM accounts");
    CHECK(temp.reason.find("temporary table") == 0);
    REQUIRE(exec(c.get(), "DROP TABLE pg_temp.accounts").ok());
  }

  SUBCASE("search_path decides which table a name is") {
    auto pub = read_verdict(c.get(), path, "SELECT * FROM accounts");
    auto other = read_verdict(c.get(), "other, public", "SELECT * FROM accounts");
    REQUIRE(pub.verdict == Verdict::kCacheable);
    REQUIRE(other.verdict == Verdict::kCacheable);
    CHECK(pub.depends_on == std::vector<Oid>{static_cast<Oid>(std::stoul(oid_of(c.get(), "public.accounts")))});
    CHECK(other.depends_on == std::vector<Oid>{static_cast<Oid>(std::stoul(oid_of(c.get(), "other.accounts")))});
  }

  SUBCASE("writes name their table and its partitions, or the whole database") {
    auto w = write_verdict(c.get(), "INSERT INTO orders_eu VALUES (1, now(), 'eu')");
    REQUIRE_FALSE(w.whole_database);
    std::vector<Oid> family;
    for (const char* r : {"orders", "orders_eu"}) family.push_back(static_cast<Oid>(std::stoul(oid_of(c.get(), r))));
    std::sort(family.begin(), family.end());
    CHECK(w.tables == family);   // the parent's reads change too; the sibling's do not
    CHECK_FALSE(write_verdict(c.get(), "DELETE FROM accounts WHERE id = 1").whole_database);   // plain_ref's FK has no action
    CHECK_FALSE(write_verdict(c.get(), "REFRESH MATERIALIZED VIEW mv").whole_database);        // its _RETURN rule writes nothing
    for (const char* sql : {"DELETE FROM parent WHERE id = 1", "INSERT INTO audited VALUES (1)", "INSERT INTO ruled VALUES (1)",
                            "UPDATE v_acc SET name = 'x'", "SELECT bump()"}) {
      CAPTURE(sql);
      CHECK(write_verdict(c.get(), sql).whole_database);
    }
  }
  c.reset();
  exec(admin.get(), std::string("DROP DATABASE IF EXISTS ") + kDatabase);
}
