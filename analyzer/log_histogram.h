// A fixed-size log-scale histogram of durations in microseconds, for p50/p95/p99 per fingerprint.
//
// Buckets are geometric, 4 per power of two: bucket 0 holds 0, then bucket 1 + 4e + k holds
// [2^(e + k/4), 2^(e + (k+1)/4)) for e in 0..31, k in 0..3, i.e. 1 µs up to 2^32 µs (~71.6 min);
// the last bucket holds everything from 2^32 µs up. Adjacent bounds differ by 2^(1/4), so
// reporting a bucket's largest value overstates any value in it by less than 18.93%.
//
// Counters are uint32_t to keep a histogram at 528 bytes (one per fingerprint per worker;
// uint64_t would double it). When an add() or merge() would overflow a bucket, every bucket is
// halved (rounding up, so a non-empty bucket stays non-empty): quantiles depend only on ratios,
// so they stay within the bucket error; samples before a halving weigh half from then on, which
// takes ~4 billion statements in one bucket of one fingerprint on one worker.
//
// Pure value type: no locks; callers serialize access.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace pgrelay::analyzer {

class LogHistogram {
 public:
  static constexpr size_t kSubBuckets = 4;       // per power of two
  static constexpr size_t kOctaves = 32;         // 1 µs .. 2^32 µs
  static constexpr size_t kBuckets = 1 + kOctaves * kSubBuckets + 1;  // zero, log buckets, overflow
  static constexpr uint64_t kOverflowMicros = uint64_t{1} << kOctaves;

  void add(uint64_t micros);
  void merge(const LogHistogram& other);
  void clear();

  // The largest value of the bucket holding the sample of rank ceil(q * count()) (q clamped to
  // [0, 1]; q = 0 gives the smallest bucket). 0 when empty. For the overflow bucket it returns
  // kOverflowMicros, a lower bound: QueryStats::quantile_micros clamps with the exact maximum.
  [[nodiscard]] uint64_t quantile(double q) const;

  // Samples counted: the number of add()s, until a bucket overflow halves them.
  [[nodiscard]] uint64_t count() const { return count_; }

  // Bucket arithmetic, public for tests and for exporting the buckets.
  [[nodiscard]] static size_t bucket_of(uint64_t micros);
  [[nodiscard]] static uint64_t bucket_upper(size_t bucket);   // largest value in it
  [[nodiscard]] uint32_t bucket_count(size_t bucket) const { return buckets_[bucket]; }

 private:
  void halve();

  std::array<uint32_t, kBuckets> buckets_{};
  uint64_t count_ = 0;   // sum of buckets_
};

}  // namespace pgrelay::analyzer
