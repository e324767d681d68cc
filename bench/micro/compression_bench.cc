// Micro-benchmark of the query cache's compression: what packing an answer for the Redis tier and
// unpacking it cost, on the answers pgbench's tables give.
//
// It runs the code a fill and a hit run, no copy of it: encode is cache::pack_response (LZ4 above
// the threshold) then cache::encode_shared_value, as CacheObserver::on_end does for a fill with
// the Redis tier; decode is cache::decode_shared_value (checksum, checks, LZ4), as an L2 hit
// does; a memory hit of a compressed answer is cache::unpack_response (MemoryStore::lookup). Each
// is measured at compress_threshold's default (1024; --threshold) and with compression off (the threshold
// above every answer), and every answer is first round-tripped through both tiers' paths: the
// bench exits 1, measuring nothing, when one does not come back byte for byte.
//
// The answers are the backend messages the cache stores (RowDescription, DataRows,
// CommandComplete; simple protocol, text format unless said), byte for byte what PostgreSQL 15
// sends for pgbench -i's tables (pgbench_accounts' OID 16391 in a fresh cluster, as
// bench/redis_tier.sh makes it): the workloads' own cached reads (hot-reads' and select-only's
// one abalance; heavy-read's GROUP BY bid at bench/run's scale 10), redis_tier.sh's compression
// reads (`*` and `aid, bid, abalance` over 1 to 1,000 accounts from aid 50,000 + 1,000 i), one
// int column, and random bytea (text: hex; binary format). 20 answers per kind, used in turn.
//
//   compression_bench [--threshold=N] [--dump=FILE] [Google Benchmark flags]
//
// Repeats each benchmark 5 times (unless --benchmark_repetitions says otherwise), prints the
// medians of CPU time, then a markdown table per answer. --threshold measures another
// compress_threshold than the default 1024. --dump writes the first answer of each kind to FILE
// (each as a 4-byte big-endian length and the bytes) to compare with a server's.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cache/entry.h"
#include "cache/shared_value.h"
#include "protocol/messages.h"

namespace {

using namespace pgrelay;
using protocol::as_bytes;
using protocol::Buffer;

constexpr size_t kDefaultThreshold = 1024;   // [cache] compress_threshold's default
constexpr size_t kOff = std::numeric_limits<size_t>::max();
constexpr size_t kAnswersPerKind = 20;
constexpr int32_t kAccountsOid = 16391;   // pgbench_accounts, fresh cluster: createdb, pgbench -i
constexpr int32_t kBlobsOid = 16407;      // a table created after them: (id int, data bytea)
constexpr int32_t kInt4 = 23, kInt8 = 20, kBpchar = 1042, kNumeric = 1700, kBytea = 17;

protocol::FieldDescription column(std::string_view name, int32_t table, int16_t attnum, int32_t type, int16_t size,
                                  int32_t typmod = -1, int16_t format = 0) {
  return {.name = name, .table_oid = table, .column = attnum, .type_oid = type, .type_size = size,
          .type_modifier = typmod, .format = format};
}

// Rows of pgbench_accounts as pgbench -i leaves them: bid from aid, abalance 0, filler 84 blanks.
enum class Shape { kAll, kThree, kAid, kAbalance };

Buffer accounts(Shape shape, size_t rows, size_t first_aid) {
  const auto aid = column("aid", kAccountsOid, 1, kInt4, 4);
  const auto bid = column("bid", kAccountsOid, 2, kInt4, 4);
  const auto abalance = column("abalance", kAccountsOid, 3, kInt4, 4);
  const auto filler = column("filler", kAccountsOid, 4, kBpchar, -1, 84 + 4);
  protocol::RowDescription rd;
  switch (shape) {
    case Shape::kAll: rd.fields = {aid, bid, abalance, filler}; break;
    case Shape::kThree: rd.fields = {aid, bid, abalance}; break;
    case Shape::kAid: rd.fields = {aid}; break;
    case Shape::kAbalance: rd.fields = {abalance}; break;
  }
  Buffer out;
  protocol::encode(rd, out);
  const std::string blanks(84, ' '), zero = "0";
  for (size_t a = first_aid; a < first_aid + rows; ++a) {
    const std::string aid_text = std::to_string(a), bid_text = std::to_string((a - 1) / 100'000 + 1);
    protocol::DataRow row;
    if (shape != Shape::kAbalance) row.values.emplace_back(as_bytes(aid_text));
    if (shape == Shape::kAll || shape == Shape::kThree) row.values.emplace_back(as_bytes(bid_text));
    if (shape != Shape::kAid) row.values.emplace_back(as_bytes(zero));
    if (shape == Shape::kAll) row.values.emplace_back(as_bytes(blanks));
    protocol::encode(row, out);
  }
  const std::string tag = "SELECT " + std::to_string(rows);
  protocol::encode(protocol::CommandComplete{tag}, out);
  return out;
}

// heavy-read.sql: SELECT bid, count(*), sum(abalance), avg(abalance)::numeric(12,2) ... GROUP BY bid.
Buffer heavy_read(size_t branches) {
  protocol::RowDescription rd;
  rd.fields = {column("bid", kAccountsOid, 2, kInt4, 4), column("count", 0, 0, kInt8, 8),
               column("sum", 0, 0, kInt8, 8), column("avg", 0, 0, kNumeric, -1, (12 << 16 | 2) + 4)};
  Buffer out;
  protocol::encode(rd, out);
  const std::string count = "100000", sum = "0", avg = "0.00";
  for (size_t b = 1; b <= branches; ++b) {
    const std::string bid = std::to_string(b);
    protocol::encode(protocol::DataRow{{as_bytes(bid), as_bytes(count), as_bytes(sum), as_bytes(avg)}}, out);
  }
  const std::string tag = "SELECT " + std::to_string(branches);
  protocol::encode(protocol::CommandComplete{tag}, out);
  return out;
}

// SELECT data FROM blobs: `rows` random values of `width` bytes, in text (hex) or binary format.
Buffer random_bytea(size_t rows, size_t width, bool binary, std::mt19937_64& rng) {
  protocol::RowDescription rd;
  rd.fields = {column("data", kBlobsOid, 2, kBytea, -1, -1, binary ? 1 : 0)};
  Buffer out;
  protocol::encode(rd, out);
  std::string value;
  for (size_t r = 0; r < rows; ++r) {
    std::string raw(width, '\0');
    for (char& c : raw) c = char(rng());
    if (binary) {
      value = raw;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      value = "\\x";
      for (char c : raw) {
        value += kHex[uint8_t(c) >> 4];
        value += kHex[uint8_t(c) & 15];
      }
    }
    protocol::encode(protocol::DataRow{{as_bytes(value)}}, out);
  }
  const std::string tag = "SELECT " + std::to_string(rows);
  protocol::encode(protocol::CommandComplete{tag}, out);
  return out;
}

// One kind of answer, in kAnswersPerKind variants, with what the cache keeps for each.
struct Kind {
  std::string name;     // the benchmark's name
  std::string label;    // the table's
  size_t threshold = 0; // compress_threshold
  std::vector<Buffer> answers;
  std::vector<cache::SharedValueMeta> metas;
  std::vector<cache::StoredResponse> packed;          // at `threshold`
  std::vector<std::vector<std::byte>> values;         // the Redis values, at `threshold`
  std::vector<std::vector<std::byte>> values_off;     // with compression off
};

template <class Make>
Kind make_kind(std::string name, std::string label, size_t threshold, Make make) {
  Kind k;
  k.name = std::move(name);
  k.label = std::move(label);
  k.threshold = threshold;
  for (size_t i = 0; i < kAnswersPerKind; ++i) {
    k.answers.push_back(make(i));
    cache::SharedValueMeta meta;
    const std::string key = k.name + "#" + std::to_string(i);
    meta.key = cache::key_digest(as_bytes(key));
    meta.fingerprint = 0x5eed0000 + i;
    meta.filled_at_unix_ms = 1'764'806'400'000ULL;
    meta.ttl_ms = 60'000;
    meta.reads = {.database = cache::DatabaseId{1}, .epoch = 1,
                  .tables = {{.table = cache::TableId{kAccountsOid}, .generation = 3}}};
    k.metas.push_back(meta);
    k.packed.push_back(cache::pack_response(k.answers.back(), threshold));
    k.values.push_back(cache::encode_shared_value(meta, k.packed.back()));
    k.values_off.push_back(cache::encode_shared_value(meta, cache::pack_response(k.answers.back(), kOff)));
  }
  return k;
}

std::vector<Kind> make_kinds(size_t threshold) {
  std::vector<Kind> kinds;
  auto from = [](size_t i) { return 50'000 + 1'000 * i; };
  kinds.push_back(make_kind("abalance_1", "hot-reads, select-only: `abalance`, 1 row", threshold,
                            [&](size_t i) { return accounts(Shape::kAbalance, 1, from(i)); }));
  kinds.push_back(make_kind("heavy_read_10", "heavy-read: GROUP BY bid, 10 rows (scale 10)", threshold,
                            [](size_t) { return heavy_read(10); }));
  for (size_t rows : {1, 10, 100, 1000}) {
    kinds.push_back(make_kind("all_" + std::to_string(rows), "`*`, " + std::to_string(rows) + " rows", threshold,
                              [&](size_t i) { return accounts(Shape::kAll, rows, from(i)); }));
  }
  for (size_t rows : {1, 10, 100, 1000}) {
    kinds.push_back(make_kind("three_" + std::to_string(rows), "`aid, bid, abalance`, " + std::to_string(rows) + " rows", threshold,
                              [&](size_t i) { return accounts(Shape::kThree, rows, from(i)); }));
  }
  for (size_t rows : {100, 1000}) {
    kinds.push_back(make_kind("aid_" + std::to_string(rows), "`aid` (one int), " + std::to_string(rows) + " rows", threshold,
                              [&](size_t i) { return accounts(Shape::kAid, rows, from(i)); }));
  }
  std::mt19937_64 rng(16);
  kinds.push_back(make_kind("bytea_hex_100", "random bytea, 100 x 256 B, text (hex)", threshold,
                            [&](size_t) { return random_bytea(100, 256, false, rng); }));
  kinds.push_back(make_kind("bytea_binary_100", "random bytea, 100 x 256 B, binary format", threshold,
                            [&](size_t) { return random_bytea(100, 256, true, rng); }));
  kinds.push_back(make_kind("bytea_binary_1", "random bytea, 1 x 32 KiB, binary format", threshold,
                            [&](size_t) { return random_bytea(1, 32 << 10, true, rng); }));
  return kinds;
}

// Whether every variant was stored compressed (a memory hit unpacks) or none was (it does not).
enum class Packed { kNone, kSome, kAll };
Packed packed(const Kind& k) {
  size_t n = 0;
  for (const cache::StoredResponse& p : k.packed) n += p.compressed ? 1 : 0;
  return n == 0 ? Packed::kNone : n == k.packed.size() ? Packed::kAll : Packed::kSome;
}

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// decode(encode(x)) == x through the Redis value and through the memory tier's unpacking.
bool round_trips(const Kind& k) {
  for (size_t i = 0; i < k.answers.size(); ++i) {
    for (const auto* value : {&k.values[i], &k.values_off[i]}) {
      cache::DecodedSharedValue out;
      const auto status = cache::decode_shared_value(*value, k.metas[i].key, size_t{1} << 30, out);
      if (status != cache::SharedValueStatus::kUsable) {
        std::fprintf(stderr, "%s #%zu: value not usable (%s)\n", k.name.c_str(), i, cache::to_string(status));
        return false;
      }
      if (!same(out.raw, k.answers[i]) || out.meta.fingerprint != k.metas[i].fingerprint ||
          out.meta.reads.tables.size() != 1 || out.meta.reads.tables[0].generation != 3) {
        std::fprintf(stderr, "%s #%zu: the decoded value differs from what was encoded\n", k.name.c_str(), i);
        return false;
      }
    }
    std::vector<std::byte> unpacked;
    if (!cache::unpack_response(k.packed[i], unpacked) || !same(unpacked, k.answers[i])) {
      std::fprintf(stderr, "%s #%zu: unpack_response does not give the answer back\n", k.name.c_str(), i);
      return false;
    }
  }
  return true;
}

// A fill with the Redis tier: packed once, then the value (CacheObserver::on_end).
void encode(benchmark::State& state, const Kind& k, size_t threshold) {
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const Buffer& raw = k.answers[i];
    const cache::StoredResponse packed = cache::pack_response(raw, threshold);
    std::vector<std::byte> value = cache::encode_shared_value(k.metas[i], packed);
    benchmark::DoNotOptimize(value.data());
    bytes += raw.size();
    i = (i + 1) % k.answers.size();
  }
  state.SetBytesProcessed(int64_t(bytes));
}

// An L2 hit: the value Redis returned, checked and unpacked.
void decode(benchmark::State& state, const Kind& k, const std::vector<std::vector<std::byte>>& values) {
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    cache::DecodedSharedValue out;
    const auto status = cache::decode_shared_value(values[i], k.metas[i].key, size_t{1} << 30, out);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(out.raw.data());
    bytes += k.answers[i].size();
    i = (i + 1) % k.answers.size();
  }
  state.SetBytesProcessed(int64_t(bytes));
}

// A memory hit of a compressed answer (an uncompressed one is served from the entry's own bytes).
void memory_hit(benchmark::State& state, const Kind& k) {
  size_t i = 0, bytes = 0;
  for (auto _ : state) {
    std::vector<std::byte> out;
    const bool ok = cache::unpack_response(k.packed[i], out);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(out.data());
    bytes += k.answers[i].size();
    i = (i + 1) % k.answers.size();
  }
  state.SetBytesProcessed(int64_t(bytes));
}

// Shows only the medians when repeated, and keeps each benchmark's CPU time for the table.
class MedianReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    bool aggregated = false;
    for (const Run& r : runs) aggregated = aggregated || r.run_type == Run::RT_Aggregate;
    std::vector<Run> shown;
    for (const Run& r : runs) {
      if (aggregated && (r.run_type != Run::RT_Aggregate || r.aggregate_name != "median")) continue;
      shown.push_back(r);
      cpu_us[r.run_name.function_name] = r.GetAdjustedCPUTime();   // the benchmarks' unit is µs
    }
    ConsoleReporter::ReportRuns(shown);
  }
  std::map<std::string, double> cpu_us;
};

std::string cell(const std::map<std::string, double>& t, const std::string& name, double bytes = 0) {
  const auto it = t.find(name);
  if (it == t.end()) return "-";
  char s[32];
  if (bytes > 0) {
    std::snprintf(s, sizeof s, "%.0f", bytes / it->second);   // bytes per µs = MB/s
  } else {
    std::snprintf(s, sizeof s, it->second < 10 ? "%.2f" : "%.1f", it->second);
  }
  return s;
}

void print_table(const std::vector<Kind>& kinds, const std::map<std::string, double>& t) {
  std::printf("| answer | uncompressed B | stored B | ratio | encode µs | decode µs | encode MB/s | decode MB/s "
              "| memory hit µs | off: encode µs | off: decode µs |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (const Kind& k : kinds) {
    double raw = 0, stored = 0;
    for (size_t i = 0; i < k.answers.size(); ++i) {
      raw += double(k.answers[i].size());
      stored += double(k.packed[i].bytes.size());
    }
    raw /= double(k.answers.size());
    stored /= double(k.answers.size());
    const std::string& n = k.name;
    std::printf("| %s | %.0f | %.0f | %.2f | %s | %s | %s | %s | %s | %s | %s |\n", k.label.c_str(), raw, stored,
                raw / stored, cell(t, "encode/" + n).c_str(), cell(t, "decode/" + n).c_str(),
                cell(t, "encode/" + n, raw).c_str(), cell(t, "decode/" + n, raw).c_str(),
                packed(k) == Packed::kNone ? "0 (not packed)" : cell(t, "memory_hit/" + n).c_str(),
                cell(t, "encode_off/" + n).c_str(), cell(t, "decode_off/" + n).c_str());
  }
}

void dump(const std::vector<Kind>& kinds, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  for (const Kind& k : kinds) {
    const Buffer& a = k.answers.front();
    const uint32_t n = uint32_t(a.size());
    const char len[4] = {char(n >> 24), char(n >> 16), char(n >> 8), char(n)};
    f.write(len, 4);
    f.write(reinterpret_cast<const char*>(a.data()), std::streamsize(a.size()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string dump_path;
  size_t threshold = kDefaultThreshold;
  bool repetitions = false;
  for (auto it = args.begin() + 1; it != args.end();) {
    const std::string a = *it;
    if (a.rfind("--dump=", 0) == 0) {
      dump_path = a.substr(7);
      it = args.erase(it);
      continue;
    }
    if (a.rfind("--threshold=", 0) == 0) {
      threshold = std::stoul(a.substr(12));
      it = args.erase(it);
      continue;
    }
    repetitions = repetitions || a.rfind("--benchmark_repetitions", 0) == 0;
    ++it;
  }
  std::string default_repetitions = "--benchmark_repetitions=5";
  if (!repetitions) args.push_back(default_repetitions.data());
  int n = int(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;

  static const std::vector<Kind> kinds = make_kinds(threshold);
  for (const Kind& k : kinds) {
    if (!round_trips(k)) return 1;
  }
  if (!dump_path.empty()) dump(kinds, dump_path);
  for (const Kind& k : kinds) {
    const auto add = [](const std::string& name, auto run) {
      benchmark::RegisterBenchmark(name.c_str(), run)->Unit(benchmark::kMicrosecond);
    };
    add("encode/" + k.name, [&k](benchmark::State& s) { encode(s, k, k.threshold); });
    add("decode/" + k.name, [&k](benchmark::State& s) { decode(s, k, k.values); });
    if (packed(k) == Packed::kAll) add("memory_hit/" + k.name, [&k](benchmark::State& s) { memory_hit(s, k); });
    add("encode_off/" + k.name, [&k](benchmark::State& s) { encode(s, k, kOff); });
    add("decode_off/" + k.name, [&k](benchmark::State& s) { decode(s, k, k.values_off); });
  }
  MedianReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::printf("\ncompress_threshold %zu; CPU time, median of the repetitions; off: compression off\n", threshold);
  print_table(kinds, reporter.cpu_us);
  return 0;
}
