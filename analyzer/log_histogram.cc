// Log-scale latency histogram: bucket arithmetic in integers, quantiles, overflow by halving.
#include "analyzer/log_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace pgrelay::analyzer {

namespace {

// ceil(2^(63 + k/4)) for k = 1, 2, 3: a value's bits shifted so its top bit is bit 63 are
// compared with these to find its quarter-octave exactly, without floating point. Derived as
// floor(sqrt(floor(sqrt(2^253)))) + 1, isqrt(2^127) + 1 and floor(sqrt(floor(sqrt(2^255)))) + 1;
// none of 2^(63 + k/4) is an integer, so "m < ceil(t)" is "m < t".
constexpr std::array<uint64_t, 3> kQuarterBounds = {
    0x9837f0518db8a970,   // 2^63.25
    0xb504f333f9de6485,   // 2^63.5
    0xd744fccad69d6af5,   // 2^63.75
};

constexpr size_t kOverflowBucket = LogHistogram::kBuckets - 1;

constexpr std::array<uint64_t, LogHistogram::kBuckets> make_uppers() {
  std::array<uint64_t, LogHistogram::kBuckets> up{};
  up[0] = 0;
  for (size_t e = 0; e < LogHistogram::kOctaves; ++e) {
    const int shift = 63 - static_cast<int>(e);
    for (size_t k = 0; k < LogHistogram::kSubBuckets; ++k) {
      // Largest v with (v << shift) < bound: (bound - 1) >> shift; the last quarter ends at 2^(e+1).
      up[1 + e * LogHistogram::kSubBuckets + k] =
          k + 1 < LogHistogram::kSubBuckets ? (kQuarterBounds[k] - 1) >> shift : (uint64_t{2} << e) - 1;
    }
  }
  up[kOverflowBucket] = std::numeric_limits<uint64_t>::max();
  return up;
}

constexpr std::array<uint64_t, LogHistogram::kBuckets> kUppers = make_uppers();

// ceil(x / 2^s): what halve() applied s times leaves of a bucket.
uint64_t ceil_shift(uint64_t x, int s) { return (x + (uint64_t{1} << s) - 1) >> s; }

}  // namespace

size_t LogHistogram::bucket_of(uint64_t micros) {
  if (micros == 0) return 0;
  if (micros >= kOverflowMicros) return kOverflowBucket;
  const int e = static_cast<int>(std::bit_width(micros)) - 1;
  const uint64_t m = micros << (63 - e);
  const size_t k = (m >= kQuarterBounds[0]) + (m >= kQuarterBounds[1]) + (m >= kQuarterBounds[2]);
  return 1 + static_cast<size_t>(e) * kSubBuckets + k;
}

uint64_t LogHistogram::bucket_upper(size_t bucket) { return kUppers[std::min(bucket, kOverflowBucket)]; }

void LogHistogram::add(uint64_t micros) {
  uint32_t& b = buckets_[bucket_of(micros)];
  if (b == std::numeric_limits<uint32_t>::max()) halve();
  ++b;
  ++count_;
}

void LogHistogram::merge(const LogHistogram& other) {
  // Halve both sides alike until every sum fits, so each keeps its weight relative to the other.
  const auto fits = [&](int s) {
    for (size_t i = 0; i < kBuckets; ++i) {
      if (ceil_shift(buckets_[i], s) + ceil_shift(other.buckets_[i], s) > std::numeric_limits<uint32_t>::max()) {
        return false;
      }
    }
    return true;
  };
  int s = 0;
  while (!fits(s)) ++s;
  count_ = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    buckets_[i] = static_cast<uint32_t>(ceil_shift(buckets_[i], s) + ceil_shift(other.buckets_[i], s));
    count_ += buckets_[i];
  }
}

void LogHistogram::clear() {
  buckets_.fill(0);
  count_ = 0;
}

void LogHistogram::halve() {
  count_ = 0;
  for (uint32_t& b : buckets_) {
    b = b / 2 + (b & 1);
    count_ += b;
  }
}

uint64_t LogHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);   // NaN is not clamped: treated as 0 below
  uint64_t rank = q > 0 ? static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))) : 1;
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return i == kOverflowBucket ? kOverflowMicros : kUppers[i];
  }
  return kOverflowMicros;   // unreachable: count_ is the sum of the buckets
}

}  // namespace pgrelay::analyzer
