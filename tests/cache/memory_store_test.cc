// The memory tier: hits by full key, TTL, stale generations, raced fills, flushes, the budget and
// the per-entry cap, compression, eviction policies under a scan, and concurrent use.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cache/memory_store.h"

using namespace pgrelay::cache;
using namespace std::chrono_literals;

namespace {

const TimePoint kT0 = TimePoint{} + 1h;
constexpr DatabaseId kDb{1};
constexpr TableId kUsers{10};
constexpr TableId kOrders{11};

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string as_string(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

uint64_t hash_of(std::string_view s) { return std::hash<std::string_view>{}(s); }

// A store and its generations, with one-call fills.
struct Cache {
  explicit Cache(MemoryStoreOptions options = {.budget_bytes = 1 << 20, .shards = 4}) : store(options) {}

  FillStart start(std::vector<TableId> tables = {kUsers}, TimePoint now = kT0, DatabaseId db = kDb) {
    return store.begin_fill(gens, db, tables, now);
  }
  // Completes a fill begun with start(); the key's hash is hash_of(key) unless given.
  InsertOutcome finish(std::string_view key, std::string_view response, FillStart started, TimePoint now = kT0,
                       std::chrono::seconds ttl = 60s, uint64_t fingerprint = 0,
                       std::optional<uint64_t> hash = std::nullopt) {
    return store.insert({.key = as_bytes(key), .key_hash = hash.value_or(hash_of(key)), .response = as_bytes(response),
                         .packed = nullptr, .fingerprint = fingerprint, .ttl = ttl, .start = std::move(started)},
                        now, gens);
  }
  InsertOutcome fill(std::string_view key, std::string_view response, std::vector<TableId> tables = {kUsers},
                     TimePoint now = kT0, std::chrono::seconds ttl = 60s, uint64_t fingerprint = 0,
                     DatabaseId db = kDb) {
    return finish(key, response, start(std::move(tables), now, db), now, ttl, fingerprint);
  }
  InsertOutcome fill_hashed(std::string_view key, uint64_t hash, std::string_view response) {
    return finish(key, response, start(), kT0, 60s, 0, hash);
  }
  std::optional<std::string> get(std::string_view key, TimePoint now = kT0) { return get_hashed(key, hash_of(key), now); }
  std::optional<std::string> get_hashed(std::string_view key, uint64_t hash, TimePoint now = kT0) {
    const std::optional<Hit> hit = store.lookup(as_bytes(key), hash, now, gens);
    if (!hit) return std::nullopt;
    return as_string(hit->bytes());
  }

  Generations gens;
  MemoryStore store;
};

// Every stored entry leaves by exactly one road, so the gauges follow from the counters.
void check_accounting(const MemoryStats& s) {
  CHECK(s.entries == s.insertions - s.replacements - s.evictions - s.invalidated_generation - s.invalidated_ttl -
                         s.invalidated_flush);
  CHECK(s.bytes <= s.budget_bytes);
  CHECK(s.window_bytes + s.probation_bytes + s.protected_bytes == s.bytes);
}

// Keys of 8 characters, so every entry of the eviction tests costs the same.
std::string key8(const char* prefix, int i) {
  std::string k = prefix + std::to_string(100000 + i);
  k.resize(8, '_');
  return k;
}

// One access as the proxy makes it: a hit, or a fill after the miss.
bool access(Cache& c, const std::string& key, std::string_view value) {
  if (c.get(key)) return true;
  (void)c.fill(key, value);
  return false;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_CASE("memory store: a filled answer is served by its key; an unknown key misses") {
  Cache c;
  CHECK_FALSE(c.get("select 1"));
  CHECK(c.fill("select 1", "T...D...C...Z") == InsertOutcome::kStored);
  CHECK(c.get("select 1") == "T...D...C...Z");
  CHECK_FALSE(c.get("select 2"));
  const MemoryStats s = c.store.stats();
  CHECK(s.hits == 1);
  CHECK(s.misses_absent == 2);
  CHECK(s.insertions == 1);
  CHECK(s.entries == 1);
  CHECK(s.bytes == entry_charge(8, 13, 1));
  check_accounting(s);
}

TEST_CASE("memory store: keys that share a hash never share an answer") {
  Cache c;
  REQUIRE(c.fill_hashed("key a", 7, "answer a") == InsertOutcome::kStored);
  CHECK_FALSE(c.get_hashed("key b", 7));          // same hash, other bytes
  CHECK_FALSE(c.get_hashed("key a ", 7));         // a prefix of a longer key is not the key
  REQUIRE(c.fill_hashed("key b", 7, "answer b") == InsertOutcome::kStored);
  CHECK(c.get_hashed("key a", 7) == "answer a");
  CHECK(c.get_hashed("key b", 7) == "answer b");
  CHECK_FALSE(c.get_hashed("key a", 8));          // same bytes under another hash: not found either
  CHECK(c.store.stats().entries == 2);
}

TEST_CASE("memory store: the TTL runs from the fill's start; expired answers are erased") {
  Cache c;
  REQUIRE(c.finish("k", "v", c.start({kUsers}, kT0), kT0 + 4s, 10s) == InsertOutcome::kStored);
  CHECK(c.get("k", kT0 + 9s) == "v");
  CHECK_FALSE(c.get("k", kT0 + 10s));
  MemoryStats s = c.store.stats();
  CHECK(s.misses_expired == 1);
  CHECK(s.invalidated_ttl == 1);
  CHECK(s.entries == 0);
  CHECK_FALSE(c.get("k", kT0));                   // gone, even for an earlier clock
  CHECK(c.store.stats().misses_absent == 1);

  // A fill that took longer than its TTL, or has none, is not stored.
  CHECK(c.fill("k", "v", {kUsers}, kT0, 0s) == InsertOutcome::kExpired);
  CHECK(c.finish("k", "v", c.start({kUsers}, kT0), kT0 + 5s, 5s) == InsertOutcome::kExpired);
  s = c.store.stats();
  CHECK(s.rejected_expired == 2);
  CHECK(s.entries == 0);
}

TEST_CASE("memory store: a write to a table it read makes an answer stale: miss, erased") {
  Cache c;
  REQUIRE(c.fill("users", "u", {kUsers}) == InsertOutcome::kStored);
  REQUIRE(c.fill("join", "j", {kUsers, kOrders}) == InsertOutcome::kStored);
  REQUIRE(c.fill("orders", "o", {kOrders}) == InsertOutcome::kStored);
  c.gens.bump(TableId{99});                       // read by nobody
  CHECK(c.get("users") == "u");

  c.gens.bump(kUsers);
  CHECK_FALSE(c.get("users"));
  CHECK_FALSE(c.get("join"));
  CHECK(c.get("orders") == "o");
  MemoryStats s = c.store.stats();
  CHECK(s.misses_stale == 2);
  CHECK(s.invalidated_generation == 2);
  CHECK(s.entries == 1);
  CHECK_FALSE(c.get("users"));
  CHECK(c.store.stats().misses_absent == 1);     // erased, not just hidden
  check_accounting(c.store.stats());

  // Refilled after the write, it is served again.
  REQUIRE(c.fill("users", "u2", {kUsers}) == InsertOutcome::kStored);
  CHECK(c.get("users") == "u2");
}

TEST_CASE("memory store: a fill that raced a write is dropped, not stored") {
  Cache c;
  FillStart start = c.start({kUsers, kOrders});
  c.gens.bump(kOrders);                           // while the query ran
  CHECK(c.finish("k", "old rows", std::move(start)) == InsertOutcome::kRaced);
  const MemoryStats s = c.store.stats();
  CHECK(s.rejected_raced == 1);
  CHECK(s.insertions == 0);
  CHECK(s.entries == 0);
  CHECK_FALSE(c.get("k"));
}

TEST_CASE("memory store: a database's epoch invalidates all of its answers and its fills in flight") {
  Cache c;
  const DatabaseId other{2};
  REQUIRE(c.fill("a", "1", {kUsers}, kT0, 60s, 0, kDb) == InsertOutcome::kStored);
  REQUIRE(c.fill("b", "2", {}, kT0, 60s, 0, kDb) == InsertOutcome::kStored);   // read no table
  REQUIRE(c.fill("c", "3", {kUsers}, kT0, 60s, 0, other) == InsertOutcome::kStored);
  FillStart in_flight = c.start({kOrders});

  c.gens.bump_database(kDb);
  CHECK_FALSE(c.get("a"));
  CHECK_FALSE(c.get("b"));
  CHECK(c.get("c") == "3");
  CHECK(c.finish("d", "4", std::move(in_flight)) == InsertOutcome::kRaced);
  CHECK(c.store.stats().misses_stale == 2);
}

TEST_CASE("memory store: flush by table, fingerprint, database and all; a flush drops fills in flight") {
  Cache c;
  const DatabaseId other{2};
  REQUIRE(c.fill("u1", "x", {kUsers}, kT0, 60s, 100) == InsertOutcome::kStored);
  REQUIRE(c.fill("u2", "x", {kUsers, kOrders}, kT0, 60s, 200) == InsertOutcome::kStored);
  REQUIRE(c.fill("o1", "x", {kOrders}, kT0, 60s, 100) == InsertOutcome::kStored);
  REQUIRE(c.fill("o2", "x", {kOrders}, kT0, 60s, 300) == InsertOutcome::kStored);
  REQUIRE(c.fill("z1", "x", {kOrders}, kT0, 60s, 300, other) == InsertOutcome::kStored);

  CHECK(c.store.flush_table(kUsers) == 2);
  CHECK_FALSE(c.get("u1"));
  CHECK_FALSE(c.get("u2"));
  CHECK(c.get("o1"));

  CHECK(c.store.flush_fingerprint(100) == 1);
  CHECK_FALSE(c.get("o1"));
  CHECK(c.get("o2"));

  CHECK(c.store.flush_database(other) == 1);
  CHECK_FALSE(c.get("z1"));
  CHECK(c.get("o2"));

  FillStart in_flight = c.start({kOrders});
  CHECK(c.store.flush_all() == 1);
  CHECK_FALSE(c.get("o2"));
  CHECK(c.finish("late", "x", std::move(in_flight)) == InsertOutcome::kFlushed);
  CHECK(c.fill("after", "x") == InsertOutcome::kStored);   // a fill started after the flush is fine

  const MemoryStats s = c.store.stats();
  CHECK(s.invalidated_flush == 5);
  CHECK(s.rejected_flushed == 1);
  CHECK(s.entries == 1);
  check_accounting(s);
}

TEST_CASE("memory store: entries and bytes by fingerprint, over every shard") {
  Cache c;
  REQUIRE(c.fill("a1", "x", {kUsers}, kT0, 60s, 100) == InsertOutcome::kStored);
  REQUIRE(c.fill("a2", "yy", {kUsers}, kT0, 60s, 100) == InsertOutcome::kStored);
  REQUIRE(c.fill("b1", "z", {kUsers}, kT0, 60s, 200) == InsertOutcome::kStored);
  auto usage = c.store.usage_by_fingerprint();
  REQUIRE(usage.size() == 2);
  CHECK(usage[100].entries == 2);
  CHECK(usage[200].entries == 1);
  CHECK(usage[100].bytes + usage[200].bytes == c.store.stats().bytes);
  CHECK(usage[100].bytes > usage[200].bytes);
  (void)c.store.flush_fingerprint(100);
  usage = c.store.usage_by_fingerprint();
  CHECK_FALSE(usage.contains(100));
  CHECK(usage[200].entries == 1);
}

TEST_CASE("memory store: the byte budget is never exceeded, whatever the policy and entry sizes") {
  for (const EvictionPolicy policy : {EvictionPolicy::kWTinyLfu, EvictionPolicy::kLru}) {
    CAPTURE(static_cast<int>(policy));
    Cache c({.budget_bytes = 64 << 10, .max_entry_bytes = 8 << 10, .compress_threshold = 1 << 20, .shards = 2,
             .policy = policy});
    std::mt19937 rng(1);
    for (int i = 0; i < 3000; ++i) {
      const std::string key = "key " + std::to_string(rng() % 1000);
      const std::string value(rng() % 6000, 'v');
      if (!c.get(key)) (void)c.fill(key, value);
      if (i % 100 == 0) CHECK(c.store.stats().bytes <= 64 << 10);
    }
    const MemoryStats s = c.store.stats();
    CHECK(s.bytes <= s.budget_bytes);
    CHECK(s.budget_bytes <= 64 << 10);
    CHECK(s.evictions > 0);
    CHECK(s.entries > 10);
    CHECK(s.hits > 0);
    check_accounting(s);
  }
}

TEST_CASE("memory store: an entry over the per-entry cap is not stored") {
  Cache c({.budget_bytes = 1 << 20, .max_entry_bytes = 4096, .compress_threshold = 1024, .shards = 1});
  CHECK(c.store.max_entry_charge() == 4096);
  const std::string big = random_bytes(5000, 1);          // incompressible: charged in full
  CHECK(c.fill("big", big) == InsertOutcome::kTooLarge);
  CHECK_FALSE(c.get("big"));
  CHECK(c.fill("huge", std::string(4096 * 300, 'x')) == InsertOutcome::kTooLarge);   // past any LZ4 ratio
  const std::string fits = random_bytes(4096 - entry_charge(4, 0, 1), 2);
  CHECK(c.fill("fits", fits) == InsertOutcome::kStored);
  CHECK(c.get("fits") == fits);
  // The cap is on what the entry costs: a response that compresses under it is stored.
  const std::string compressible(20000, 'a');
  CHECK(c.fill("comp", compressible) == InsertOutcome::kStored);
  CHECK(c.get("comp") == compressible);
  const MemoryStats s = c.store.stats();
  CHECK(s.rejected_too_large == 2);
  CHECK(s.entries == 2);

  // The cap never exceeds a shard's main area, or one entry could push out all the others.
  MemoryStore small({.budget_bytes = 10000, .max_entry_bytes = 1 << 20, .shards = 1});
  CHECK(small.max_entry_charge() < 10000);
}

TEST_CASE("memory store: responses above the threshold are stored LZ4-compressed and come back intact") {
  Cache c({.budget_bytes = 4 << 20, .max_entry_bytes = 1 << 20, .compress_threshold = 1024, .shards = 1});
  std::string rows;
  for (int i = 0; rows.size() < 64 * 1024; ++i) rows += "D row " + std::to_string(i % 50) + " alice@example.com;";
  REQUIRE(c.fill("compressible", rows) == InsertOutcome::kStored);
  MemoryStats s = c.store.stats();
  CHECK(s.raw_bytes == rows.size());
  CHECK(s.bytes < rows.size() / 4);
  CHECK(c.get("compressible") == rows);

  const std::string noise = random_bytes(64 * 1024, 3);   // LZ4 would only grow it
  REQUIRE(c.fill("noise", noise) == InsertOutcome::kStored);
  const MemoryStats before = s;
  s = c.store.stats();
  CHECK(s.bytes - before.bytes == entry_charge(5, noise.size(), 1));   // kept as is
  CHECK(s.raw_bytes - before.raw_bytes == noise.size());
  CHECK(c.get("noise") == noise);

  const std::string small(1000, 'a');                        // compressible but under the threshold
  REQUIRE(c.fill("small", small) == InsertOutcome::kStored);
  CHECK(c.store.stats().bytes - s.bytes == entry_charge(5, small.size(), 1));
  CHECK(c.get("small") == small);

  // The packing itself.
  const StoredResponse packed = pack_response(as_bytes(rows), 1024);
  CHECK(packed.compressed);
  CHECK(packed.raw_size == rows.size());
  std::vector<std::byte> out;
  REQUIRE(unpack_response(packed, out));
  CHECK(as_string(out) == rows);
  StoredResponse broken = packed;
  broken.bytes.resize(broken.bytes.size() / 2);
  CHECK_FALSE(unpack_response(broken, out));
  CHECK_FALSE(pack_response(as_bytes(noise), 1024).compressed);
  // Random bytes as hex text: LZ4 saves under an eighth, so it is stored as it is.
  std::string hex;
  for (char ch : random_bytes(32 * 1024, 5)) {
    static constexpr char kDigits[] = "0123456789abcdef";
    hex += kDigits[(uint8_t(ch) >> 4) & 15];
    hex += kDigits[uint8_t(ch) & 15];
  }
  CHECK_FALSE(pack_response(as_bytes(hex), 1024).compressed);
  const std::string half_repeated = random_bytes(8 * 1024, 6) + std::string(8 * 1024, 'x');   // saves about half
  CHECK(pack_response(as_bytes(half_repeated), 1024).compressed);
}

TEST_CASE("memory store: a hit stays readable after its entry is flushed") {
  Cache c({.budget_bytes = 1 << 20, .compress_threshold = 16, .shards = 1});
  REQUIRE(c.fill("plain", "short") == InsertOutcome::kStored);
  REQUIRE(c.fill("packed", std::string(4000, 'p')) == InsertOutcome::kStored);
  const std::optional<Hit> plain = c.store.lookup(as_bytes("plain"), hash_of("plain"), kT0, c.gens);
  const std::optional<Hit> packed = c.store.lookup(as_bytes("packed"), hash_of("packed"), kT0, c.gens);
  REQUIRE(plain);
  REQUIRE(packed);
  c.store.flush_all();
  CHECK(c.store.stats().entries == 0);
  CHECK(as_string(plain->bytes()) == "short");
  CHECK(as_string(packed->bytes()) == std::string(4000, 'p'));
}

TEST_CASE("memory store: W-TinyLFU keeps a hot set through a scan that plain LRU loses it to") {
  constexpr int kCapacity = 200;   // entries the budget holds
  constexpr int kHot = 50;
  const std::string value(100, 'r');
  const size_t charge = entry_charge(8, value.size(), 1);
  auto hot_hits_after_scan = [&](EvictionPolicy policy) {
    Cache c({.budget_bytes = kCapacity * charge, .max_entry_bytes = 1 << 20, .shards = 1, .policy = policy});
    for (int round = 0; round < 10; ++round) {
      for (int i = 0; i < kHot; ++i) access(c, key8("h", i), value);
    }
    for (int i = 0; i < 20 * kCapacity; ++i) access(c, key8("c", i), value);   // each cold key once
    int hits = 0;
    for (int i = 0; i < kHot; ++i) hits += access(c, key8("h", i), value) ? 1 : 0;
    check_accounting(c.store.stats());
    return hits;
  };
  const int tinylfu = hot_hits_after_scan(EvictionPolicy::kWTinyLfu);
  const int lru = hot_hits_after_scan(EvictionPolicy::kLru);
  CHECK(tinylfu >= kHot * 9 / 10);
  CHECK(lru == 0);
}

TEST_CASE("memory store: W-TinyLFU admits a key asked for often over the main area's victim, not a one-off") {
  constexpr int kCapacity = 200;
  const std::string value(100, 'r');
  const size_t charge = entry_charge(8, value.size(), 1);
  Cache c({.budget_bytes = kCapacity * charge, .max_entry_bytes = 1 << 20, .shards = 1});
  for (int i = 0; i < 2 * kCapacity; ++i) access(c, key8("c", i), value);   // full of keys asked for once
  // Keys asked for (and missed) five times each, e.g. while their first fills were still running.
  for (int i = 0; i < 10; ++i) {
    for (int n = 0; n < 4; ++n) CHECK_FALSE(c.get(key8("f", i)));
  }
  for (int i = 0; i < 10; ++i) {
    access(c, key8("f", i), value);
    access(c, key8("o", i), value);   // a one-off, which must not push out an incumbent as rarely asked for
  }
  for (int i = 0; i < 10; ++i) access(c, key8("p", i), value);   // push the last ones out of the window
  int frequent = 0, one_off = 0;
  for (int i = 0; i < 10; ++i) {
    frequent += c.get(key8("f", i)) ? 1 : 0;
    one_off += c.get(key8("o", i)) ? 1 : 0;
  }
  CHECK(frequent >= 9);
  CHECK(one_off <= 2);
  CHECK(c.store.stats().admission_rejections > 0);
}

TEST_CASE("memory store: threads filling, hitting, writing and flushing never see a stale answer") {
  // Each answer says which key it is for and the generation of its table when its fill started.
  // A hit must be for its key, and that generation must be current at some instant of the lookup.
  Cache c({.budget_bytes = 256 << 10, .max_entry_bytes = 64 << 10, .compress_threshold = 512, .shards = 4});
  constexpr int kKeys = 400;
  constexpr int kTables = 8;
  constexpr int kThreads = 4;
  constexpr int kOps = 5000;
  std::atomic<int> wrong{0};
  std::atomic<uint64_t> lookups{0};
  auto worker = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    for (int op = 0; op < kOps; ++op) {
      const int k = static_cast<int>(rng() % kKeys);
      const TableId table{static_cast<uint64_t>(k % kTables)};
      const std::string key = "key " + std::to_string(k);
      const uint64_t before = c.gens.current(table);
      const std::optional<Hit> hit = c.store.lookup(as_bytes(key), hash_of(key), kT0, c.gens);
      const uint64_t after = c.gens.current(table);
      lookups.fetch_add(1);
      if (hit) {
        const std::string body = as_string(hit->bytes());
        uint64_t generation = 0;
        std::memcpy(&generation, body.data() + key.size(), sizeof generation);
        if (body.compare(0, key.size(), key) != 0 || generation < before || generation > after) wrong.fetch_add(1);
        continue;
      }
      FillStart start = c.start({table});
      std::string body = key;
      body.append(reinterpret_cast<const char*>(&start.reads.tables[0].generation), sizeof(uint64_t));
      body.append(rng() % 2 ? 2000 : 10, 'x');   // compressed or not
      if (op % 3 == 0) std::this_thread::yield(); // widen the window for a racing bump
      (void)c.finish(key, body, std::move(start));
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, static_cast<uint32_t>(t + 1));
  threads.emplace_back([&] {
    std::mt19937 rng(99);
    for (int i = 0; i < 3000; ++i) {
      c.gens.bump(TableId{rng() % kTables});
      if (i % 500 == 0) c.store.flush_table(TableId{rng() % kTables});
      std::this_thread::yield();
    }
  });
  for (std::thread& t : threads) t.join();

  CHECK(wrong.load() == 0);
  const MemoryStats s = c.store.stats();
  CHECK(s.hits + s.misses() == lookups.load());
  CHECK(s.hits > 0);
  CHECK(s.misses_stale > 0);
  check_accounting(s);
}
