// The query-result cache's memory tier (L1): answers by full key, never served once a table they
// read was written, their database invalidated, their TTL passed, or a flush dropped them.
//
// How a caller uses it, per cacheable statement:
//   1. lookup(key, key_hash, now, generations): a Hit is the backend messages to replay.
//   2. On a miss, before sending the query: begin_fill(generations, database, tables, now).
//   3. When the whole answer arrived: insert({key, key_hash, response, fingerprint, ttl, start}).
//      The insert is dropped when a table it read was bumped (or the database's epoch moved, or a
//      flush ran) since step 2: the rows may predate that write.
// A write bumps its tables in Generations (see generations.h for when); nothing here needs to be
// told, since every hit re-checks the generations its entry was read under.
//
// Entries are spread over `shards` shards by key hash, each with its own mutex, byte budget
// (budget_bytes / shards) and eviction order (memory_shard.h). Critical sections hold no
// compression, decompression or copying of response bytes: insert() compresses and builds the
// entry before locking; a hit shares the stored bytes and decompresses after unlocking.
//
// Thread-safety: every method is safe from any thread. Time comes from the caller (`now`); nothing
// here reads a clock, logs or throws on the data path (allocation failure aside).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "cache/entry.h"
#include "cache/generations.h"
#include "cache/memory_shard.h"

namespace pgrelay::cache {

struct MemoryStoreOptions {
  size_t budget_bytes = size_t{256} << 20;   // all entries' charges together, over all shards
  size_t max_entry_bytes = size_t{1} << 20;  // one entry's charge (after compression); at most
                                             // a shard's main area (MemoryShard::largest_entry)
  size_t compress_threshold = 1024;          // responses larger than this are LZ4-compressed
  size_t shards = 16;                        // 0 is taken as 1
  EvictionPolicy policy = EvictionPolicy::kWTinyLfu;
};

// What a fill captured before sending its query.
struct FillStart {
  ReadSet reads;           // database epoch and table generations then
  ReadSet shared;          // the Redis tier's versions then (Entry::shared), when there is one
  TimePoint started{};     // the TTL runs from here: the rows are at most this old
  uint64_t flushes = 0;    // the store's flush count then
};

struct Fill {
  std::span<const std::byte> key;        // full key material; copied
  uint64_t key_hash = 0;                 // the caller's hash of key (XXH3 in the proxy)
  std::span<const std::byte> response;   // backend messages to replay; copied (or compressed)
  // The same messages already packed (pack_response, with this store's compress_threshold):
  // kept as they are instead of `response` (a fill that also goes to Redis compresses once).
  std::shared_ptr<const StoredResponse> packed;
  uint64_t fingerprint = 0;
  std::chrono::steady_clock::duration ttl{};
  FillStart start;
};

struct Hit {
  // The response's messages, never null. Shared with the stored entry when it was kept
  // uncompressed (no copy); the caller may hold it as long as it likes.
  std::shared_ptr<const std::vector<std::byte>> response;
  TimePoint filled_at{};
  uint64_t fingerprint = 0;
  ReadSet shared;   // Entry::shared: with the Redis tier, checked there before the hit is served

  [[nodiscard]] std::span<const std::byte> bytes() const { return *response; }
};

class MemoryStore {
 public:
  explicit MemoryStore(MemoryStoreOptions options = {});
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  [[nodiscard]] FillStart begin_fill(const Generations& generations, DatabaseId database,
                                     std::span<const TableId> tables, TimePoint now) const;

  // A hit only for an entry whose key bytes equal `key` (the hash alone never matches), within
  // its TTL, read under generations that are all still current.
  [[nodiscard]] std::optional<Hit> lookup(std::span<const std::byte> key, uint64_t key_hash, TimePoint now,
                                          const Generations& generations);

  // Stores the answer unless it has no TTL left, its charge is over the per-entry cap, or what it
  // read moved since fill.start (see InsertOutcome). Every outcome is counted in stats().
  InsertOutcome insert(Fill&& fill, TimePoint now, const Generations& generations);

  // Each drops the matching entries now, and makes every fill started before it drop its insert
  // (so a flush after an out-of-band change cannot be undone by a query already in flight).
  // Return how many entries were dropped; counted as invalidated_flush.
  size_t flush_all();
  size_t flush_table(TableId table);            // every entry that read it
  size_t flush_fingerprint(uint64_t fingerprint);
  size_t flush_database(DatabaseId database);

  // Sums the shards, one lock at a time: each shard's part is exact, the whole is not a single
  // instant under concurrent use.
  [[nodiscard]] MemoryStats stats() const;
  // Entries and their charge by fingerprint (SHOW CACHES): walks every entry, one shard lock at
  // a time, so it costs what the number of entries costs; for the console, not the data path.
  struct Usage {
    uint64_t entries = 0;
    uint64_t bytes = 0;
  };
  [[nodiscard]] std::unordered_map<uint64_t, Usage> usage_by_fingerprint() const;
  [[nodiscard]] const MemoryStoreOptions& options() const { return options_; }
  // The largest charge insert() accepts: max_entry_bytes, bounded by a shard's main area.
  [[nodiscard]] size_t max_entry_charge() const { return max_entry_charge_; }
  [[nodiscard]] size_t compress_threshold() const { return options_.compress_threshold; }

 private:
  struct alignas(64) LockedShard {   // own cache lines: workers lock neighbours all the time
    LockedShard(size_t budget, EvictionPolicy policy) : shard(budget, policy) {}
    mutable std::mutex mu;
    MemoryShard shard;
  };

  [[nodiscard]] LockedShard& shard_for(uint64_t key_hash) const;
  size_t flush(const std::function<bool(const Entry&)>& match);

  MemoryStoreOptions options_;
  std::vector<std::unique_ptr<LockedShard>> shards_;
  size_t max_entry_charge_ = 0;
  std::atomic<uint64_t> flushes_{0};
  // Counted outside any shard lock.
  std::atomic<uint64_t> rejected_too_large_{0};
  std::atomic<uint64_t> rejected_expired_{0};
  std::atomic<uint64_t> misses_corrupt_{0};
};

}  // namespace pgrelay::cache
