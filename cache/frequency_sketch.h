// How often each key was asked for lately: W-TinyLFU's admission filter.
//
// A count-min sketch of 4-bit counters, as in Caffeine's FrequencySketch: each 64-bit word holds
// 16 counters; a key touches 4 counters, one per hash function, all in the group of 4 its hash
// picks inside each of 4 words, and its estimate is the smallest of them (collisions only ever
// overestimate). Counters saturate at 15. After 10 increments per word, every counter is halved:
// frequencies age, so a key that was popular an hour ago does not keep its place forever.
//
// Memory: 8 bytes per expected entry (rounded up to a power of two words). Not thread-safe: a
// MemoryShard owns one and uses it under its lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pgrelay::cache {

class FrequencySketch {
 public:
  static constexpr unsigned kMaxCount = 15;

  explicit FrequencySketch(size_t expected_entries);

  // Grows the table when `entries` outgrew it; growing forgets every count (it cannot rehash).
  void ensure_capacity(size_t entries);

  // key_hash: the key's 64-bit hash (mixed again here: weak hashes are fine).
  void increment(uint64_t key_hash);
  [[nodiscard]] unsigned frequency(uint64_t key_hash) const;

  [[nodiscard]] size_t words() const { return table_.size(); }
  [[nodiscard]] uint64_t halvings() const { return halvings_; }

 private:
  void resize(size_t entries);
  void halve();
  [[nodiscard]] size_t index_of(uint64_t spread, unsigned depth) const;

  std::vector<uint64_t> table_;
  size_t sample_size_ = 0;   // increments between halvings
  size_t additions_ = 0;     // increments that raised a counter since the last halving
  uint64_t halvings_ = 0;
};

}  // namespace pgrelay::cache
