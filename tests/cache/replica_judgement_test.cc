// Which statements a read replica may run (judge_replica), with and without catalog facts.
#include <doctest/doctest.h>

#include "cache/replica_judgement.h"
#include "tests/cache/fake_catalog.h"

using namespace pgrelay::cache;

namespace {

ReplicaVerdict verdict(const std::string& sql, const CatalogView* catalog = nullptr) {
  return judge_replica(analyze_access(sql), catalog).verdict;
}

}  // namespace

TEST_CASE("plain reads go to a replica; writes, locks and several statements do not") {
  CHECK(verdict("select * from t where id = 1") == ReplicaVerdict::kReplica);
  CHECK(verdict("select a, b from t join u using (id) where t.x > 3 order by 1") == ReplicaVerdict::kReplica);
  CHECK(verdict("select now()::text, current_user") == ReplicaVerdict::kPrimary);   // functions need facts
  CHECK(verdict("select * from t for update") == ReplicaVerdict::kPrimary);
  CHECK(verdict("select * from t for share") == ReplicaVerdict::kPrimary);
  CHECK(verdict("with d as (delete from t returning *) select * from d") == ReplicaVerdict::kPrimary);
  CHECK(verdict("insert into t values (1)") == ReplicaVerdict::kPrimary);
  CHECK(verdict("update t set a = 1") == ReplicaVerdict::kPrimary);
  CHECK(verdict("select 1; select 2") == ReplicaVerdict::kPrimary);
  CHECK(verdict("select * into t2 from t") == ReplicaVerdict::kPrimary);
  CHECK(verdict("set search_path = x") == ReplicaVerdict::kPrimary);
  CHECK(verdict("begin") == ReplicaVerdict::kPrimary);
  CHECK(verdict("begin read only") == ReplicaVerdict::kReadOnlyTransaction);
  CHECK(verdict("start transaction isolation level repeatable read, read only") == ReplicaVerdict::kReadOnlyTransaction);
  CHECK(verdict("begin read write") == ReplicaVerdict::kPrimary);
  CHECK(verdict("not sql at all") == ReplicaVerdict::kPrimary);
}

TEST_CASE("functions: read-only only when the catalog facts say so, and never those a standby refuses") {
  FakeCatalog c;
  c.routine("count", false);               // found, not immutable, not a writing volatile one
  c.routine("lower", true);
  c.routine("bump", false, /*may_write=*/true);
  c.routine("nextval", false);
  c.routine("pg_advisory_lock", false);
  c.routine("=", true, false, RoutineKind::kOperator);
  CHECK(verdict("select count(*) from t", &c) == ReplicaVerdict::kReplica);
  CHECK(verdict("select lower(name) from t where id = 1", &c) == ReplicaVerdict::kReplica);
  CHECK(verdict("select bump(1)", &c) == ReplicaVerdict::kPrimary);
  CHECK(verdict("select nextval('s')", &c) == ReplicaVerdict::kPrimary);
  CHECK(verdict("select nextval('s')") == ReplicaVerdict::kPrimary);
  CHECK(verdict("select pg_catalog.setval('s', 3)") == ReplicaVerdict::kPrimary);
  CHECK(verdict("select pg_advisory_lock(1)", &c) == ReplicaVerdict::kPrimary);
  CHECK(verdict("select pg_advisory_unlock_all()", &c) == ReplicaVerdict::kPrimary);
  CHECK(verdict("select unknown_fn(1)", &c) == ReplicaVerdict::kPrimary);   // no facts for it
  // A user operator whose function is volatile and not built in: the facts say it may write.
  c.routine("@@@", false, true, RoutineKind::kOperator);
  CHECK(verdict("select a @@@ b from t", &c) == ReplicaVerdict::kPrimary);
  // Unlogged and temporary tables have no rows on a standby.
  c.table("logged", 10);
  c.table("scratch", 11).persistence = 'u';
  CHECK(verdict("select * from logged", &c) == ReplicaVerdict::kReplica);
  CHECK(verdict("select * from scratch", &c) == ReplicaVerdict::kPrimary);
  CHECK_FALSE(judge_replica(analyze_access("select bump(1)"), &c).reason.empty());
}
