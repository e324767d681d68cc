// Table generations and database epochs: a fixed lock-free-read table with overflow stripes.
#include "cache/generations.h"

#include <algorithm>
#include <atomic>
#include <bit>

#include "cache/mix.h"

namespace pgrelay::cache {

// Up to max_keys keys with their own counter, claimed on first bump and never released (so a
// reader never sees a slot change owner); every other key reads the stripe its hash picks.
// A slot's value is written after its key and is never 0 once claimed, so a reader that loads a
// non-zero value (acquire) also sees the key; value 0 marks the end of a probe chain.
class Generations::CounterTable {
 public:
  CounterTable(size_t max_keys, size_t stripes)
      : max_keys_(max_keys),
        // At most half full, so every probe chain ends at an empty slot.
        mask_(std::bit_ceil(std::max<size_t>(2 * max_keys, 1)) - 1),
        stripe_mask_(std::bit_ceil(std::max<size_t>(stripes, 1)) - 1),
        slots_(std::make_unique<Slot[]>(mask_ + 1)),
        stripes_(std::make_unique<std::atomic<uint64_t>[]>(stripe_mask_ + 1)) {}

  uint64_t value(uint64_t key) const {
    const uint64_t h = mix64(key);
    // The stripe is read before the probe: a key absent when the probe ends was absent then too
    // (slots are never released), so the pair is one instant's value. Read after the probe, a
    // reader preempted in between could return a stripe value newer than the key's own, and the
    // key's value would seem to go back on the next read.
    const uint64_t stripe = stripes_[(h >> 32) & stripe_mask_].load(std::memory_order_acquire);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t v = slots_[i].value.load(std::memory_order_acquire);
      if (v == 0) break;
      if (slots_[i].key.load(std::memory_order_relaxed) == key) return v;
    }
    return stripe;
  }

  // With Generations::write_mu_ held; value is a fresh clock value (> 0).
  void set(uint64_t key, uint64_t value) {
    const uint64_t h = mix64(key);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].value.load(std::memory_order_relaxed) == 0) break;
      if (slots_[i].key.load(std::memory_order_relaxed) == key) {
        slots_[i].value.store(value, std::memory_order_release);
        return;
      }
    }
    if (used_.load(std::memory_order_relaxed) < max_keys_) {
      slots_[i].key.store(key, std::memory_order_relaxed);
      slots_[i].value.store(value, std::memory_order_release);
      used_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    stripes_[(h >> 32) & stripe_mask_].store(value, std::memory_order_release);
  }

  size_t tracked() const { return used_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};
    std::atomic<uint64_t> value{0};
  };

  const size_t max_keys_;
  const size_t mask_;
  const size_t stripe_mask_;
  std::unique_ptr<Slot[]> slots_;
  std::unique_ptr<std::atomic<uint64_t>[]> stripes_;   // value-initialized: 0
  std::atomic<size_t> used_{0};
};

Generations::Generations(GenerationsOptions options)
    : tables_(std::make_unique<CounterTable>(options.max_tables, options.overflow_stripes)),
      databases_(std::make_unique<CounterTable>(options.max_databases, options.overflow_stripes)) {}

Generations::~Generations() = default;

uint64_t Generations::current(TableId table) const {
  return tables_->value(static_cast<uint64_t>(table));
}

uint64_t Generations::epoch(DatabaseId database) const {
  return databases_->value(static_cast<uint64_t>(database));
}

ReadSet Generations::capture(DatabaseId database, std::span<const TableId> tables) const {
  ReadSet reads{.database = database, .epoch = epoch(database), .tables = {}};
  reads.tables.reserve(tables.size());
  for (TableId t : tables) reads.tables.push_back({.table = t, .generation = current(t)});
  return reads;
}

bool Generations::unchanged(const ReadSet& reads) const {
  if (epoch(reads.database) != reads.epoch) return false;
  return std::all_of(reads.tables.begin(), reads.tables.end(),
                     [this](const TableGeneration& t) { return current(t.table) == t.generation; });
}

void Generations::bump(TableId table) {
  const std::lock_guard lock(write_mu_);
  tables_->set(static_cast<uint64_t>(table), ++clock_);
}

void Generations::bump_database(DatabaseId database) {
  const std::lock_guard lock(write_mu_);
  databases_->set(static_cast<uint64_t>(database), ++clock_);
}

size_t Generations::tables_tracked() const { return tables_->tracked(); }
size_t Generations::databases_tracked() const { return databases_->tracked(); }

}  // namespace pgrelay::cache
