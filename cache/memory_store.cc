// The memory tier: sharding, locking, compression outside the locks, flushes, summed stats.
#include "cache/memory_store.h"

#include <algorithm>

#include "cache/mix.h"

namespace pgrelay::cache {

namespace {

// LZ4 never shrinks a block by more than ~255:1, so a response above this many times the cap
// cannot fit whatever its content: reject it before spending time compressing it.
constexpr size_t kLz4BestRatio = 255;

}  // namespace

MemoryStore::MemoryStore(MemoryStoreOptions options) : options_(options) {
  options_.shards = std::max<size_t>(options_.shards, 1);
  const size_t shard_budget = options_.budget_bytes / options_.shards;
  shards_.reserve(options_.shards);
  for (size_t i = 0; i < options_.shards; ++i) {
    shards_.push_back(std::make_unique<LockedShard>(shard_budget, options_.policy));
  }
  max_entry_charge_ = std::min(options_.max_entry_bytes, shards_.front()->shard.largest_entry());
}

MemoryStore::LockedShard& MemoryStore::shard_for(uint64_t key_hash) const {
  // Multiply-shift over mixed bits: any shard count, and the unmixed hash still drives the buckets.
  const uint64_t h = mix64(key_hash) >> 32;
  return *shards_[static_cast<size_t>((h * shards_.size()) >> 32)];
}

FillStart MemoryStore::begin_fill(const Generations& generations, DatabaseId database,
                                  std::span<const TableId> tables, TimePoint now) const {
  // The flush count is read first: a flush that lands while the generations are read still
  // drops this fill.
  const uint64_t flushes = flushes_.load();
  return FillStart{.reads = generations.capture(database, tables), .shared = {}, .started = now, .flushes = flushes};
}

std::optional<Hit> MemoryStore::lookup(std::span<const std::byte> key, uint64_t key_hash, TimePoint now,
                                       const Generations& generations) {
  LockedShard& s = shard_for(key_hash);
  std::optional<MemoryShard::Found> found;
  {
    const std::lock_guard lock(s.mu);
    found = s.shard.lookup(key, key_hash, now, generations);
  }
  if (!found) return std::nullopt;
  Hit hit{.response = nullptr, .filled_at = found->filled_at, .fingerprint = found->fingerprint, .shared = std::move(found->shared)};
  const std::shared_ptr<const StoredResponse>& stored = found->response;
  if (!stored->compressed) {
    // Aliasing: the hit keeps the StoredResponse alive and points at its bytes.
    hit.response = std::shared_ptr<const std::vector<std::byte>>(stored, &stored->bytes);
    return hit;
  }
  auto out = std::make_shared<std::vector<std::byte>>();
  if (!unpack_response(*stored, *out)) {
    misses_corrupt_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  hit.response = std::move(out);
  return hit;
}

InsertOutcome MemoryStore::insert(Fill&& fill, TimePoint now, const Generations& generations) {
  const TimePoint expires_at = fill.start.started + fill.ttl;
  if (fill.ttl <= std::chrono::steady_clock::duration::zero() || now >= expires_at) {
    rejected_expired_.fetch_add(1, std::memory_order_relaxed);
    return InsertOutcome::kExpired;
  }
  const size_t raw_size = fill.packed ? fill.packed->raw_size : fill.response.size();
  if (raw_size / kLz4BestRatio > max_entry_charge_ || fill.key.size() > max_entry_charge_) {
    rejected_too_large_.fetch_add(1, std::memory_order_relaxed);
    return InsertOutcome::kTooLarge;
  }
  // Everything that allocates or compresses happens here, before the shard is locked.
  std::shared_ptr<const StoredResponse> stored = fill.packed;
  if (!stored) stored = std::make_shared<const StoredResponse>(pack_response(fill.response, options_.compress_threshold));
  const size_t charge = entry_charge(fill.key.size(), stored->bytes.size(), fill.start.reads.tables.size());
  if (charge > max_entry_charge_) {
    rejected_too_large_.fetch_add(1, std::memory_order_relaxed);
    return InsertOutcome::kTooLarge;
  }
  Entry entry{.key = std::vector<std::byte>(fill.key.begin(), fill.key.end()),
              .key_hash = fill.key_hash,
              .response = std::move(stored),
              .reads = std::move(fill.start.reads),
              .shared = std::move(fill.start.shared),
              .fingerprint = fill.fingerprint,
              .filled_at = now,
              .expires_at = expires_at,
              .charge = charge};
  LockedShard& s = shard_for(fill.key_hash);
  const std::lock_guard lock(s.mu);
  // Read under the lock: a flush that already passed this shard has bumped the count first.
  const bool flushed = flushes_.load() != fill.start.flushes;
  return s.shard.insert(std::move(entry), generations, flushed);
}

size_t MemoryStore::flush(const std::function<bool(const Entry&)>& match) {
  flushes_.fetch_add(1);   // before any shard is swept: see insert()
  size_t n = 0;
  for (const auto& s : shards_) {
    const std::lock_guard lock(s->mu);
    n += s->shard.flush_if(match);
  }
  return n;
}

size_t MemoryStore::flush_all() {
  return flush([](const Entry&) { return true; });
}

size_t MemoryStore::flush_table(TableId table) {
  return flush([table](const Entry& e) { return e.read_table(table); });
}

size_t MemoryStore::flush_fingerprint(uint64_t fingerprint) {
  return flush([fingerprint](const Entry& e) { return e.fingerprint == fingerprint; });
}

size_t MemoryStore::flush_database(DatabaseId database) {
  return flush([database](const Entry& e) { return e.reads.database == database; });
}

std::unordered_map<uint64_t, MemoryStore::Usage> MemoryStore::usage_by_fingerprint() const {
  std::unordered_map<uint64_t, Usage> out;
  for (const auto& s : shards_) {
    const std::lock_guard lock(s->mu);
    s->shard.for_each([&out](const Entry& e) {
      Usage& u = out[e.fingerprint];
      ++u.entries;
      u.bytes += e.charge;
    });
  }
  return out;
}

MemoryStats MemoryStore::stats() const {
  MemoryStats total;
  for (const auto& s : shards_) {
    const std::lock_guard lock(s->mu);
    total.add(s->shard.stats());
  }
  total.rejected_too_large += rejected_too_large_.load(std::memory_order_relaxed);
  total.rejected_expired += rejected_expired_.load(std::memory_order_relaxed);
  // A corrupt block was counted as a hit by its shard before it failed to decode.
  const uint64_t corrupt = misses_corrupt_.load(std::memory_order_relaxed);
  total.misses_corrupt += corrupt;
  total.hits -= std::min(total.hits, corrupt);
  return total;
}

}  // namespace pgrelay::cache
