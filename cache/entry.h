// What a cached answer is: its full key, the backend messages to replay (maybe LZ4-compressed),
// the versions it was read under, its times, and what it costs in memory.
//
// Plain values. An Entry lives in one MemoryShard and is read only under that shard's lock; its
// StoredResponse is immutable and shared, so a hit keeps reading it after the lock is released
// (and after the entry itself is evicted).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache/generations.h"

namespace pgrelay::cache {

using TimePoint = std::chrono::steady_clock::time_point;

// A response as stored. Never modified once built.
struct StoredResponse {
  std::vector<std::byte> bytes;   // one LZ4 block when compressed, else the messages themselves
  size_t raw_size = 0;            // the messages' size, compressed or not
  bool compressed = false;
};

// Compresses `raw` with LZ4 when it is larger than `compress_threshold` bytes and compression
// shrinks it; otherwise keeps a copy as is. Responses over LZ4's limit (~2 GiB) stay uncompressed.
[[nodiscard]] StoredResponse pack_response(std::span<const std::byte> raw, size_t compress_threshold);

// Replaces `out` with the response's messages. False when a compressed block does not decode to
// exactly raw_size bytes (memory corruption: pack_response never makes one).
[[nodiscard]] bool unpack_response(const StoredResponse& stored, std::vector<std::byte>& out);

struct Entry {
  std::vector<std::byte> key;     // the full key material: a lookup compares all of it
  uint64_t key_hash = 0;          // the caller's hash of `key`: picks the shard and the bucket only
  std::shared_ptr<const StoredResponse> response;
  ReadSet reads;                  // database epoch and table generations when the fill started
  // With the Redis tier: the shared versions then (shared_keys.h), which a hit checks against
  // Redis before it is served. Empty (no tables, epoch 0) without it.
  ReadSet shared;
  uint64_t fingerprint = 0;       // the statement's, for flushing one query's answers
  TimePoint filled_at{};          // when it was stored
  TimePoint expires_at{};         // fill start + TTL: an answer is never older than its TTL
  size_t charge = 0;              // entry_charge(), fixed when built

  [[nodiscard]] bool read_table(TableId table) const;
};

// Bytes an entry holds besides its key, stored response and table list, so that a budget of many
// small entries is still honest: the Entry in its list node (two links), its index node (view,
// iterator, cached hash, link: ~6 words), the StoredResponse with its shared_ptr control block,
// malloc's header on each of its 5 allocations, and its 8-byte share of the frequency sketch.
inline constexpr size_t kEntryBookkeepingBytes = sizeof(Entry) + 2 * sizeof(void*) + 6 * sizeof(void*) +
                                                 sizeof(StoredResponse) + 2 * sizeof(void*) + 5 * 16 + 8;

// What an entry costs against the byte budget.
[[nodiscard]] size_t entry_charge(size_t key_bytes, size_t stored_bytes, size_t tables);

}  // namespace pgrelay::cache
