// Per-fingerprint statistics: histogram buckets and quantiles, shard accumulation, eviction, merging shards.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "analyzer/log_histogram.h"
#include "analyzer/query_stats.h"

using namespace pgrelay::analyzer;

namespace {

constexpr double kMaxRelativeError = 0.1893;   // 2^(1/4) - 1, rounded up

bool within(uint64_t got, double want, double rel = kMaxRelativeError) {
  const double g = static_cast<double>(got);
  return g >= want * (1 - rel) && g <= want * (1 + rel);
}

QueryRecord rec(uint64_t fp, uint64_t micros, int64_t now = 0, std::string_view sqlstate = {},
                std::string_view db = "app", std::string_view user = "alice") {
  return {.fingerprint = fp, .database = db, .user = user, .normalized = "select ?", .rows = 1,
          .sqlstate = sqlstate, .duration_micros = micros, .wait_micros = 0, .now_unix_micros = now};
}

const QueryStatsEntry* find(const QueryStatsSnapshot& s, uint64_t fp, std::string_view db = "app",
                            std::string_view user = "alice") {
  for (const QueryStatsEntry& e : s.entries) {
    if (e.key.fingerprint == fp && e.key.database == db && e.key.user == user) return &e;
  }
  return nullptr;
}

QueryStatsSnapshot snap(const QueryStatsShard& shard) {
  QueryStatsSnapshot s;
  shard.snapshot(s);
  return s;
}

}  // namespace

TEST_CASE("latency histogram: buckets are contiguous and their largest value is within 19% of any value in them") {
  CHECK(LogHistogram::bucket_of(0) == 0);
  CHECK(LogHistogram::bucket_upper(0) == 0);
  CHECK(LogHistogram::bucket_of(1) == 1);
  for (size_t b = 1; b + 1 < LogHistogram::kBuckets; ++b) {
    const uint64_t up = LogHistogram::bucket_upper(b);
    CHECK(up >= LogHistogram::bucket_upper(b - 1));
    if (up > LogHistogram::bucket_upper(b - 1)) CHECK(LogHistogram::bucket_of(up) == b);   // non-empty
    CHECK(LogHistogram::bucket_of(up + 1) > b);
  }
  CHECK(LogHistogram::bucket_of(LogHistogram::kOverflowMicros - 1) == LogHistogram::kBuckets - 2);
  CHECK(LogHistogram::bucket_of(LogHistogram::kOverflowMicros) == LogHistogram::kBuckets - 1);
  CHECK(LogHistogram::bucket_of(UINT64_MAX) == LogHistogram::kBuckets - 1);
  for (uint64_t v = 1; v < LogHistogram::kOverflowMicros; v = v * 3 / 2 + 1) {
    const uint64_t up = LogHistogram::bucket_upper(LogHistogram::bucket_of(v));
    CHECK(up >= v);
    CHECK(static_cast<double>(up) < static_cast<double>(v) * (1 + kMaxRelativeError));
  }
  CHECK(sizeof(LogHistogram) <= 600);
}

TEST_CASE("latency histogram: quantiles of 1..1000 µs uniform; empty is 0") {
  LogHistogram h;
  CHECK(h.count() == 0);
  CHECK(h.quantile(0.5) == 0);
  CHECK(h.quantile(0.99) == 0);
  for (uint64_t v = 1; v <= 1000; ++v) h.add(v);
  CHECK(h.count() == 1000);
  CHECK(within(h.quantile(0.5), 500));
  CHECK(within(h.quantile(0.95), 950));
  CHECK(within(h.quantile(0.99), 990));
  CHECK(h.quantile(0.5) >= 500);   // the bucket's largest value: never below the true quantile
  CHECK(h.quantile(0.0) == 1);
  CHECK(within(h.quantile(1.0), 1000));
  CHECK(h.quantile(2.0) == h.quantile(1.0));   // q is clamped
}

TEST_CASE("latency histogram: merging two halves equals recording the whole") {
  LogHistogram low, high, whole;
  for (uint64_t v = 1; v <= 1000; ++v) {
    (v <= 500 ? low : high).add(v);
    whole.add(v);
  }
  LogHistogram merged = low;
  merged.merge(high);
  CHECK(merged.count() == 1000);
  for (size_t b = 0; b < LogHistogram::kBuckets; ++b) CHECK(merged.bucket_count(b) == whole.bucket_count(b));
  CHECK(merged.quantile(0.99) == whole.quantile(0.99));
  CHECK(low.quantile(0.99) < merged.quantile(0.99));
}

TEST_CASE("latency histogram: counters past 2^32 are halved, not wrapped, and keep the quantiles") {
  LogHistogram h;
  h.add(10);
  h.add(10);
  h.add(1000);
  const uint64_t p50 = h.quantile(0.5), p99 = h.quantile(0.99);
  for (int i = 0; i < 40; ++i) h.merge(LogHistogram(h));   // doubles every count, 2^40 times over
  CHECK(h.count() > (uint64_t{1} << 31));
  CHECK(h.bucket_count(LogHistogram::bucket_of(10)) == 2 * h.bucket_count(LogHistogram::bucket_of(1000)));
  CHECK(h.quantile(0.5) == p50);
  CHECK(h.quantile(0.99) == p99);
}

TEST_CASE("query stats: a shard accumulates calls, rows, times, wait and first/last seen") {
  QueryStatsShard shard(100);
  QueryRecord r = rec(7, 300, 2'000);
  r.rows = 5;
  r.wait_micros = 40;
  shard.record(r);
  r.duration_micros = 100;
  r.now_unix_micros = 1'000;   // an earlier wall clock from another worker's moment
  r.normalized = "other text";
  shard.record(r);
  r.duration_micros = 1100;
  r.now_unix_micros = 3'000;
  shard.record(r);

  const QueryStatsSnapshot s = snap(shard);
  REQUIRE(s.entries.size() == 1);
  const QueryStats& q = s.entries[0].stats;
  CHECK(q.calls == 3);
  CHECK(q.rows == 15);
  CHECK(q.total_micros == 1500);
  CHECK(q.min_micros == 100);
  CHECK(q.max_micros == 1100);
  CHECK(q.mean_micros() == 500);
  CHECK(q.wait_micros == 120);
  CHECK(q.first_seen_unix_micros == 1'000);
  CHECK(q.last_seen_unix_micros == 3'000);
  CHECK(q.histogram.count() == 3);
  CHECK(q.quantile_micros(0.0) == 100);     // the exact minimum, not its bucket's bound (107)
  CHECK(q.quantile_micros(1.0) == 1100);    // and maximum
  CHECK(q.quantile_micros(0.9) == 1100);    // 1100's bucket goes up to 1217: clamped to the maximum
  CHECK(q.normalized == "select ?");        // kept from the first execution
  CHECK(q.errors == 0);
  CHECK(s.statements == 3);
  CHECK(s.errors == 0);
}

TEST_CASE("query stats: errors count by SQLSTATE class and in the shard's totals") {
  QueryStatsShard shard(100);
  shard.record(rec(1, 10, 0, "23505"));
  shard.record(rec(1, 10, 0, "23503"));
  shard.record(rec(1, 10, 0, "40001"));
  shard.record(rec(1, 10, 0, ""));
  shard.record(rec(1, 10, 0, "X"));   // malformed: still an error
  const QueryStatsSnapshot s = snap(shard);
  REQUIRE(s.entries.size() == 1);
  const QueryStats& q = s.entries[0].stats;
  CHECK(q.calls == 5);
  CHECK(q.errors == 4);
  CHECK(q.errors_in_class("23") == 2);
  CHECK(q.errors_in_class("40") == 1);
  CHECK(q.errors_in_class("X?") == 1);
  CHECK(q.errors_in_class("42") == 0);
  CHECK(q.errors_by_class.size() == 3);
  CHECK(s.errors == 4);
  CHECK(s.statements == 5);
}

TEST_CASE("query stats: another database or user is another key") {
  QueryStatsShard shard(100);
  shard.record(rec(1, 10, 0, {}, "app", "alice"));
  shard.record(rec(1, 10, 0, {}, "app", "bob"));
  shard.record(rec(1, 10, 0, {}, "reports", "alice"));
  shard.record(rec(1, 10, 0, {}, "app", "alice"));
  shard.record(rec(2, 10, 0, {}, "app", "alice"));
  const QueryStatsSnapshot s = snap(shard);
  CHECK(s.entries.size() == 4);
  REQUIRE(find(s, 1, "app", "alice"));
  CHECK(find(s, 1, "app", "alice")->stats.calls == 2);
  CHECK(find(s, 1, "app", "bob")->stats.calls == 1);
  CHECK(find(s, 1, "reports", "alice")->stats.calls == 1);
  CHECK(QueryKeyHash{}(QueryKey{1, "app", "alice"}) == QueryKeyHash{}(QueryKeyView{1, "app", "alice"}));
  CHECK_FALSE(QueryKeyEqual{}(QueryKey{1, "ab", "c"}, QueryKeyView{1, "a", "bc"}));
}

TEST_CASE("query stats: a full shard evicts the least total time, in batches, and counts it") {
  SUBCASE("keys arriving ever heavier: the last ten stay") {
    QueryStatsShard shard(10);
    for (uint64_t fp = 1; fp <= 100; ++fp) shard.record(rec(fp, fp * 10));
    const QueryStatsSnapshot s = snap(shard);
    CHECK(s.entries.size() == 10);
    for (uint64_t fp = 91; fp <= 100; ++fp) CHECK(find(s, fp));
    CHECK(s.evicted == 90);
    CHECK(s.statements == 100);
  }
  SUBCASE("heavy keys called again survive a stream of light newcomers with exact stats") {
    QueryStatsShard shard(20);
    uint64_t light = 1000;
    for (int round = 0; round < 10; ++round) {
      for (uint64_t fp = 1; fp <= 10; ++fp) shard.record(rec(fp, 1000));
      for (int i = 0; i < 9; ++i) shard.record(rec(light++, 1));
    }
    const QueryStatsSnapshot s = snap(shard);
    CHECK(s.entries.size() <= 20);
    for (uint64_t fp = 1; fp <= 10; ++fp) {
      REQUIRE(find(s, fp));
      CHECK(find(s, fp)->stats.calls == 10);
      CHECK(find(s, fp)->stats.total_micros == 10'000);
    }
    CHECK(s.evicted + s.entries.size() == 100);   // every key seen once is either kept or counted
    CHECK(s.statements == 190);
  }
  SUBCASE("one eviction frees a tenth of the capacity; the newcomer is kept") {
    QueryStatsShard shard(100);
    for (uint64_t fp = 1; fp <= 100; ++fp) shard.record(rec(fp, 1000));
    CHECK(shard.size() == 100);
    shard.record(rec(500, 1));   // lighter than everything, still not evicted on arrival
    CHECK(shard.size() == 91);
    const QueryStatsSnapshot s = snap(shard);
    CHECK(s.evicted == 10);
    CHECK(find(s, 500));
  }
}

TEST_CASE("query stats: reset clears entries and totals") {
  QueryStatsShard shard(2);
  for (uint64_t fp = 1; fp <= 5; ++fp) shard.record(rec(fp, 10, 0, "57014"));
  QueryStatsSnapshot s = snap(shard);
  CHECK(s.evicted > 0);
  shard.reset();
  shard.snapshot(s);   // reuses s
  CHECK(s.entries.empty());
  CHECK(s.statements == 0);
  CHECK(s.errors == 0);
  CHECK(s.evicted == 0);
  shard.record(rec(9, 10));
  CHECK(snap(shard).entries.size() == 1);
}

TEST_CASE("query stats: merging shards sums each key and keeps the top K by total time") {
  QueryStatsShard a(100), b(100);
  a.record(rec(1, 60, 500, "23505"));
  a.record(rec(1, 40, 700));
  a.record(rec(2, 50));
  b.record(rec(1, 30, 100, "23503"));
  b.record(rec(3, 500));
  b.record(rec(4, 1));
  b.record(rec(1, 5, 0, {}, "app", "bob"));
  const std::vector<QueryStatsSnapshot> parts = {snap(a), snap(b)};

  const QueryStatsSnapshot m = merge_snapshots(parts, 2);
  REQUIRE(m.entries.size() == 2);
  CHECK(m.entries[0].key.fingerprint == 3);
  CHECK(m.entries[0].stats.total_micros == 500);
  CHECK(m.entries[1].key.fingerprint == 1);
  const QueryStats& q = m.entries[1].stats;
  CHECK(q.calls == 3);
  CHECK(q.total_micros == 130);
  CHECK(q.min_micros == 30);
  CHECK(q.max_micros == 60);
  CHECK(q.first_seen_unix_micros == 100);
  CHECK(q.last_seen_unix_micros == 700);
  CHECK(q.errors == 2);
  CHECK(q.errors_in_class("23") == 2);
  CHECK(q.histogram.count() == 3);
  CHECK(m.not_shown == 3);   // fingerprint 2, 4 and bob's 1
  CHECK(m.statements == 7);
  CHECK(m.errors == 2);

  const QueryStatsSnapshot all = merge_snapshots(parts, 100);
  CHECK(all.entries.size() == 5);
  CHECK(all.not_shown == 0);
  CHECK(all.entries.back().key.fingerprint == 4);
}

TEST_CASE("query stats: the registry gives one shard per worker and merges them") {
  QueryStatsRegistry registry(3, 10);
  CHECK(registry.workers() == 3);
  CHECK(registry.shard(0).capacity() == 10);
  for (uint64_t fp = 1; fp <= 20; ++fp) registry.shard(0).record(rec(fp, fp));   // evicts on worker 0
  registry.shard(1).record(rec(20, 1000));
  registry.shard(2).record(rec(20, 1000));
  QueryStatsSnapshot s = registry.snapshot();
  CHECK(s.entries.size() == 10);
  CHECK(s.entries[0].key.fingerprint == 20);
  CHECK(s.entries[0].stats.calls == 3);
  CHECK(s.entries[0].stats.total_micros == 2020);
  CHECK(s.evicted == 10);
  CHECK(s.statements == 22);
  registry.reset();
  s = registry.snapshot();
  CHECK(s.entries.empty());
  CHECK(s.statements == 0);
}

TEST_CASE("query stats: durations past the histogram's range report the exact maximum") {
  QueryStatsShard shard(10);
  const uint64_t two_hours = 2ULL * 3600 * 1000 * 1000;
  shard.record(rec(1, two_hours));
  const QueryStats q = snap(shard).entries.at(0).stats;
  CHECK(q.histogram.quantile(0.5) == LogHistogram::kOverflowMicros);
  CHECK(q.quantile_micros(0.5) == two_hours);
  CHECK(q.quantile_micros(0.99) == two_hours);
}
