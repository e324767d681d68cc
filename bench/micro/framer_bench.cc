// Micro-benchmark of response framing: how fast protocol::Framer walks a stream of DataRow messages.
//
// The uncached path forwards a server's result set by framing it: DataRow messages are skipped
// over (only their headers are read) unless something asked to inspect them, in which case each
// body is handed over contiguously, assembled in a side buffer when it straddles a read. The
// input is a ~16 MiB result set fed in 64 KiB chunks, as a socket read would deliver it; the
// argument is the size of each row's single text column. Reported as bytes/s of wire input.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>

#include "protocol/framer.h"
#include "protocol/messages.h"

namespace {

using pgrelay::protocol::as_bytes;
using pgrelay::protocol::Buffer;
using pgrelay::protocol::Bytes;
using pgrelay::protocol::DataRow;
using pgrelay::protocol::Frame;
using pgrelay::protocol::FrameAction;
using pgrelay::protocol::Framer;

constexpr size_t kStreamBytes = 16u << 20;
constexpr size_t kChunk = 64u << 10;

// A result set of DataRows of two columns: an int4-looking id and a `width`-byte text value,
// followed by CommandComplete and ReadyForQuery.
Buffer make_stream(size_t width) {
  Buffer out;
  out.reserve(kStreamBytes + width + 64);
  std::string text(width, 'x');
  size_t row = 0;
  while (out.size() < kStreamBytes) {
    std::string id = std::to_string(row++);
    DataRow m;
    m.values.emplace_back(as_bytes(id));
    m.values.emplace_back(as_bytes(text));
    pgrelay::protocol::encode(m, out);
  }
  pgrelay::protocol::encode(pgrelay::protocol::CommandComplete{"SELECT 1"}, out);
  pgrelay::protocol::encode(pgrelay::protocol::ReadyForQuery{'I'}, out);
  return out;
}

template <class Setup>
void run(benchmark::State& state, Setup setup) {
  const Buffer stream = make_stream(size_t(state.range(0)));
  const Bytes all(stream);
  size_t frames = 0;
  for (auto _ : state) {
    Framer framer;
    setup(framer);
    size_t seen = 0;
    for (size_t off = 0; off < all.size(); off += kChunk) {
      Bytes chunk = all.subspan(off, std::min(kChunk, all.size() - off));
      auto consumed = framer.feed(chunk, [&](const Frame& f, size_t) {
        // Touch what an inspecting caller would: the body's size and first byte.
        seen += f.body_length + (f.body.empty() ? 0 : size_t(f.body[0]));
        ++frames;
        return FrameAction::kContinue;
      });
      if (!consumed) {
        state.SkipWithError(consumed.error().message.c_str());
        return;
      }
    }
    benchmark::DoNotOptimize(seen);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(all.size()));
  state.counters["rows/s"] = benchmark::Counter(double(frames), benchmark::Counter::kIsRate);
}

// DataRows are not inspected: the Framer reads each 5-byte header and jumps over the body.
void BM_FrameDataRowsSkipped(benchmark::State& state) {
  run(state, [](Framer&) {});
}

// DataRows are inspected: every body is delivered whole; the ones straddling a 64 KiB chunk
// boundary are copied into the Framer's side buffer first.
void BM_FrameDataRowsInspected(benchmark::State& state) {
  run(state, [](Framer& f) { f.inspect(pgrelay::protocol::backend::kDataRow); });
}

// Inspected and decoded into column values, as a cache fill or a row counter would.
void BM_FrameDataRowsDecoded(benchmark::State& state) {
  const Buffer stream = make_stream(size_t(state.range(0)));
  const Bytes all(stream);
  for (auto _ : state) {
    Framer framer;
    framer.inspect(pgrelay::protocol::backend::kDataRow);
    size_t columns = 0;
    for (size_t off = 0; off < all.size(); off += kChunk) {
      Bytes chunk = all.subspan(off, std::min(kChunk, all.size() - off));
      auto consumed = framer.feed(chunk, [&](const Frame& f, size_t) {
        if (f.inspected) {
          auto row = pgrelay::protocol::decode_data_row(f.body);
          if (row) columns += row->values.size();
        }
        return FrameAction::kContinue;
      });
      if (!consumed) {
        state.SkipWithError(consumed.error().message.c_str());
        return;
      }
    }
    benchmark::DoNotOptimize(columns);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(all.size()));
}

}  // namespace

// Row widths: a narrow OLTP row, a typical row, a wide text row, a row wider than one chunk.
BENCHMARK(BM_FrameDataRowsSkipped)->Arg(16)->Arg(128)->Arg(1024)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FrameDataRowsInspected)->Arg(16)->Arg(128)->Arg(1024)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FrameDataRowsDecoded)->Arg(16)->Arg(128)->Arg(1024)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
