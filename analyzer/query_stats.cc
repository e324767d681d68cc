// Per-fingerprint statistics: accumulation, bounded shards with batch eviction, merging shards.
#include "analyzer/query_stats.h"

#include <algorithm>
#include <tuple>

namespace pgrelay::analyzer {

namespace {

size_t mix(size_t h, size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)); }

std::array<char, 2> class_of(std::string_view sqlstate) {
  return {sqlstate.size() > 0 ? sqlstate[0] : '?', sqlstate.size() > 1 ? sqlstate[1] : '?'};
}

void add_errors(std::vector<ErrorClassCount>& by_class, std::array<char, 2> cls, uint64_t n) {
  for (ErrorClassCount& e : by_class) {
    if (e.sqlstate_class == cls) {
      e.count += n;
      return;
    }
  }
  by_class.push_back({.sqlstate_class = cls, .count = n});
}

// Heaviest first; the rest only makes the order deterministic.
bool heavier(const QueryStatsEntry& a, const QueryStatsEntry& b) {
  return std::tie(b.stats.total_micros, b.stats.calls, a.key.fingerprint, a.key.database, a.key.user) <
         std::tie(a.stats.total_micros, a.stats.calls, b.key.fingerprint, b.key.database, b.key.user);
}

}  // namespace

size_t QueryKeyHash::operator()(const QueryKeyView& k) const {
  // The fingerprint is already XXH3; the names are mixed in so one query run by many users spreads.
  const std::hash<std::string_view> h;
  return mix(mix(static_cast<size_t>(k.fingerprint), h(k.database)), h(k.user));
}

void QueryStats::add(const QueryRecord& r) {
  if (calls == 0) {
    min_micros = max_micros = r.duration_micros;
    first_seen_unix_micros = last_seen_unix_micros = r.now_unix_micros;
  } else {
    min_micros = std::min(min_micros, r.duration_micros);
    max_micros = std::max(max_micros, r.duration_micros);
    // Workers' clocks are read at different moments: do not assume records arrive in order.
    first_seen_unix_micros = std::min(first_seen_unix_micros, r.now_unix_micros);
    last_seen_unix_micros = std::max(last_seen_unix_micros, r.now_unix_micros);
  }
  ++calls;
  rows += r.rows;
  total_micros += r.duration_micros;
  wait_micros += r.wait_micros;
  histogram.add(r.duration_micros);
  if (!r.sqlstate.empty()) {
    ++errors;
    add_errors(errors_by_class, class_of(r.sqlstate), 1);
  }
  if (normalized.empty() && !r.normalized.empty()) normalized = r.normalized;
}

void QueryStats::merge(const QueryStats& other) {
  if (other.calls == 0) return;
  if (calls == 0) {
    min_micros = other.min_micros;
    max_micros = other.max_micros;
    first_seen_unix_micros = other.first_seen_unix_micros;
    last_seen_unix_micros = other.last_seen_unix_micros;
  } else {
    min_micros = std::min(min_micros, other.min_micros);
    max_micros = std::max(max_micros, other.max_micros);
    first_seen_unix_micros = std::min(first_seen_unix_micros, other.first_seen_unix_micros);
    last_seen_unix_micros = std::max(last_seen_unix_micros, other.last_seen_unix_micros);
  }
  calls += other.calls;
  rows += other.rows;
  errors += other.errors;
  for (const ErrorClassCount& e : other.errors_by_class) add_errors(errors_by_class, e.sqlstate_class, e.count);
  total_micros += other.total_micros;
  wait_micros += other.wait_micros;
  histogram.merge(other.histogram);
  if (normalized.empty()) normalized = other.normalized;
}

uint64_t QueryStats::quantile_micros(double q) const {
  if (calls == 0) return 0;
  if (q <= 0) return min_micros;   // the extremes are known exactly
  if (q >= 1) return max_micros;
  const uint64_t v = histogram.quantile(q);
  // The overflow bucket's answer is only a lower bound; the maximum is exact and belongs to it.
  if (v >= LogHistogram::kOverflowMicros) return max_micros;
  return std::clamp(v, min_micros, max_micros);
}

uint64_t QueryStats::errors_in_class(std::string_view cls) const {
  const std::array<char, 2> c = class_of(cls);
  for (const ErrorClassCount& e : errors_by_class) {
    if (e.sqlstate_class == c) return e.count;
  }
  return 0;
}

QueryStatsShard::QueryStatsShard(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

void QueryStatsShard::record(const QueryRecord& r) {
  const QueryKeyView view{r.fingerprint, r.database, r.user};
  std::lock_guard lock(mu_);
  ++statements_;
  if (!r.sqlstate.empty()) ++errors_;
  auto it = entries_.find(view);
  if (it == entries_.end()) {
    // Evict before inserting, so the newcomer is never among those evicted for its own sake.
    if (entries_.size() >= capacity_) evict_lightest();
    it = entries_.emplace(QueryKey{r.fingerprint, std::string(r.database), std::string(r.user)}, QueryStats{}).first;
  }
  it->second.add(r);
}

std::string QueryStatsShard::normalized(const QueryKeyView& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? std::string() : it->second.normalized;
}

void QueryStatsShard::evict_lightest() {
  // Down to 90% of capacity at once: O(capacity) work every capacity/10 inserts.
  const size_t n = std::min(entries_.size(), std::max<size_t>(capacity_ / 10, 1));
  scratch_.clear();
  scratch_.reserve(entries_.size());
  for (auto it = entries_.begin(); it != entries_.end(); ++it) scratch_.push_back(it);
  std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<ptrdiff_t>(n - 1), scratch_.end(),
                   [](Map::iterator a, Map::iterator b) { return a->second.total_micros < b->second.total_micros; });
  for (size_t i = 0; i < n; ++i) entries_.erase(scratch_[i]);
  evicted_ += n;
  scratch_.clear();
}

void QueryStatsShard::snapshot(QueryStatsSnapshot& out) const {
  out.entries.clear();
  out.entries.reserve(capacity_);   // allocated before locking: record() waits only for the copy
  std::lock_guard lock(mu_);
  for (const auto& [key, stats] : entries_) out.entries.push_back({.key = key, .stats = stats});
  out.statements = statements_;
  out.errors = errors_;
  out.evicted = evicted_;
  out.not_shown = 0;
}

void QueryStatsShard::reset() {
  std::lock_guard lock(mu_);
  entries_.clear();
  statements_ = errors_ = evicted_ = 0;
}

size_t QueryStatsShard::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

QueryStatsSnapshot merge_snapshots(std::span<const QueryStatsSnapshot> shards, size_t max_fingerprints) {
  QueryStatsSnapshot out;
  // Views into the shards' keys, which outlive this function; values index out.entries.
  std::unordered_map<QueryKeyView, size_t, QueryKeyHash, QueryKeyEqual> index;
  for (const QueryStatsSnapshot& s : shards) {
    out.statements += s.statements;
    out.errors += s.errors;
    out.evicted += s.evicted;
    for (const QueryStatsEntry& e : s.entries) {
      const auto [it, inserted] = index.try_emplace(QueryKeyEqual::view(e.key), out.entries.size());
      if (inserted) {
        out.entries.push_back(e);
      } else {
        out.entries[it->second].stats.merge(e.stats);
      }
    }
  }
  const size_t keep = std::min(out.entries.size(), max_fingerprints);
  std::partial_sort(out.entries.begin(), out.entries.begin() + static_cast<ptrdiff_t>(keep), out.entries.end(),
                    heavier);
  out.not_shown = out.entries.size() - keep;
  out.entries.erase(out.entries.begin() + static_cast<ptrdiff_t>(keep), out.entries.end());
  return out;
}

QueryStatsRegistry::QueryStatsRegistry(size_t workers, size_t max_fingerprints)
    : max_fingerprints_(std::max<size_t>(max_fingerprints, 1)) {
  shards_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) shards_.push_back(std::make_unique<QueryStatsShard>(max_fingerprints_));
}

QueryStatsSnapshot QueryStatsRegistry::snapshot() const {
  std::vector<QueryStatsSnapshot> parts(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) shards_[i]->snapshot(parts[i]);
  return merge_snapshots(parts, max_fingerprints_);
}

void QueryStatsRegistry::reset() {
  for (const auto& s : shards_) s->reset();
}

}  // namespace pgrelay::analyzer
