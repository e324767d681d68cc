// The cache's judgements over catalog facts, with an in-memory catalog.
#include <doctest/doctest.h>

#include <map>

#include "cache/catalog.h"
#include "tests/cache/fake_catalog.h"

using namespace pgrelay::cache;

namespace {


// The operators every read below uses, as the catalog reports them.
void builtin_operators(FakeCatalog& c) {
  for (const char* op : {"=", ">", "<", ">=", "<=", "+", "-"}) c.routine(op, true, false, RoutineKind::kOperator);
}

}  // namespace

TEST_CASE("a read of plain tables depends on each table") {
  FakeCatalog c;
  builtin_operators(c);
  c.table("accounts", 100);
  c.table("branches", 200, 'p').family = {200, 201, 202};
  auto j = judge_read(analyze_access("SELECT * FROM branches b JOIN accounts a ON a.bid = b.bid WHERE a.id = $1"), c);
  CHECK(j.verdict == Verdict::kCacheable);
  CHECK(j.depends_on == std::vector<Oid>{100, 200});
}

TEST_CASE("names not fetched yet are pending, and listed for the fetch") {
  FakeCatalog c;
  c.table("a", 1);
  auto j = judge_read(analyze_access("SELECT lower(x) FROM a, b WHERE a.id = b.id"), c);
  CHECK(j.verdict == Verdict::kPending);
  CHECK(j.missing_relations == std::vector<RelationName>{{"", "b"}});
  REQUIRE(j.missing_routines.size() == 2);   // lower, =
  CHECK(j.depends_on.empty());
  // A reason not to cache wins over pending names: no fetch needed.
  c.table("a", 1).persistence = 't';
  CHECK(judge_read(analyze_access("SELECT * FROM a, b"), c).verdict == Verdict::kNotCacheable);
}

TEST_CASE("each catalog-level reason not to cache") {
  FakeCatalog c;
  builtin_operators(c);
  c.table("temp_t", 1).persistence = 't';
  c.table("unlogged_t", 2).persistence = 'u';
  c.table("rls_t", 3).row_security = true;
  c.table("foreign_t", 4, 'f');
  c.table("seq", 5, 'S');
  c.table("plain", 6);
  c.absent("missing");
  c.routine("now", false);
  c.routine("lower", true);
  c.routine("my_type", false, false, RoutineKind::kCast);
  struct Case {
    const char* sql;
    const char* reason;
  };
  for (const Case& k : {Case{"SELECT * FROM temp_t", "temporary table"}, Case{"SELECT * FROM unlogged_t", "unlogged table"},
                        Case{"SELECT * FROM rls_t", "row-level security"}, Case{"SELECT * FROM foreign_t", "foreign table"},
                        Case{"SELECT * FROM seq", "sequence"}, Case{"SELECT * FROM missing", "unknown relation"},
                        Case{"SELECT now() FROM plain", "not immutable: now"},
                        Case{"SELECT unknown_fn(1) FROM plain", ""},   // pending, not refused: checked below
                        Case{"SELECT x::my_type FROM plain", "cast to a type with non-immutable input"},
                        Case{"SELECT * FROM plain FOR UPDATE", "FOR UPDATE/SHARE"}}) {
    CAPTURE(k.sql);
    auto j = judge_read(analyze_access(k.sql), c);
    if (*k.reason == 0) {
      CHECK(j.verdict == Verdict::kPending);
      continue;
    }
    CHECK(j.verdict == Verdict::kNotCacheable);
    CHECK(j.reason.find(k.reason) == 0);
    CHECK(j.depends_on.empty());
  }
  CHECK(judge_read(analyze_access("SELECT lower(name) FROM plain WHERE id = 1"), c).verdict == Verdict::kCacheable);
}

TEST_CASE("views are followed to their tables, and refused for what their definition does") {
  FakeCatalog c;
  builtin_operators(c);
  c.table("orders", 10);
  c.table("customers", 20);
  c.table("v_orders", 30, 'v').view_definition = " SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.cid;";
  c.table("v_recent", 31, 'v').view_definition = " SELECT * FROM orders WHERE ts > now() - '1 day'::interval;";
  c.table("v_nested", 32, 'v').view_definition = " SELECT * FROM v_orders WHERE id > 5;";
  c.table("v_user", 33, 'v').view_definition = " SELECT * FROM orders WHERE owner = CURRENT_USER;";
  c.routine("now", false);
  c.routine("interval", true, false, RoutineKind::kCast);
  auto j = judge_read(analyze_access("SELECT * FROM v_nested"), c);
  CHECK(j.verdict == Verdict::kCacheable);
  CHECK(j.depends_on == std::vector<Oid>{10, 20});
  auto recent = judge_read(analyze_access("SELECT count(*) FROM v_recent"), c);
  CHECK(recent.verdict == Verdict::kNotCacheable);
  CHECK(recent.reason.find("not immutable: now") == 0);
  auto user = judge_read(analyze_access("SELECT * FROM v_user"), c);
  CHECK(user.verdict == Verdict::kNotCacheable);
  CHECK(user.reason.find("view: SQL value function") == 0);
  // A view on itself through others cannot exist in PostgreSQL, but a deep stack is refused.
  for (int i = 0; i < 10; ++i) {
    c.table("deep" + std::to_string(i), 100 + i, 'v').view_definition = "SELECT * FROM deep" + std::to_string(i + 1);
  }
  c.table("deep10", 200);
  CHECK(judge_read(analyze_access("SELECT * FROM deep0"), c).reason == "views nested too deep");
}

TEST_CASE("a write moves its table's generation and its inheritance family") {
  FakeCatalog c;
  builtin_operators(c);
  c.table("orders", 10, 'p').family = {9, 10, 11, 12};   // parent 9, partitions 11, 12
  c.table("log", 20);
  auto j = judge_write(analyze_access("INSERT INTO orders SELECT * FROM log WHERE id > 3"), c);
  CHECK_FALSE(j.whole_database);
  CHECK(j.tables == std::vector<Oid>{9, 10, 11, 12});
  auto t = judge_write(analyze_access("TRUNCATE orders, log"), c);
  CHECK(t.tables == std::vector<Oid>{9, 10, 11, 12, 20});
  // A plain read writes nothing.
  auto read = judge_write(analyze_access("SELECT * FROM log WHERE id = 1"), c);
  CHECK_FALSE(read.whole_database);
  CHECK(read.tables.empty());
}

TEST_CASE("a write that may reach unnamed tables invalidates the database") {
  FakeCatalog c;
  builtin_operators(c);
  c.table("parent", 1).writes_beyond = true;   // ON DELETE CASCADE from a child, or a trigger
  c.table("v", 2, 'v').view_definition = "SELECT * FROM t";
  c.table("t", 3);
  c.routine("audit", false, true);   // a volatile user function
  c.routine("random", false, false);
  c.table("audited", 4, 'v').view_definition = "SELECT audit(id) FROM t";
  c.table("outer_view", 5, 'v').view_definition = "SELECT * FROM audited";
  c.routine("===", false, true, RoutineKind::kOperator);   // a user operator over a volatile function
  struct Case {
    const char* sql;
    const char* reason;
  };
  for (const Case& k : {Case{"DELETE FROM parent WHERE id = 1", "triggers, rules, cascading foreign keys"},
                        Case{"SELECT * FROM audited", "volatile function: audit"},
                        Case{"SELECT * FROM outer_view", "volatile function: audit"},
                        Case{"SELECT * FROM t WHERE id === 1", "volatile function: ==="},
                        Case{"SELECT * FROM not_fetched_either", "catalog facts pending"},
                        Case{"COMMIT PREPARED 'g1'", "statement may write unnamed tables"},
                        Case{"UPDATE v SET x = 1", "write through a view"},
                        Case{"INSERT INTO not_fetched VALUES (1)", "catalog facts pending"},
                        Case{"SELECT audit(id) FROM t", "volatile function: audit"},
                        Case{"SELECT unknown_fn(1)", "catalog facts pending"},
                        Case{"CALL anything()", "statement may write unnamed tables"},
                        Case{"ALTER TABLE t ADD COLUMN c int", "statement may write unnamed tables"}}) {
    CAPTURE(k.sql);
    auto j = judge_write(analyze_access(k.sql), c);
    CHECK(j.whole_database);
    CHECK(j.reason.find(k.reason) == 0);
    CHECK(j.tables.empty());
  }
  // random() is volatile but a built-in that writes nothing.
  CHECK_FALSE(judge_write(analyze_access("SELECT random() FROM t"), c).whole_database);
  CHECK_FALSE(judge_write(analyze_access("SELECT * FROM v"), c).whole_database);
  // Only what may change the schema drops the catalog facts too.
  CHECK(judge_write(analyze_access("ALTER TABLE t ADD COLUMN c int"), c).schema_may_change);
  CHECK(judge_write(analyze_access("CALL anything()"), c).schema_may_change);
  CHECK(judge_write(analyze_access("COMMIT PREPARED 'g1'"), c).schema_may_change);
  CHECK_FALSE(judge_write(analyze_access("SELECT audit(id) FROM t"), c).schema_may_change);
  CHECK_FALSE(judge_write(analyze_access("DELETE FROM parent WHERE id = 1"), c).schema_may_change);
  CHECK(analyze_access("CALL anything()").commits_inside);
  CHECK(analyze_access("DO $$ BEGIN COMMIT; END $$").commits_inside);
  CHECK_FALSE(analyze_access("EXECUTE q").commits_inside);
}
