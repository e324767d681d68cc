// Per-fingerprint statistics per (database, user): one bounded shard per worker, merged on read.
//
// Each worker thread records into its own QueryStatsShard, whose mutex is contended only while
// an admin reader copies it out: no lock is shared by all workers per statement. Readers merge
// the shards' snapshots (merge_snapshots) and keep the top max_fingerprints by total time.
//
// Memory is bounded per shard: at most `capacity` entries, each ~780 bytes with the hash node
// (the 528-byte histogram, key, counters) plus its normalized text, any database/user name over
// 15 bytes and 16 bytes per error class seen: ~4 MB per worker at 5000 entries, before the texts.
// When a new key finds the shard full, the entries with the least total time are evicted in one
// batch down to 90% of capacity, so eviction costs amortized O(1) per insert; evicted entries are
// counted, and their statements still count in the shard's totals.
//
// Accuracy of the merged top-K: every worker keeps up to max_fingerprints entries, so a key
// never evicted from any shard since the last reset has exact merged statistics, and the merged
// top-K is exact when none of its keys was evicted. A key evicted from some shard keeps only the
// time recorded since it came back there, so it is undercounted and may drop out of the top-K
// while a key it outweighs stays in. A newcomer starts with only its first execution's time and
// is the first to go when many new keys arrive at once; it survives a batch eviction once its
// total time exceeds that of the lightest 10% of entries.
//
// Every execution counts in calls, rows and times, failed ones too; errors are also counted by
// the 2-character class of their SQLSTATE. Times come from the caller: nothing here reads a clock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/log_histogram.h"

namespace pgrelay::analyzer {

inline constexpr size_t kDefaultMaxFingerprints = 5000;

// What one statement execution reports. Views are read during record() only.
struct QueryRecord {
  uint64_t fingerprint = 0;          // Fingerprint::hash
  std::string_view database;
  std::string_view user;
  std::string_view normalized;       // display text, copied only when the key is new
  uint64_t rows = 0;
  std::string_view sqlstate;         // empty when it succeeded
  uint64_t duration_micros = 0;      // execution, as the proxy measured it
  uint64_t wait_micros = 0;          // waiting for a server connection before it ran
  int64_t now_unix_micros = 0;       // wall clock when it finished: first/last seen
};

struct QueryKey {
  uint64_t fingerprint = 0;
  std::string database;
  std::string user;

  friend bool operator==(const QueryKey&, const QueryKey&) = default;
};

// The borrowed form, for lookups on the hot path without building strings.
struct QueryKeyView {
  uint64_t fingerprint = 0;
  std::string_view database;
  std::string_view user;
};

// Transparent, so a QueryKeyView finds a QueryKey; equal keys hash equal in either form.
struct QueryKeyHash {
  using is_transparent = void;
  size_t operator()(const QueryKeyView& k) const;
  size_t operator()(const QueryKey& k) const { return (*this)(QueryKeyView{k.fingerprint, k.database, k.user}); }
};

struct QueryKeyEqual {
  using is_transparent = void;
  static QueryKeyView view(const QueryKey& k) { return {k.fingerprint, k.database, k.user}; }
  static QueryKeyView view(const QueryKeyView& k) { return k; }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    const QueryKeyView x = view(a), y = view(b);
    return x.fingerprint == y.fingerprint && x.database == y.database && x.user == y.user;
  }
};

// Errors of one SQLSTATE class ("23" for 23505 unique_violation and 23503 foreign_key_violation).
struct ErrorClassCount {
  std::array<char, 2> sqlstate_class{};   // a missing character (a malformed SQLSTATE) is '?'
  uint64_t count = 0;
};

// The aggregate of one fingerprint x database x user. Plain value; the shard serializes access.
struct QueryStats {
  uint64_t calls = 0;
  uint64_t rows = 0;
  uint64_t errors = 0;
  std::vector<ErrorClassCount> errors_by_class;   // few classes per query: a scan beats a map
  uint64_t total_micros = 0;
  uint64_t min_micros = 0;                        // meaningful when calls > 0
  uint64_t max_micros = 0;
  uint64_t wait_micros = 0;                       // total
  LogHistogram histogram;
  int64_t first_seen_unix_micros = 0;             // meaningful when calls > 0
  int64_t last_seen_unix_micros = 0;
  std::string normalized;

  void add(const QueryRecord& r);
  // Sums another aggregate of the same key into this one (min of mins, max of maxes, ...).
  void merge(const QueryStats& other);

  [[nodiscard]] uint64_t mean_micros() const { return calls ? total_micros / calls : 0; }
  // From the histogram (within 19%), clamped to [min_micros, max_micros]; q <= 0 and q >= 1 give
  // min_micros and max_micros exactly; 0 when calls == 0.
  // The console shows quantile_micros(0.5), (0.95) and (0.99).
  [[nodiscard]] uint64_t quantile_micros(double q) const;
  // cls is two characters, e.g. "40"; 0 when none.
  [[nodiscard]] uint64_t errors_in_class(std::string_view cls) const;
};

struct QueryStatsEntry {
  QueryKey key;
  QueryStats stats;
};

struct QueryStatsSnapshot {
  std::vector<QueryStatsEntry> entries;   // a shard's: any order; merged: by total time, descending
  uint64_t statements = 0;                // recorded since the last reset, evicted or not
  uint64_t errors = 0;                    // likewise
  uint64_t evicted = 0;                   // entries evicted since the last reset
  uint64_t not_shown = 0;                 // merged only: keys beyond max_fingerprints left out
};

// One worker's statistics. record() is meant for the owning worker's thread, snapshot() and
// reset() for an admin reader; all are safe from any thread (each takes the shard's mutex).
class alignas(64) QueryStatsShard {   // its own cache lines: shards sit side by side in the registry
 public:
  // capacity is at least 1 (0 is taken as 1).
  explicit QueryStatsShard(size_t capacity = kDefaultMaxFingerprints);
  QueryStatsShard(const QueryStatsShard&) = delete;
  QueryStatsShard& operator=(const QueryStatsShard&) = delete;

  void record(const QueryRecord& r);
  // Replaces out's contents with a copy of this shard's. record() on this shard waits during the
  // copy: ~0.2 µs per entry into a reused `out`, up to ~1 µs into a fresh one (page faults), so
  // a few ms for a full shard of 5000: keep `out` across scrapes.
  void snapshot(QueryStatsSnapshot& out) const;
  // Drops every entry and zeroes the totals.
  void reset();
  // The normalized text recorded under `key`, or "" when this shard has none (never recorded
  // here, evicted, or reset since). For reports that name a statement seen earlier (N+1 sources)
  // without holding its text per session.
  [[nodiscard]] std::string normalized(const QueryKeyView& key) const;

  [[nodiscard]] size_t capacity() const { return capacity_; }
  [[nodiscard]] size_t size() const;

 private:
  using Map = std::unordered_map<QueryKey, QueryStats, QueryKeyHash, QueryKeyEqual>;

  void evict_lightest();   // with mu_ held

  const size_t capacity_;
  mutable std::mutex mu_;
  Map entries_;
  uint64_t statements_ = 0;
  uint64_t errors_ = 0;
  uint64_t evicted_ = 0;
  std::vector<Map::iterator> scratch_;   // kept between evictions to avoid reallocating
};

// Sums the shards' entries by key, sorts them by total time descending (ties: more calls first,
// then by fingerprint, database, user) and keeps the first max_fingerprints; totals and
// evictions are summed.
[[nodiscard]] QueryStatsSnapshot merge_snapshots(std::span<const QueryStatsSnapshot> shards, size_t max_fingerprints);

// The shards of all workers. Built once with the worker count; not a global: whoever owns the
// workers owns it and hands shard(i) to worker i.
class QueryStatsRegistry {
 public:
  QueryStatsRegistry(size_t workers, size_t max_fingerprints = kDefaultMaxFingerprints);

  // worker < workers(); the shard lives as long as the registry.
  [[nodiscard]] QueryStatsShard& shard(size_t worker) { return *shards_[worker]; }
  [[nodiscard]] size_t workers() const { return shards_.size(); }
  [[nodiscard]] size_t max_fingerprints() const { return max_fingerprints_; }

  // Copies every shard (one lock at a time) and merges them.
  [[nodiscard]] QueryStatsSnapshot snapshot() const;
  // Resets shard by shard: statements recorded meanwhile on other workers may survive.
  void reset();

 private:
  size_t max_fingerprints_;
  std::vector<std::unique_ptr<QueryStatsShard>> shards_;
};

}  // namespace pgrelay::analyzer
