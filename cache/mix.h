// A 64-bit integer finalizer for the cache's own tables.
#pragma once

#include <cstdint>

namespace pgrelay::cache {

// SplitMix64's finalizer: callers' ids and hashes may be weak in some bits (OIDs are small
// consecutive integers; tests use 1, 2, 3), and probing, shard choice and the sketch want every
// bit mixed. Cheap: two multiplies.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace pgrelay::cache
