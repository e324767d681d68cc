// The primary's positions over time: LSN text, lag in time, and read-your-writes positions.
#include <doctest/doctest.h>

#include "proxy/pool/replica_lag.h"
#include "proxy/pool/replica_set.h"

using namespace pgrelay::proxy;
using namespace std::chrono_literals;

TEST_CASE("pg_lsn text") {
  CHECK(parse_lsn("0/0") == Lsn(0));
  CHECK(parse_lsn("16/B374D848") == ((Lsn(0x16) << 32) | 0xB374D848u));
  CHECK(parse_lsn("FFFFFFFF/FFFFFFFF") == ~Lsn(0));
  CHECK_FALSE(parse_lsn(""));
  CHECK_FALSE(parse_lsn("16"));
  CHECK_FALSE(parse_lsn("/1"));
  CHECK_FALSE(parse_lsn("1/"));
  CHECK_FALSE(parse_lsn("1/G"));
  CHECK_FALSE(parse_lsn("1/2/3"));
  CHECK_FALSE(parse_lsn("100000000/0"));
}

TEST_CASE("read-your-writes waits for a sample begun after the commit") {
  PrimaryPositions p;
  const auto t0 = PrimaryPositions::Clock::now();
  const uint64_t s1 = p.begin_sample();
  p.record(s1, 100, t0);
  const uint64_t committed = p.begun();   // a write commits now: sample 1 may predate it
  CHECK_FALSE(p.position_after(committed));
  const uint64_t s2 = p.begin_sample();
  CHECK_FALSE(p.position_after(committed));   // begun, not answered yet
  p.record(s2, 250, t0 + 100ms);
  CHECK(p.position_after(committed) == Lsn(250));
  CHECK(p.position_after(0) == Lsn(100));
  CHECK(p.latest() == Lsn(250));
}

TEST_CASE("time behind: how long ago the primary passed the replica's replay position") {
  PrimaryPositions p;
  const auto t0 = PrimaryPositions::Clock::now();
  p.record(p.begin_sample(), 1000, t0);
  p.record(p.begin_sample(), 2000, t0 + 1s);
  p.record(p.begin_sample(), 3000, t0 + 2s);
  CHECK(p.time_behind(3000, t0 + 5s) == 0s);
  CHECK(p.time_behind(3000 - 40, t0 + 5s) == 0s);   // within a page header: caught up
  CHECK(p.time_behind(2500, t0 + 5s) == 3s);
  CHECK(p.time_behind(500, t0 + 5s) == 5s);
}

TEST_CASE("choose: only replicas in rotation and replayed far enough, fewest outstanding, ties in turn") {
  pgrelay::conf::ReplicaSettings settings;
  settings.replicas = {{.host = "a", .port = 1}, {.host = "b", .port = 2}};
  ReplicaSet set("db", settings);
  CHECK_FALSE(set.choose(0));   // nothing checked yet
  set.replica(0).in_rotation = true;
  set.replica(1).in_rotation = true;
  set.replica(0).replay_lsn = 500;
  set.replica(1).replay_lsn = 900;
  int first = 0, second = 0;
  for (int i = 0; i < 10; ++i) (*set.choose(0) == 0 ? first : second)++;
  CHECK(first == 5);
  CHECK(second == 5);
  set.replica(1).outstanding = 3;
  CHECK(set.choose(0) == size_t(0));
  CHECK(set.choose(600) == size_t(1));   // only b has replayed that far
  CHECK_FALSE(set.choose(1000));
  set.replica(0).in_rotation = false;
  CHECK(set.choose(0) == size_t(1));
}
