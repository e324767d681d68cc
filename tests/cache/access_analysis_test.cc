// What a statement reads, writes and calls, as the cache sees it: each class of statement the
// cache must refuse, each write it must not miss.
#include <doctest/doctest.h>

#include <algorithm>

#include "cache/access_analysis.h"

using namespace pgrelay::cache;

namespace {

bool reads(const AccessAnalysis& a, std::string_view schema, std::string_view name) {
  return std::find(a.reads.begin(), a.reads.end(), RelationName{std::string(schema), std::string(name)}) != a.reads.end();
}
bool writes(const AccessAnalysis& a, std::string_view schema, std::string_view name) {
  return std::find(a.writes.begin(), a.writes.end(), RelationName{std::string(schema), std::string(name)}) != a.writes.end();
}
bool calls(const AccessAnalysis& a, std::string_view name, RoutineKind kind = RoutineKind::kFunction) {
  return std::any_of(a.routines.begin(), a.routines.end(), [&](const RoutineName& r) { return r.name == name && r.kind == kind; });
}

}  // namespace

TEST_CASE("a plain read lists its tables, schema-qualified or not") {
  auto a = analyze_access("SELECT a.id, b.name FROM accounts a JOIN shop.branches b ON a.bid = b.bid WHERE a.id = $1");
  CHECK(a.kind == StatementKind::kRead);
  CHECK(a.statements == 1);
  CHECK(a.cacheable_text);
  CHECK(a.not_cacheable.empty());
  CHECK(reads(a, "", "accounts"));
  CHECK(reads(a, "shop", "branches"));
  CHECK(a.reads.size() == 2);
  CHECK(a.writes.empty());
  CHECK_FALSE(a.writes_unknown);
  CHECK(calls(a, "=", RoutineKind::kOperator));
}

TEST_CASE("subqueries, set operations, VALUES and TABLE are searched") {
  auto a = analyze_access("SELECT * FROM t1 WHERE x IN (SELECT x FROM t2) UNION ALL SELECT * FROM (TABLE t3) s "
                          "WHERE EXISTS (SELECT 1 FROM s2.t4)");
  CHECK(a.kind == StatementKind::kRead);
  CHECK(reads(a, "", "t1"));
  CHECK(reads(a, "", "t2"));
  CHECK(reads(a, "", "t3"));
  CHECK(reads(a, "s2", "t4"));
  auto v = analyze_access("VALUES (1, 'a'), (2, 'b')");
  CHECK(v.kind == StatementKind::kRead);
  CHECK(v.cacheable_text);
  CHECK(v.reads.empty());
}

TEST_CASE("functions are listed with their schema, aggregates included") {
  auto a = analyze_access("SELECT count(*), pg_catalog.lower(name), public.score(id) FROM generate_series(1, 3) g, t");
  CHECK(calls(a, "count"));
  CHECK(calls(a, "lower"));
  CHECK(calls(a, "score"));
  CHECK(calls(a, "generate_series"));
  CHECK(std::any_of(a.routines.begin(), a.routines.end(),
                    [](const RoutineName& r) { return r.name == "score" && r.schema == "public"; }));
  CHECK(a.cacheable_text);   // the catalog decides about the functions
  auto n = analyze_access("SELECT nextval('s'), random(), now()");
  CHECK(calls(n, "nextval"));
  CHECK(calls(n, "random"));
  CHECK(calls(n, "now"));
}

TEST_CASE("CTE names are not tables, within their scope only") {
  auto a = analyze_access("WITH recent AS (SELECT * FROM orders WHERE ts > $1) SELECT * FROM recent JOIN customers USING (cid)");
  CHECK(reads(a, "", "orders"));
  CHECK(reads(a, "", "customers"));
  CHECK_FALSE(reads(a, "", "recent"));
  // A non-recursive CTE's body sees only the CTEs before it: the inner t is the table.
  auto shadow = analyze_access("WITH t AS (SELECT * FROM t WHERE x > 1) SELECT * FROM t");
  CHECK(reads(shadow, "", "t"));
  // Out of scope again after the statement that defined it.
  auto sub = analyze_access("SELECT * FROM (WITH c AS (SELECT 1) SELECT * FROM c) s, c");
  CHECK(reads(sub, "", "c"));
  // A schema-qualified name is never a CTE.
  auto qualified = analyze_access("WITH t AS (SELECT 1) SELECT * FROM public.t, t");
  CHECK(reads(qualified, "public", "t"));
  CHECK(qualified.reads.size() == 1);
  // RECURSIVE: every CTE sees itself.
  auto rec = analyze_access("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r");
  CHECK(rec.reads.empty());
  CHECK(rec.cacheable_text);
}

TEST_CASE("a data-modifying WITH is a write, not a read") {
  auto a = analyze_access("WITH moved AS (DELETE FROM queue WHERE id = 1 RETURNING *) SELECT * FROM moved");
  CHECK(a.kind == StatementKind::kWrite);
  CHECK_FALSE(a.cacheable_text);
  CHECK(writes(a, "", "queue"));
  CHECK_FALSE(reads(a, "", "moved"));
}

TEST_CASE("writes name their targets") {
  CHECK(writes(analyze_access("INSERT INTO s.t (a) SELECT a FROM u"), "s", "t"));
  CHECK(reads(analyze_access("INSERT INTO s.t (a) SELECT a FROM u"), "", "u"));
  CHECK(writes(analyze_access("UPDATE t SET a = u.a FROM u WHERE t.id = u.id"), "", "t"));
  CHECK(writes(analyze_access("DELETE FROM t USING u WHERE t.id = u.id"), "", "t"));
  auto merge = analyze_access("MERGE INTO target t USING source s ON t.id = s.id "
                              "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)");
  CHECK(merge.kind == StatementKind::kWrite);
  CHECK(writes(merge, "", "target"));
  CHECK(reads(merge, "", "source"));
  auto trunc = analyze_access("TRUNCATE a, s.b");
  CHECK(trunc.kind == StatementKind::kWrite);
  CHECK(writes(trunc, "", "a"));
  CHECK(writes(trunc, "s", "b"));
  CHECK_FALSE(trunc.writes_unknown);
  CHECK(analyze_access("TRUNCATE a CASCADE").writes_unknown);   // the referencing tables too
  CHECK(writes(analyze_access("COPY t (a, b) FROM STDIN"), "", "t"));
  CHECK(analyze_access("COPY t TO STDOUT").kind == StatementKind::kUtility);
  CHECK(writes(analyze_access("REFRESH MATERIALIZED VIEW CONCURRENTLY mv"), "", "mv"));
  auto into = analyze_access("SELECT * INTO newt FROM t");
  CHECK(into.kind == StatementKind::kWrite);
  CHECK_FALSE(into.cacheable_text);
  CHECK(writes(into, "", "newt"));
}

TEST_CASE("statements that may write anything invalidate the database") {
  for (const char* sql : {"CALL refresh_all()", "DO $$ BEGIN DELETE FROM t; END $$", "EXECUTE stmt(1)"}) {
    CAPTURE(sql);
    auto a = analyze_access(sql);
    CHECK(a.kind == StatementKind::kWrite);
    CHECK(a.writes_unknown);
  }
  for (const char* sql : {"ALTER TABLE t ADD COLUMN c int", "CREATE TABLE s.t (a int)", "DROP VIEW v",
                          "GRANT SELECT ON t TO bob", "REVOKE SELECT ON t FROM bob", "CREATE INDEX ON t (a)",
                          "ALTER TABLE t ENABLE ROW LEVEL SECURITY", "CREATE POLICY p ON t USING (true)"}) {
    CAPTURE(sql);
    auto a = analyze_access(sql);
    CHECK(a.kind == StatementKind::kDdl);
    CHECK(a.writes_unknown);
    CHECK_FALSE(a.cacheable_text);
  }
}

TEST_CASE("EXPLAIN ANALYZE runs the statement; plain EXPLAIN does not") {
  auto plain = analyze_access("EXPLAIN DELETE FROM t");
  CHECK(plain.kind == StatementKind::kUtility);
  auto analyze = analyze_access("EXPLAIN ANALYZE DELETE FROM t");
  CHECK(analyze.kind == StatementKind::kWrite);
  CHECK(writes(analyze, "", "t"));
  CHECK(analyze_access("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1").kind == StatementKind::kWrite);
  CHECK(analyze_access("EXPLAIN (ANALYZE false) UPDATE t SET a = 1").kind == StatementKind::kUtility);
  CHECK_FALSE(analyze_access("EXPLAIN ANALYZE SELECT * FROM t").cacheable_text);
}

TEST_CASE("each text-level reason not to cache") {
  struct Case {
    const char* sql;
    const char* reason;
  };
  for (const Case& c : {Case{"SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE"},
                        Case{"SELECT * FROM t WHERE id = 1 FOR SHARE OF t NOWAIT", "FOR UPDATE/SHARE"},
                        Case{"SELECT * FROM (SELECT * FROM t FOR KEY SHARE) s", "FOR UPDATE/SHARE"},
                        Case{"SELECT CURRENT_TIMESTAMP", "SQL value function"},
                        Case{"SELECT * FROM t WHERE owner = current_user", "SQL value function"},
                        Case{"SELECT * FROM t WHERE d > CURRENT_DATE - 7", "SQL value function"},
                        Case{"SELECT * FROM t WHERE ts > 'now'", "time-dependent literal"},
                        Case{"SELECT 'today'::date", "time-dependent literal"},
                        Case{"SELECT * FROM t WHERE d = ' Tomorrow '", "time-dependent literal"},
                        Case{"SELECT * FROM t TABLESAMPLE SYSTEM (10)", "TABLESAMPLE"},
                        Case{"SELECT * FROM pg_class", "system catalog"},
                        Case{"SELECT * FROM pg_catalog.pg_stat_activity", "system catalog"},
                        Case{"SELECT * FROM information_schema.tables", "system catalog"},
                        Case{"SELECT 1; SELECT 2", "several statements"},
                        Case{"SET search_path = s", "not a read"},
                        Case{"BEGIN", "not a read"},
                        Case{"SELEC 1", "syntax error"}}) {
    CAPTURE(c.sql);
    auto a = analyze_access(c.sql);
    CHECK_FALSE(a.cacheable_text);
    CHECK(a.not_cacheable.find(c.reason) == 0);
  }
  // Not time-dependent: a date, 'epoch', a word that merely contains "now".
  CHECK(analyze_access("SELECT * FROM t WHERE d = '2024-01-01'::date AND s = 'snow' AND e > 'epoch'").cacheable_text);
  CHECK(analyze_access("SELECT * FROM t WHERE name = 'pg_x'").cacheable_text);
}

TEST_CASE("a text the grammar rejects is treated as a write nobody can name") {
  auto a = analyze_access("SELECT * FROM");
  CHECK(a.kind == StatementKind::kUnknown);
  CHECK(a.writes_unknown);
  CHECK_FALSE(a.cacheable_text);
  CHECK(analyze_access("").statements == 0);
  CHECK_FALSE(analyze_access("").cacheable_text);
}

TEST_CASE("several statements: a write anywhere makes the text a write") {
  auto a = analyze_access("SELECT * FROM a; UPDATE b SET x = 1; SELECT * FROM c");
  CHECK(a.statements == 3);
  CHECK(a.kind == StatementKind::kWrite);
  CHECK(writes(a, "", "b"));
  CHECK(reads(a, "", "c"));
  CHECK_FALSE(a.cacheable_text);
}

TEST_CASE("transaction isolation from BEGIN, SET TRANSACTION and the session default") {
  auto begin = analyze_access("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  CHECK(begin.kind == StatementKind::kTransaction);
  CHECK(begin.isolation == Isolation::kRepeatableRead);
  CHECK(begin.read_only);
  CHECK_FALSE(begin.sets_default_isolation);
  CHECK(analyze_access("START TRANSACTION ISOLATION LEVEL SERIALIZABLE").isolation == Isolation::kSerializable);
  CHECK(analyze_access("BEGIN").isolation == Isolation::kUnspecified);
  CHECK(analyze_access("SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED").isolation == Isolation::kReadCommitted);
  CHECK(analyze_access("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'").isolation == Isolation::kImportedSnapshot);
  auto characteristics = analyze_access("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE");
  CHECK(characteristics.isolation == Isolation::kSerializable);
  CHECK(characteristics.sets_default_isolation);
  auto def = analyze_access("SET default_transaction_isolation = 'repeatable read'");
  CHECK(def.isolation == Isolation::kRepeatableRead);
  CHECK(def.sets_default_isolation);
  CHECK(analyze_access("SET transaction_isolation TO serializable").isolation == Isolation::kSerializable);
  CHECK(analyze_access("COMMIT").kind == StatementKind::kTransaction);
}

TEST_CASE("temporary objects are noticed: they shadow names for this session") {
  CHECK(analyze_access("CREATE TEMP TABLE accounts (id int)").creates_temporary);
  CHECK(analyze_access("CREATE TEMPORARY VIEW v AS SELECT 1").creates_temporary);
  CHECK(analyze_access("CREATE TEMP TABLE x AS SELECT * FROM t").creates_temporary);
  CHECK(analyze_access("CREATE TEMP SEQUENCE s").creates_temporary);
  CHECK_FALSE(analyze_access("CREATE TABLE accounts2 (id int)").creates_temporary);
}

TEST_CASE("utility statements change no rows") {
  for (const char* sql : {"SHOW search_path", "LISTEN ch", "NOTIFY ch, 'x'", "DISCARD ALL", "LOCK TABLE t",
                          "VACUUM ANALYZE t", "PREPARE p AS DELETE FROM t", "DEALLOCATE p",
                          "DECLARE c CURSOR FOR SELECT * FROM t", "FETCH 10 FROM c", "CLOSE c"}) {
    CAPTURE(sql);
    auto a = analyze_access(sql);
    CHECK(a.kind == StatementKind::kUtility);
    CHECK_FALSE(a.writes_unknown);
    CHECK(a.writes.empty());
    CHECK_FALSE(a.cacheable_text);
  }
}

TEST_CASE("operators and casts are listed for the catalog check") {
  auto a = analyze_access("SELECT a::numeric, b::public.money_t FROM t WHERE c BETWEEN 1 AND 5 AND d ~~ 'x%' AND e @> $1");
  CHECK(calls(a, ">=", RoutineKind::kOperator));
  CHECK(calls(a, "<=", RoutineKind::kOperator));
  CHECK(calls(a, "~~", RoutineKind::kOperator));
  CHECK(calls(a, "@>", RoutineKind::kOperator));
  CHECK(calls(a, "numeric", RoutineKind::kCast));
  CHECK(std::any_of(a.routines.begin(), a.routines.end(), [](const RoutineName& r) {
    return r.name == "money_t" && r.schema == "public" && r.kind == RoutineKind::kCast;
  }));
}

TEST_CASE("time-dependent parameter values") {
  CHECK(time_dependent_literal("now"));
  CHECK(time_dependent_literal(" NOW "));
  CHECK(time_dependent_literal("Yesterday"));
  CHECK_FALSE(time_dependent_literal("2024-01-01"));
  CHECK_FALSE(time_dependent_literal("nowhere"));
  CHECK_FALSE(time_dependent_literal(""));
}

TEST_CASE("random bytes and deep nesting never crash the parse") {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  const std::string_view alphabet = "SELECT FROM WHERE ( ) ' \" $1 ; , . * = WITH AS INSERT 0123 ab \\ -- /* */ \x01\xff";
  for (int round = 0; round < 2000; ++round) {
    std::string sql;
    const size_t len = state % 80;
    for (size_t i = 0; i < len; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      sql.push_back(alphabet[(state >> 33) % alphabet.size()]);
    }
    auto a = analyze_access(sql);
    CHECK((a.cacheable_text == a.not_cacheable.empty()));
  }
  // Deeper than PostgreSQL's stack limit: an error, not a crash.
  auto deep = analyze_access("SELECT " + std::string(100000, '(') + "1" + std::string(100000, ')'));
  CHECK_FALSE(deep.cacheable_text);
  CHECK(deep.writes_unknown);
}

TEST_CASE("statements that change how later names resolve") {
  for (const char* sql : {"SET search_path = other, public", "SET LOCAL search_path TO x", "RESET search_path", "RESET ALL",
                          "SET ROLE bob", "RESET ROLE", "SET SESSION AUTHORIZATION bob", "DISCARD ALL",
                          "SELECT set_config('search_path', 'x', false)", "SELECT pg_catalog.set_config('role', 'bob', true)"}) {
    CAPTURE(sql);
    CHECK(analyze_access(sql).changes_name_resolution);
  }
  for (const char* sql : {"SET TimeZone = 'UTC'", "SELECT * FROM t", "SHOW search_path", "BEGIN"}) {
    CAPTURE(sql);
    CHECK_FALSE(analyze_access(sql).changes_name_resolution);
  }
}
