// N+1 query detection: one query repeated with other values in one unit of work, and where its
// values came from.
//
// A unit of work is a transaction block, or a client's run of autocommit statements with gaps
// under `window_micros`. Within one, a plain SELECT fingerprint executed `threshold` times with
// distinct parameter-value tuples is an N+1 pattern. Value lineage names its cause: the values
// each DataRow of earlier SELECTs returned are remembered by column, so when every one of those
// executions took a parameter value that an earlier statement returned in the same column, that
// statement and column are the loop's source (Django's `for book in books: book.author`).
//
// Units: a change of NPlusOneStatement::in_transaction (either way) or transaction_end() ends
// one; so does a statement starting more than window_micros after the previous one ended when
// neither is in a block. Lineage: the repeated statement's values are compared byte-wise, by
// 64-bit hash, with the non-empty values (up to max_value_bytes) of the first max_rows rows of
// each earlier SELECT of the unit, the repeated fingerprint's own rows excluded. A parameter whose
// value never changed is not a source (LIMIT 21); when several columns supplied every value
// (small ids are in books.id and books.author_id), the one whose rows the values followed in
// order most often wins, then the most recently seen one.
//
// Pure: no I/O, no clock (callers pass times), no logging. NPlusOneDetector belongs to one client
// session and is not thread-safe; NPlusOneRegistry is shared by all sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/n_plus_one_unit.h"

namespace pgrelay::analyzer {

struct NPlusOneOptions {
  uint64_t window_micros = 100'000;   // autocommit statements closer than this are one unit
  size_t threshold = 5;               // distinct executions that make a pattern (at least 2)
  size_t max_rows = 64;               // rows per statement whose values are remembered
  size_t max_value_bytes = 64;        // longer values are not remembered nor looked up
  size_t max_values = 4096;           // (value, column) pairs remembered per unit
};

// One statement as it starts. Views are read during statement_start() only.
struct NPlusOneStatement {
  uint64_t fingerprint = 0;           // Fingerprint::hash
  bool read = false;                  // a plain SELECT: only these are flagged or are sources
  bool in_transaction = false;        // runs inside a transaction block (BEGIN itself: either)
  uint64_t now_micros = 0;            // a monotonic clock
  // The values in the statement: its inlined constants (constant_value()) or its Bind values in
  // text form. A binary Bind value may be given as its raw bytes: values are compared byte-wise,
  // so it matches a DataRow value only when that one is in the same binary form. A NULL is best
  // given as an empty view (empty values are never looked up).
  std::span<const std::string_view> parameters;
};

struct NPlusOneSource {
  uint64_t fingerprint = 0;           // the earlier SELECT whose rows supplied the values
  std::string column;                 // the column (RowDescription name) they came from
  size_t parameter = 0;               // which parameter of the repeated statement took them (from 0)
  size_t matched = 0;                 // executions whose value came from there
};

struct NPlusOneDetection {
  uint64_t fingerprint = 0;
  size_t executions = 0;              // distinct executions in the unit when detected (= threshold)
  std::optional<NPlusOneSource> source = std::nullopt;
};

// Memory per unit, bounded: at most max_values remembered values (16 bytes each and 8 in the
// hash table), 256 (fingerprint, column) sources with their names, 256 tracked SELECT
// fingerprints with up to `threshold` tuple hashes and 32 lineage candidates each. It is an
// NPlusOneUnit (n_plus_one_unit.h), taken from the thread's spares when a read starts a unit and
// given back when the unit ends: a session between units holds none, and a unit's end frees
// nothing unless the unit grew large.
class NPlusOneDetector {
 public:
  explicit NPlusOneDetector(NPlusOneOptions options = {});
  ~NPlusOneDetector();
  NPlusOneDetector(const NPlusOneDetector&) = delete;
  NPlusOneDetector& operator=(const NPlusOneDetector&) = delete;

  // Called in order, on the session's thread: statement_start, then columns and rows of its
  // result (if any), then statement_end; transaction_end whenever a transaction block ends.
  void statement_start(const NPlusOneStatement& s);
  // Whether statement_start(s) would look at s.parameters: false for a fingerprint already
  // reported (or not tracked) in the unit s runs in, so the caller may leave them out.
  [[nodiscard]] bool wants_parameters(const NPlusOneStatement& s) const;
  // The current statement's RowDescription names (for a prepared statement: its Describe's).
  // Rows that arrive without it are not remembered.
  void columns(std::span<const std::string_view> names);
  // One DataRow of the current statement; nullopt is NULL.
  void row(std::span<const std::optional<std::string_view>> values);
  // Whether columns() and row() would remember anything now: the caller may skip decoding them.
  [[nodiscard]] bool wants_columns() const { return current_read_ && unit_ && unit_->value_count() < options_.max_values; }
  [[nodiscard]] bool wants_rows() const {
    return current_read_ && unit_ && !unit_->columns.empty() && current_rows_ < options_.max_rows &&
           unit_->value_count() < options_.max_values;
  }
  // A detection the first time in this unit that the current statement's fingerprint reached
  // `threshold` distinct executions; nullopt otherwise (and for every later execution).
  [[nodiscard]] std::optional<NPlusOneDetection> statement_end(uint64_t now_micros);
  // COMMIT / ROLLBACK (or the server said the block is over): the unit ends here.
  void transaction_end();

  // For tests and metrics: state of the current unit.
  [[nodiscard]] size_t remembered_values() const { return unit_ ? unit_->value_count() : 0; }
  [[nodiscard]] size_t tracked_fingerprints() const { return unit_ ? unit_->tracked_count() : 0; }
  // Whether it holds a unit's memory now (between units it holds none).
  [[nodiscard]] bool holds_unit() const { return unit_ != nullptr; }

 private:
  using Tracked = NPlusOneUnit::Tracked;
  using Candidate = NPlusOneUnit::Candidate;

  void clear_unit();
  // Whether statement s, started now, begins a new unit (see the header comment).
  [[nodiscard]] bool ends_unit(const NPlusOneStatement& s) const;
  void track(const NPlusOneStatement& s);
  void match_lineage(const NPlusOneStatement& s, Tracked& t, std::span<const uint64_t> hashes);
  [[nodiscard]] NPlusOneDetection detection(uint64_t fingerprint, const Tracked& t) const;

  NPlusOneOptions options_;
  // Between statements.
  bool started_ = false;
  bool last_in_transaction_ = false;
  uint64_t last_micros_ = 0;          // the previous statement's end (its start until it ends)
  // The current statement.
  uint64_t current_fingerprint_ = 0;
  bool current_read_ = false;
  size_t current_rows_ = 0;
  std::optional<NPlusOneDetection> pending_;
  // The unit: null until a read starts one, and again after it ends.
  std::unique_ptr<NPlusOneUnit> unit_;
};

// What to do about a pattern. `source_column` empty: no source was found.
[[nodiscard]] std::string n_plus_one_suggestion(uint64_t executions, std::string_view source_column);

// One detection as a session reports it. Views are read during report() only.
struct NPlusOneReport {
  std::string_view database{};
  std::string_view user{};
  uint64_t fingerprint = 0;
  std::string_view normalized{};
  std::optional<uint64_t> source_fingerprint = std::nullopt;   // set when the detection named a source
  std::string_view source_normalized{};
  std::string_view source_column{};
  uint64_t executions = 0;
  int64_t now_unix_micros = 0;
};

// Detections of one (database, user, fingerprint, source fingerprint, source column).
struct NPlusOnePattern {
  std::string database;
  std::string user;
  uint64_t fingerprint = 0;
  std::string normalized;
  std::optional<uint64_t> source_fingerprint = std::nullopt;
  std::string source_normalized;
  std::string source_column;
  uint64_t detections = 0;            // units in which it was detected
  uint64_t max_executions = 0;        // in one unit, as reported
  int64_t first_seen_unix_micros = 0;
  int64_t last_seen_unix_micros = 0;
  std::string suggestion;
};

inline constexpr size_t kDefaultMaxNPlusOnePatterns = 1000;

// The process's N+1 patterns. Thread-safe: one mutex, as detections are rare (a few per unit of
// work at most). When full, a new pattern evicts the least recently seen one (a linear scan:
// rare too) and the eviction is counted.
class NPlusOneRegistry {
 public:
  explicit NPlusOneRegistry(uint64_t log_interval_micros = 60'000'000,
                            size_t max_patterns = kDefaultMaxNPlusOnePatterns);

  // Records a detection. True when the caller should log it: the pattern was not logged within
  // the last log_interval_micros (by now_unix_micros), so each pattern is logged once per interval.
  bool report(const NPlusOneReport& r);
  // Copies of the patterns by detections, descending (ties: the most recently seen first).
  [[nodiscard]] std::vector<NPlusOnePattern> snapshot() const;
  // Forgets every pattern and zeroes the counters.
  void reset();

  [[nodiscard]] uint64_t total_detections() const;   // since the last reset, evicted or not
  [[nodiscard]] uint64_t evicted() const;
  [[nodiscard]] size_t size() const;

 private:
  struct Key {
    std::string database;
    std::string user;
    uint64_t fingerprint = 0;
    uint64_t source_fingerprint = 0;   // 0 with has_source false
    bool has_source = false;
    std::string source_column;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Entry {
    NPlusOnePattern pattern;
    std::optional<int64_t> last_logged_unix_micros;
  };

  const uint64_t log_interval_micros_;
  const size_t max_patterns_;
  mutable std::mutex mu_;
  std::unordered_map<Key, Entry, KeyHash> patterns_;
  uint64_t total_detections_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace pgrelay::analyzer
