// The count-min sketch with 4-bit counters and periodic halving behind W-TinyLFU admission.
#include "cache/frequency_sketch.h"

#include <algorithm>
#include <array>
#include <bit>

#include "cache/mix.h"

namespace pgrelay::cache {

namespace {

// Caffeine's seeds: one multiplier per hash function.
constexpr std::array<uint64_t, 4> kSeeds = {0xc3a5c85c97cb3127ULL, 0xb492b66fbe98f273ULL,
                                            0x9ae16a3b2f90404fULL, 0xcbf29ce484222325ULL};
constexpr uint64_t kOneInEachCounter = 0x1111111111111111ULL;
constexpr uint64_t kLowThreeBits = 0x7777777777777777ULL;
constexpr size_t kMinWords = 16;
constexpr size_t kMaxWords = size_t{1} << 26;   // 512 MiB of counters: far beyond any budget

}  // namespace

FrequencySketch::FrequencySketch(size_t expected_entries) { resize(expected_entries); }

void FrequencySketch::ensure_capacity(size_t entries) {
  if (entries > table_.size() && table_.size() < kMaxWords) resize(entries);
}

void FrequencySketch::resize(size_t entries) {
  const size_t words = std::clamp(std::bit_ceil(std::max<size_t>(entries, 1)), kMinWords, kMaxWords);
  table_.assign(words, 0);
  sample_size_ = 10 * words;
  additions_ = 0;
}

size_t FrequencySketch::index_of(uint64_t h, unsigned depth) const {
  uint64_t x = (h + kSeeds[depth]) * kSeeds[depth];
  x += x >> 32;
  return static_cast<size_t>(x) & (table_.size() - 1);
}

void FrequencySketch::increment(uint64_t key_hash) {
  const uint64_t h = mix64(key_hash);
  const unsigned start = static_cast<unsigned>(h & 3) << 2;   // which group of 4 counters per word
  bool added = false;
  for (unsigned depth = 0; depth < 4; ++depth) {
    uint64_t& word = table_[index_of(h, depth)];
    const unsigned shift = (start + depth) << 2;
    if (((word >> shift) & 0xf) < kMaxCount) {
      word += uint64_t{1} << shift;
      added = true;
    }
  }
  if (added && ++additions_ >= sample_size_) halve();
}

unsigned FrequencySketch::frequency(uint64_t key_hash) const {
  const uint64_t h = mix64(key_hash);
  const unsigned start = static_cast<unsigned>(h & 3) << 2;
  unsigned freq = kMaxCount;
  for (unsigned depth = 0; depth < 4; ++depth) {
    const unsigned shift = (start + depth) << 2;
    freq = std::min(freq, static_cast<unsigned>((table_[index_of(h, depth)] >> shift) & 0xf));
  }
  return freq;
}

void FrequencySketch::halve() {
  size_t odd = 0;   // counters that lose their low bit: the sum drops by half of it more
  for (uint64_t& word : table_) {
    odd += static_cast<size_t>(std::popcount(word & kOneInEachCounter));
    word = (word >> 1) & kLowThreeBits;
  }
  additions_ = (additions_ - std::min(additions_, odd / 4)) / 2;
  ++halvings_;
}

}  // namespace pgrelay::cache
