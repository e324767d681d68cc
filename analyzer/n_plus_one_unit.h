// NPlusOneUnit: what NPlusOneDetector remembers of one unit of work, in flat arrays that are
// cleared, never freed, between units.
//
// The detector takes a unit from its thread's spares (take_n_plus_one_unit) when a read starts
// one, and gives it back when the unit ends; the next unit of any session on that thread reuses
// its capacity, so a steady stream of units (every transaction block, every run of autocommit
// reads) allocates nothing, and a session between units holds none. A unit that grew past
// kPooledValueSlots is freed instead, so the spares stay small. Bounds are the detector's
// (n_plus_one.h): 256 tracked fingerprints, 256 sources, max_values values.
//
// Pure, one thread: the spares are thread_local, and a unit is given back on the thread that uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pgrelay::analyzer {

class NPlusOneUnit {
 public:
  static constexpr uint32_t kNoSource = UINT32_MAX;
  static constexpr size_t kMaxTracked = 256;          // SELECT fingerprints per unit
  static constexpr size_t kMaxSources = 256;          // (fingerprint, column) pairs per unit
  static constexpr size_t kPooledValueSlots = 1024;   // a unit whose value table grew past this is freed

  // A (parameter, source) pair that supplied the values of every distinct execution so far.
  struct Candidate {
    uint32_t parameter = 0;
    uint32_t source = 0;
    uint64_t first_value = 0;         // hash of the value of the first execution
    bool varied = false;              // a later execution took another value
    uint32_t ordered = 0;             // executions whose row came after the previous one's
    uint32_t last_row = 0;
  };
  struct Tracked {                    // one SELECT fingerprint in this unit
    uint64_t fingerprint = 0;
    std::vector<uint64_t> tuples;     // hashes of distinct parameter tuples, up to threshold
    std::vector<Candidate> candidates;
    bool reported = false;
  };
  struct Source {                     // a (fingerprint, column) whose values are remembered
    uint64_t fingerprint = 0;
    std::string column;
  };
  struct ValueOrigin {
    uint32_t source = 0;              // index of its Source
    uint32_t row = 0;                 // the unit's row sequence number where it was first seen
  };

  // The tracked entry of `fingerprint`, or null.
  [[nodiscard]] Tracked* find_tracked(uint64_t fingerprint);
  // A new, empty entry for `fingerprint`; null when kMaxTracked are tracked.
  [[nodiscard]] Tracked* add_tracked(uint64_t fingerprint);
  [[nodiscard]] size_t tracked_count() const { return tracked_used_; }

  // The index of (fingerprint, column), added if new; kNoSource when kMaxSources are known.
  [[nodiscard]] uint32_t source_for(uint64_t fingerprint, std::string_view column);
  [[nodiscard]] const Source& source(uint32_t index) const { return sources_[index]; }

  // Calls f(const ValueOrigin&) for each origin remembered for value hash `h`, in insertion
  // order; f returns false to stop.
  template <class F>
  void for_each_origin(uint64_t h, F&& f) const {
    if (slots_.empty()) return;
    const size_t mask = slots_.size() - 1;
    for (size_t i = size_t(h) & mask; slots_[i] != 0; i = (i + 1) & mask) {
      const Value& v = values_[slots_[i] - 1];
      if (v.hash == h && !f(v.origin)) return;
    }
  }
  // The origin remembered for value hash `h` from `source`, or null.
  [[nodiscard]] const ValueOrigin* find_origin(uint64_t h, uint32_t source) const;
  void add_value(uint64_t h, ValueOrigin origin);
  [[nodiscard]] size_t value_count() const { return values_.size(); }

  // The current statement's columns: per RowDescription field, its source or kNoSource.
  std::vector<uint32_t> columns;
  uint32_t row_sequence = 0;

  // Empties it, keeping every vector's capacity.
  void clear();
  // Whether a thread keeps it as a spare after clear().
  [[nodiscard]] bool worth_keeping() const { return slots_.size() <= kPooledValueSlots; }

 private:
  struct Value {
    uint64_t hash = 0;
    ValueOrigin origin;
  };
  void grow_slots();

  std::vector<Tracked> tracked_;      // [0, tracked_used_) in use; the rest keep their capacity
  size_t tracked_used_ = 0;
  std::vector<Source> sources_;       // [0, sources_used_) in use
  size_t sources_used_ = 0;
  std::vector<Value> values_;
  std::vector<uint32_t> slots_;       // open addressing by hash: index into values_ + 1, 0 = empty
};

// A cleared unit: one of the thread's spares, or a new one.
std::unique_ptr<NPlusOneUnit> take_n_plus_one_unit();
// Clears `unit` and keeps it as a spare of the thread's, or frees it (too big, or enough spares).
void give_back_n_plus_one_unit(std::unique_ptr<NPlusOneUnit> unit);

}  // namespace pgrelay::analyzer
