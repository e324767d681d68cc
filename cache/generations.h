// The version of every table and every database the cache has seen written: what makes a cached
// answer stale.
//
// A cached answer records the generation of each table it read, and its database's epoch, as
// they were when its fill started (before the query was sent). It may be served only while all of
// them are still current: a write to a table bumps that table's generation; a change outside the
// proxy's sight (DDL, a restore, a lost replication stream) bumps the database's epoch, which
// invalidates everything cached for that database.
//
// A write must be bumped once it is visible to other sessions (at its commit, or at its statement
// outside a transaction): a bump before the commit would let a fill started in between store the
// old rows under the new generation.
//
// Values are compared for equality only. Each bump takes the next value of one clock shared by all
// tables and databases, so a bumped key never shows a value it (or anything else) showed before,
// and a key's value never goes back. A key never bumped reads 0.
//
// Memory is fixed at construction: an open-addressed table holds up to `max_tables` (and
// `max_databases`) bumped keys exactly, so a key never bumped costs nothing. Once that is full, a
// newly bumped key shares one of `overflow_stripes` counters with the other keys hashed there:
// bumping it also invalidates the answers that read those others. That costs hits, never a wrong
// answer.
//
// Thread-safety: current(), epoch() and unchanged() read atomics only (no lock: many reads per
// write, from every worker); bump() and bump_database() take one mutex. All are safe from any
// thread. A reader racing a bump sees the value before or after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace pgrelay::cache {

// Computed by the caller (a hash of database + schema-qualified name, or an OID mixed with the
// database): the cache only compares them. Distinct types so a table is never passed as a database.
enum class TableId : uint64_t {};
enum class DatabaseId : uint64_t {};

// One table an answer read, and its generation when the answer's fill started.
struct TableGeneration {
  TableId table{};
  uint64_t generation = 0;
};

// The versions an answer was read under: captured before its query is sent, checked before it is
// stored and on every hit.
struct ReadSet {
  DatabaseId database{};
  uint64_t epoch = 0;
  std::vector<TableGeneration> tables;
};

struct GenerationsOptions {
  size_t max_tables = 8192;        // tracked exactly; 16 bytes each, allocated up front (x2 for probing)
  size_t max_databases = 1024;
  size_t overflow_stripes = 4096;  // shared counters beyond that (8 bytes each)
};

class Generations {
 public:
  explicit Generations(GenerationsOptions options = {});
  ~Generations();
  Generations(const Generations&) = delete;
  Generations& operator=(const Generations&) = delete;

  [[nodiscard]] uint64_t current(TableId table) const;
  [[nodiscard]] uint64_t epoch(DatabaseId database) const;

  // The versions now, for a fill about to send its query (tables in any order; duplicates are
  // harmless).
  [[nodiscard]] ReadSet capture(DatabaseId database, std::span<const TableId> tables) const;
  // True when the database's epoch and every table's generation are still those of `reads`: an
  // answer read under them may be served.
  [[nodiscard]] bool unchanged(const ReadSet& reads) const;

  void bump(TableId table);
  void bump_database(DatabaseId database);

  // Keys tracked exactly (not in the overflow stripes), for tests and stats.
  [[nodiscard]] size_t tables_tracked() const;
  [[nodiscard]] size_t databases_tracked() const;

 private:
  class CounterTable;   // generations.cc: the fixed open-addressed table plus its stripes

  std::mutex write_mu_;           // serializes bumps: the clock and slot claims
  uint64_t clock_ = 0;            // under write_mu_
  std::unique_ptr<CounterTable> tables_;
  std::unique_ptr<CounterTable> databases_;
};

}  // namespace pgrelay::cache
