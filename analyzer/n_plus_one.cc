// N+1 detection: units of work, distinct executions per fingerprint, value lineage; the registry.
//
// Lineage is an intersection: a detection fires at exactly `threshold` distinct executions, so a
// (parameter, source column) names the source only if it supplied the value of every one of them.
// The candidates are taken at a fingerprint's first distinct execution and each later one keeps
// those that supplied its value too: no per-candidate counts to bound, and at most 32 to check.
#include "analyzer/n_plus_one.h"

#include <xxhash.h>

#include <algorithm>
#include <functional>
#include <utility>

namespace pgrelay::analyzer {
namespace {

constexpr size_t kMaxCandidates = 32;          // lineage candidates per fingerprint
constexpr size_t kMaxLineageParameters = 16;   // parameters looked up per execution

uint64_t hash_bytes(std::string_view v) { return XXH3_64bits(v.data(), v.size()); }

// The current statement's parameter hashes, from track() through match_lineage(): scratch of the
// thread's (capacity kept), not of each session's detector.
std::vector<uint64_t>& parameter_hashes() {
  thread_local std::vector<uint64_t> hashes;
  return hashes;
}

}  // namespace

NPlusOneDetector::NPlusOneDetector(NPlusOneOptions options) : options_(options) {
  options_.threshold = std::max<size_t>(options_.threshold, 2);   // one execution repeats nothing
}

NPlusOneDetector::~NPlusOneDetector() { give_back_n_plus_one_unit(std::move(unit_)); }

bool NPlusOneDetector::ends_unit(const NPlusOneStatement& s) const {
  if (!started_) return false;
  // Entering or leaving a transaction block ends the unit; so does a pause between autocommit
  // statements (a block is one unit however slow).
  const bool flip = s.in_transaction != last_in_transaction_;
  const bool pause = !s.in_transaction && !last_in_transaction_ && s.now_micros > last_micros_ &&
                     s.now_micros - last_micros_ > options_.window_micros;
  return flip || pause;
}

bool NPlusOneDetector::wants_parameters(const NPlusOneStatement& s) const {
  if (!s.read) return false;
  if (ends_unit(s) || !unit_) return true;
  if (const Tracked* t = unit_->find_tracked(s.fingerprint)) return !t->reported;
  return unit_->tracked_count() < NPlusOneUnit::kMaxTracked;
}

void NPlusOneDetector::statement_start(const NPlusOneStatement& s) {
  pending_.reset();
  if (ends_unit(s)) clear_unit();
  started_ = true;
  last_in_transaction_ = s.in_transaction;
  last_micros_ = s.now_micros;
  current_fingerprint_ = s.fingerprint;
  current_read_ = s.read;
  current_rows_ = 0;
  if (!s.read) return;
  if (!unit_) unit_ = take_n_plus_one_unit();
  unit_->columns.clear();
  track(s);
}

void NPlusOneDetector::columns(std::span<const std::string_view> names) {
  // A full unit remembers no more values, so no more sources either.
  if (!wants_columns()) return;
  unit_->columns.clear();
  for (const std::string_view name : names) unit_->columns.push_back(unit_->source_for(current_fingerprint_, name));
}

void NPlusOneDetector::row(std::span<const std::optional<std::string_view>> values) {
  if (!wants_rows()) return;
  ++current_rows_;
  NPlusOneUnit& unit = *unit_;
  const uint32_t row = unit.row_sequence++;
  const size_t n = std::min(values.size(), unit.columns.size());
  for (size_t i = 0; i < n; ++i) {
    const uint32_t source = unit.columns[i];
    const std::optional<std::string_view>& v = values[i];
    // Empty values say nothing about where a parameter came from.
    if (source == NPlusOneUnit::kNoSource || !v || v->empty() || v->size() > options_.max_value_bytes) continue;
    if (unit.value_count() >= options_.max_values) return;
    const uint64_t h = hash_bytes(*v);
    // The first row a value appears in, once per source: a repeated author_id is one entry.
    if (unit.find_origin(h, source)) continue;
    unit.add_value(h, {.source = source, .row = row});
  }
}

std::optional<NPlusOneDetection> NPlusOneDetector::statement_end(uint64_t now_micros) {
  last_micros_ = now_micros;
  current_read_ = false;   // stray rows after the end belong to no statement
  std::optional<NPlusOneDetection> d = std::move(pending_);
  pending_.reset();
  return d;
}

void NPlusOneDetector::transaction_end() { clear_unit(); }

void NPlusOneDetector::clear_unit() {
  // Back to the thread's spares: the next unit of any session here reuses its memory.
  give_back_n_plus_one_unit(std::move(unit_));
}

void NPlusOneDetector::track(const NPlusOneStatement& s) {
  Tracked* found = unit_->find_tracked(s.fingerprint);
  if (!found) found = unit_->add_tracked(s.fingerprint);
  if (!found) return;   // kMaxTracked fingerprints already
  Tracked& t = *found;
  if (t.reported) return;
  std::vector<uint64_t>& hashes = parameter_hashes();
  hashes.clear();
  for (const std::string_view v : s.parameters) hashes.push_back(hash_bytes(v));
  // The tuple is the sequence of value hashes: ("ab", "c") and ("a", "bc") differ.
  const uint64_t tuple = XXH3_64bits(hashes.data(), hashes.size() * sizeof(uint64_t));
  if (std::find(t.tuples.begin(), t.tuples.end(), tuple) != t.tuples.end()) return;
  t.tuples.push_back(tuple);
  match_lineage(s, t, hashes);
  if (t.tuples.size() < options_.threshold) return;
  pending_ = detection(s.fingerprint, t);
  t.reported = true;   // once per unit; what it held is no longer needed
  t.tuples.clear();
  t.candidates.clear();
}

void NPlusOneDetector::match_lineage(const NPlusOneStatement& s, Tracked& t, std::span<const uint64_t> hashes) {
  const size_t n = std::min(s.parameters.size(), kMaxLineageParameters);
  auto usable = [&](size_t p) { return !s.parameters[p].empty() && s.parameters[p].size() <= options_.max_value_bytes; };
  if (t.tuples.size() == 1) {
    // Every (parameter, source) that returned this value earlier, other than this fingerprint
    // itself (a tree walked one level per query is not its own source).
    const NPlusOneUnit& unit = *unit_;
    for (size_t p = 0; p < n && unit.value_count() != 0; ++p) {
      if (!usable(p)) continue;
      const uint64_t h = hashes[p];
      bool full = false;
      unit.for_each_origin(h, [&](const NPlusOneUnit::ValueOrigin& o) {
        if (unit.source(o.source).fingerprint == s.fingerprint) return true;
        if (t.candidates.size() >= kMaxCandidates) return !(full = true);
        t.candidates.push_back({.parameter = uint32_t(p), .source = o.source, .first_value = h, .ordered = 1, .last_row = o.row});
        return true;
      });
      if (full) return;
    }
    return;
  }
  // A later execution keeps the candidates that supplied its value too.
  std::erase_if(t.candidates, [&](Candidate& c) {
    if (c.parameter >= n || !usable(c.parameter)) return true;
    const uint64_t h = hashes[c.parameter];
    const NPlusOneUnit::ValueOrigin* origin = unit_->find_origin(h, c.source);
    if (!origin) return true;
    c.varied |= h != c.first_value;
    if (origin->row > c.last_row) ++c.ordered;
    c.last_row = origin->row;
    return false;
  });
}

NPlusOneDetection NPlusOneDetector::detection(uint64_t fingerprint, const Tracked& t) const {
  NPlusOneDetection d{.fingerprint = fingerprint, .executions = t.tuples.size()};
  // A candidate whose value never changed (LIMIT 21 matching some id 21) did not drive the loop.
  // Small ids often appear in several columns (books.id and books.author_id): the loop walks its
  // source's rows in order, so prefer the column whose rows the values followed most often in
  // order, then the most recently seen source.
  const Candidate* best = nullptr;
  for (const Candidate& c : t.candidates) {
    if (!c.varied) continue;
    if (!best || c.ordered > best->ordered || (c.ordered == best->ordered && c.source > best->source)) best = &c;
  }
  if (best) {
    const NPlusOneUnit::Source& source = unit_->source(best->source);
    d.source = NPlusOneSource{.fingerprint = source.fingerprint,
                              .column = source.column,
                              .parameter = best->parameter,
                              .matched = t.tuples.size()};
  }
  return d;
}

std::string n_plus_one_suggestion(uint64_t executions, std::string_view source_column) {
  if (source_column.empty()) {
    return "the same query ran " + std::to_string(executions) +
           " times with different values in one unit of work: fetch them in one query (= ANY($1) / IN) or "
           "eager-load them";
  }
  const std::string c(source_column);
  return "load the rows for all " + c + " values at once: JOIN with the source query, or WHERE ... = ANY($1) with "
         "the list of " + c + " values (ORM: eager loading, e.g. selectinload / select_related / prefetch_related)";
}

size_t NPlusOneRegistry::KeyHash::operator()(const Key& k) const {
  size_t h = std::hash<std::string>()(k.database);
  auto mix = [&h](size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); };
  mix(std::hash<std::string>()(k.user));
  mix(std::hash<uint64_t>()(k.fingerprint));
  mix(std::hash<uint64_t>()(k.source_fingerprint) + k.has_source);
  mix(std::hash<std::string>()(k.source_column));
  return h;
}

NPlusOneRegistry::NPlusOneRegistry(uint64_t log_interval_micros, size_t max_patterns)
    : log_interval_micros_(log_interval_micros), max_patterns_(std::max<size_t>(max_patterns, 1)) {}

bool NPlusOneRegistry::report(const NPlusOneReport& r) {
  Key key{.database = std::string(r.database),
          .user = std::string(r.user),
          .fingerprint = r.fingerprint,
          .source_fingerprint = r.source_fingerprint.value_or(0),
          .has_source = r.source_fingerprint.has_value(),
          .source_column = std::string(r.source_column)};
  std::lock_guard lock(mu_);
  ++total_detections_;
  auto it = patterns_.find(key);
  if (it == patterns_.end()) {
    if (patterns_.size() >= max_patterns_) {
      auto oldest = std::min_element(patterns_.begin(), patterns_.end(), [](const auto& a, const auto& b) {
        return a.second.pattern.last_seen_unix_micros < b.second.pattern.last_seen_unix_micros;
      });
      patterns_.erase(oldest);
      ++evicted_;
    }
    Entry e;
    NPlusOnePattern& p = e.pattern;
    p.database = key.database;
    p.user = key.user;
    p.fingerprint = r.fingerprint;
    p.normalized = std::string(r.normalized);
    p.source_fingerprint = r.source_fingerprint;
    p.source_normalized = std::string(r.source_normalized);
    p.source_column = key.source_column;
    p.first_seen_unix_micros = r.now_unix_micros;
    it = patterns_.emplace(std::move(key), std::move(e)).first;
  }
  Entry& e = it->second;
  NPlusOnePattern& p = e.pattern;
  ++p.detections;
  p.last_seen_unix_micros = std::max(p.last_seen_unix_micros, r.now_unix_micros);
  if (r.executions > p.max_executions || p.suggestion.empty()) {
    p.max_executions = std::max(p.max_executions, r.executions);
    p.suggestion = n_plus_one_suggestion(p.max_executions, p.source_column);
  }
  // A clock stepped back logs again rather than staying quiet for the step's length.
  const bool log = !e.last_logged_unix_micros || r.now_unix_micros < *e.last_logged_unix_micros ||
                   uint64_t(r.now_unix_micros - *e.last_logged_unix_micros) >= log_interval_micros_;
  if (log) e.last_logged_unix_micros = r.now_unix_micros;
  return log;
}

std::vector<NPlusOnePattern> NPlusOneRegistry::snapshot() const {
  std::vector<NPlusOnePattern> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(patterns_.size());
    for (const auto& [key, e] : patterns_) out.push_back(e.pattern);
  }
  std::sort(out.begin(), out.end(), [](const NPlusOnePattern& a, const NPlusOnePattern& b) {
    if (a.detections != b.detections) return a.detections > b.detections;
    if (a.last_seen_unix_micros != b.last_seen_unix_micros) return a.last_seen_unix_micros > b.last_seen_unix_micros;
    return a.fingerprint < b.fingerprint;
  });
  return out;
}

void NPlusOneRegistry::reset() {
  std::lock_guard lock(mu_);
  patterns_.clear();
  total_detections_ = 0;
  evicted_ = 0;
}

uint64_t NPlusOneRegistry::total_detections() const {
  std::lock_guard lock(mu_);
  return total_detections_;
}

uint64_t NPlusOneRegistry::evicted() const {
  std::lock_guard lock(mu_);
  return evicted_;
}

size_t NPlusOneRegistry::size() const {
  std::lock_guard lock(mu_);
  return patterns_.size();
}

}  // namespace pgrelay::analyzer
