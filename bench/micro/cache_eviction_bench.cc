// The memory tier under a Zipf-distributed trace: hit ratio of W-TinyLFU against plain LRU, and
// lookup and insert throughput.
//
// Trace: 100,000 distinct statements drawn with Zipf exponent s (0.9 and 1.0: web-like skew),
// each answer 256 bytes; the budget holds 5% of them (5,000 entries). Every access looks up and,
// on a miss, fills (begin_fill + insert), as the proxy will. The replay benchmarks run a fixed
// 2 million accesses after a 1 million warm-up, so `hit_ratio` is the same run to run; their
// items_per_second is accesses (lookup + fill on a miss) per second, single-threaded.
// The lookup and insert benchmarks measure one operation each, with 1 and 2 threads.
#include <benchmark/benchmark.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cache/memory_store.h"

namespace {

using namespace pgrelay::cache;

constexpr size_t kDistinctKeys = 100'000;
constexpr size_t kCachedFraction = 20;   // the budget holds 1/20 of the keys
constexpr size_t kResponseBytes = 256;
constexpr size_t kShards = 8;
constexpr int64_t kWarmup = 1'000'000;
constexpr int64_t kMeasured = 2'000'000;
constexpr size_t kTables = 100;
const TimePoint kNow = TimePoint{} + std::chrono::hours(1);

struct Key {
  std::string text;
  uint64_t hash;
};

const std::vector<Key>& keys() {
  static const std::vector<Key> k = [] {
    std::vector<Key> v;
    v.reserve(kDistinctKeys);
    for (size_t i = 0; i < kDistinctKeys; ++i) {
      std::string text = "SELECT * FROM accounts WHERE id = " + std::to_string(i);
      const uint64_t h = XXH3_64bits(text.data(), text.size());
      v.push_back({std::move(text), h});
    }
    return v;
  }();
  return k;
}

// Key indexes drawn from Zipf(s) over kDistinctKeys ranks by inverting the CDF; the ranks are
// shuffled onto keys so popularity does not follow key order (or shard order).
std::vector<uint32_t> zipf_trace(double s, size_t length) {
  std::vector<double> cdf(kDistinctKeys);
  double sum = 0;
  for (size_t r = 0; r < kDistinctKeys; ++r) cdf[r] = sum += 1.0 / std::pow(static_cast<double>(r + 1), s);
  std::vector<uint32_t> rank_to_key(kDistinctKeys);
  for (size_t i = 0; i < kDistinctKeys; ++i) rank_to_key[i] = static_cast<uint32_t>(i);
  std::mt19937_64 rng(42);
  std::shuffle(rank_to_key.begin(), rank_to_key.end(), rng);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<uint32_t> trace(length);
  for (uint32_t& t : trace) {
    const size_t rank = static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    t = rank_to_key[std::min(rank, kDistinctKeys - 1)];
  }
  return trace;
}

const std::vector<uint32_t>& trace_for(double s) {
  static const std::vector<uint32_t> t09 = zipf_trace(0.9, kWarmup + kMeasured);
  static const std::vector<uint32_t> t10 = zipf_trace(1.0, kWarmup + kMeasured);
  return s < 0.95 ? t09 : t10;
}

const std::string& response() {
  static const std::string r(kResponseBytes, 'D');
  return r;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

MemoryStoreOptions options_for(EvictionPolicy policy) {
  const size_t charge = entry_charge(keys()[kDistinctKeys - 1].text.size(), kResponseBytes, 1);
  return {.budget_bytes = kDistinctKeys / kCachedFraction * charge, .shards = kShards, .policy = policy};
}

// One access as the proxy makes it: look up; on a miss, fill.
bool access(MemoryStore& store, const Generations& gens, uint32_t k) {
  const Key& key = keys()[k];
  if (store.lookup(as_bytes(key.text), key.hash, kNow, gens)) return true;
  const TableId table{k % kTables};
  (void)store.insert({.key = as_bytes(key.text), .key_hash = key.hash, .response = as_bytes(response()),
                      .ttl = std::chrono::hours(1),
                      .start = store.begin_fill(gens, DatabaseId{1}, std::span<const TableId>(&table, 1), kNow)},
                     kNow, gens);
  return false;
}

void zipf_replay(benchmark::State& state, EvictionPolicy policy, double s) {
  const std::vector<uint32_t>& trace = trace_for(s);
  Generations gens;
  MemoryStore store(options_for(policy));
  for (int64_t i = 0; i < kWarmup; ++i) access(store, gens, trace[static_cast<size_t>(i)]);
  size_t next = kWarmup;
  int64_t hits = 0;
  for (auto _ : state) {
    hits += access(store, gens, trace[next]) ? 1 : 0;
    if (++next == trace.size()) next = kWarmup;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(state.iterations());
  const MemoryStats st = store.stats();
  state.counters["entries"] = static_cast<double>(st.entries);
  state.counters["budget_used"] = static_cast<double>(st.bytes) / static_cast<double>(st.budget_bytes);
}

BENCHMARK_CAPTURE(zipf_replay, wtinylfu_s0_9, EvictionPolicy::kWTinyLfu, 0.9)->Iterations(kMeasured);
BENCHMARK_CAPTURE(zipf_replay, lru_s0_9, EvictionPolicy::kLru, 0.9)->Iterations(kMeasured);
BENCHMARK_CAPTURE(zipf_replay, wtinylfu_s1_0, EvictionPolicy::kWTinyLfu, 1.0)->Iterations(kMeasured);
BENCHMARK_CAPTURE(zipf_replay, lru_s1_0, EvictionPolicy::kLru, 1.0)->Iterations(kMeasured);

// A store holding the first `n` keys, shared by the threads of a benchmark; built once.
struct Filled {
  Generations gens;
  MemoryStore store{MemoryStoreOptions{.budget_bytes = size_t{1} << 30, .shards = 16}};
  explicit Filled(size_t n) {
    for (size_t k = 0; k < n; ++k) access(store, gens, static_cast<uint32_t>(k));
  }
};

constexpr size_t kFilledKeys = 10'000;

Filled& filled() {
  static Filled f(kFilledKeys);
  return f;
}

void lookup_hit(benchmark::State& state) {
  Filled& f = filled();
  std::mt19937 rng(static_cast<uint32_t>(state.thread_index()));
  int64_t hits = 0;
  for (auto _ : state) {
    const Key& key = keys()[rng() % kFilledKeys];
    hits += f.store.lookup(as_bytes(key.text), key.hash, kNow, f.gens) ? 1 : 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] = benchmark::Counter(static_cast<double>(hits) / static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kAvgThreads);
}
BENCHMARK(lookup_hit)->Threads(1)->Threads(2)->UseRealTime();

void lookup_miss(benchmark::State& state) {
  Filled& f = filled();
  std::mt19937 rng(static_cast<uint32_t>(state.thread_index()));
  for (auto _ : state) {
    const Key& key = keys()[kFilledKeys + rng() % (kDistinctKeys - kFilledKeys)];
    benchmark::DoNotOptimize(f.store.lookup(as_bytes(key.text), key.hash, kNow, f.gens));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(lookup_miss)->Threads(1)->Threads(2)->UseRealTime();

// Inserts into a full store, so each one also evicts; response bytes per state.range(0) (above
// the 1 KiB threshold: compressed, which dominates).
void insert_evicting(benchmark::State& state, EvictionPolicy policy) {
  Generations gens;
  MemoryStore store(options_for(policy));
  std::string body;
  while (body.size() < static_cast<size_t>(state.range(0))) body += "D\x1f row of an ordinary table; ";
  body.resize(static_cast<size_t>(state.range(0)));
  uint32_t k = 0;
  const TableId table{1};
  for (auto _ : state) {
    const Key& key = keys()[k];
    if (++k == kDistinctKeys) k = 0;
    benchmark::DoNotOptimize(store.insert(
        {.key = as_bytes(key.text), .key_hash = key.hash, .response = as_bytes(body), .ttl = std::chrono::hours(1),
         .start = store.begin_fill(gens, DatabaseId{1}, std::span<const TableId>(&table, 1), kNow)},
        kNow, gens));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK_CAPTURE(insert_evicting, wtinylfu, EvictionPolicy::kWTinyLfu)->Arg(256)->Arg(8192);
BENCHMARK_CAPTURE(insert_evicting, lru, EvictionPolicy::kLru)->Arg(256)->Arg(8192);

}  // namespace

BENCHMARK_MAIN();
