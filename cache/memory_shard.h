// One shard of the memory tier: the index of entries by full key, their eviction order (W-TinyLFU
// or plain LRU) within a byte budget, and the shard's counters.
//
// W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", and
// Caffeine): every entry enters a small LRU admission window (1% of the bytes). The window's LRU
// end moves into the main area's probation segment; when the main area is over its bytes, that
// newcomer and the main area's LRU victim are compared by how often their keys were asked for
// lately (FrequencySketch, fed by every lookup, hit or miss) and the less frequent one is evicted
// (a tie keeps the incumbent). A hit in probation promotes to the protected segment (80% of the
// main area), whose overflow goes back to probation. A one-off scan thus churns the window and
// probation while the keys that are asked for again stay. kLru keeps one list over the whole
// budget, for comparison.
//
// Not thread-safe: MemoryStore holds one mutex per shard and calls in with it held. Nothing here
// compresses or copies response bytes, and the only allocations are a stored entry's list and index
// nodes, so the critical sections stay short.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>

#include "cache/entry.h"
#include "cache/frequency_sketch.h"
#include "cache/generations.h"

namespace pgrelay::cache {

enum class EvictionPolicy : uint8_t { kWTinyLfu, kLru };

enum class InsertOutcome : uint8_t {
  kStored,
  kTooLarge,   // over the per-entry cap
  kRaced,      // a table or the database moved between fill start and insert: maybe stale rows
  kFlushed,    // a flush ran between fill start and insert
  kExpired,    // no time left to live
};

// Counters since construction and gauges now. A shard's own, or MemoryStore's sum of them.
struct MemoryStats {
  // Gauges.
  uint64_t entries = 0;
  uint64_t bytes = 0;              // charged against the budget (entry_charge)
  uint64_t raw_bytes = 0;          // the stored responses uncompressed: bytes vs raw_bytes is the gain
  uint64_t window_bytes = 0;       // W-TinyLFU segments (kLru: all in the window)
  uint64_t probation_bytes = 0;
  uint64_t protected_bytes = 0;
  uint64_t budget_bytes = 0;
  // Lookups.
  uint64_t hits = 0;
  uint64_t misses_absent = 0;
  uint64_t misses_expired = 0;     // found past its TTL: erased (also invalidated_ttl)
  uint64_t misses_stale = 0;       // found with a moved generation or epoch: erased (also invalidated_generation)
  uint64_t misses_corrupt = 0;     // a compressed response did not decode
  // Inserts.
  uint64_t insertions = 0;         // stored
  uint64_t replacements = 0;       // of those, over an entry with the same key (concurrent fills)
  uint64_t rejected_too_large = 0;
  uint64_t rejected_raced = 0;
  uint64_t rejected_flushed = 0;
  uint64_t rejected_expired = 0;
  // Removals.
  uint64_t evictions = 0;          // for room, newcomers that lost admission included
  uint64_t admission_rejections = 0;   // W-TinyLFU: of evictions, window entries the main area refused
  uint64_t invalidated_generation = 0;
  uint64_t invalidated_ttl = 0;
  uint64_t invalidated_flush = 0;

  [[nodiscard]] uint64_t misses() const { return misses_absent + misses_expired + misses_stale + misses_corrupt; }
  void add(const MemoryStats& other);
};

class MemoryShard {
 public:
  // budget_bytes: what this shard's entries may cost in all.
  MemoryShard(size_t budget_bytes, EvictionPolicy policy);
  MemoryShard(const MemoryShard&) = delete;
  MemoryShard& operator=(const MemoryShard&) = delete;

  struct Found {
    std::shared_ptr<const StoredResponse> response;
    TimePoint filled_at{};
    uint64_t fingerprint = 0;
    ReadSet shared;   // Entry::shared
  };

  // The entry whose key is exactly `key` (same hash and same bytes), if it is alive and current
  // under `generations`; an expired or stale one is erased. Counts the key's access either way.
  [[nodiscard]] std::optional<Found> lookup(std::span<const std::byte> key, uint64_t key_hash, TimePoint now,
                                            const Generations& generations);

  // Stores `entry` unless a flush ran since its fill started, its reads are no longer current, or
  // its charge is over largest_entry(); replaces an entry with the same key. Evicts to stay within
  // the budget (which may evict `entry` itself: it is still counted as stored).
  InsertOutcome insert(Entry&& entry, const Generations& generations, bool flushed_since_fill_start);

  // Erases every entry `match` accepts; counted as invalidated_flush. Returns how many.
  size_t flush_if(const std::function<bool(const Entry&)>& match);
  // Calls `visit` with every entry (expired or stale ones too, until a lookup erases them).
  void for_each(const std::function<void(const Entry&)>& visit) const;

  // The largest charge an entry may have: the main area (kLru: the budget), so one entry can
  // never push out everything else.
  [[nodiscard]] size_t largest_entry() const;
  [[nodiscard]] MemoryStats stats() const;

 private:
  enum class Segment : uint8_t { kWindow, kProbation, kProtected };
  struct Node {
    Entry entry;
    Segment segment;
  };
  using List = std::list<Node>;

  // Index keys are views into the entry's own key, which never moves (list nodes are stable).
  struct KeyView {
    uint64_t hash;
    std::span<const std::byte> bytes;
  };
  struct KeyViewHash {
    size_t operator()(const KeyView& k) const { return static_cast<size_t>(k.hash); }
  };
  struct KeyViewEqual {
    bool operator()(const KeyView& a, const KeyView& b) const;
  };

  List& list_of(Segment s);
  uint64_t& bytes_of(Segment s);
  void move_to_front(List::iterator node, Segment to);
  void on_hit(List::iterator node);
  void make_room();
  void admit_into_main(List::iterator candidate);
  void evict(List::iterator node);
  void erase(List::iterator node);
  [[nodiscard]] uint64_t main_bytes() const { return probation_bytes_ + protected_bytes_; }

  const EvictionPolicy policy_;
  const size_t budget_;
  const size_t window_cap_;      // kLru: the whole budget
  const size_t main_cap_;        // kLru: 0
  const size_t protected_cap_;

  std::unordered_map<KeyView, List::iterator, KeyViewHash, KeyViewEqual> index_;
  List window_, probation_, protected_;   // most recently used first
  uint64_t window_bytes_ = 0, probation_bytes_ = 0, protected_bytes_ = 0, raw_bytes_ = 0;
  FrequencySketch sketch_;
  MemoryStats counters_;   // the counters only; stats() adds the gauges
};

}  // namespace pgrelay::cache
