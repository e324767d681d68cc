// Fuzz target: the Framer over any byte stream, in any chunking, inspecting any set of types.
//
// Input: 1 byte of options, then the stream. The same stream is framed whole and in chunks whose
// sizes come from the stream's own bytes; both must see the same messages, and what the Framer
// consumed must add up.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>

#include "protocol/framer.h"

namespace pr = pgrelay::protocol;

namespace {

struct Seen {
  char type;
  uint32_t length;
  size_t body_size;
  bool inspected;
  bool operator==(const Seen&) const = default;
};

void check(bool ok) {
  if (!ok) std::abort();
}

pr::Framer make(uint8_t options) {
  // A small limit sometimes, so the over-limit path is exercised as often as the others.
  pr::Framer f((options & 1) ? 1024 : pr::kDefaultMaxMessageSize);
  if (options & 2) f.inspect_all();
  for (char t : {'Q', 'P', 'B', 'D', 'E', 'T', 'Z'}) {
    if (options & 4) f.inspect(t);
    if (options & 8) f.peek(t);
  }
  return f;
}

// Frames `in` in chunks; returns what was seen and whether the stream failed.
bool run(uint8_t options, pr::Bytes in, size_t chunk_seed, std::vector<Seen>& seen) {
  pr::Framer f = make(options);
  size_t pos = 0;
  size_t step = chunk_seed;
  while (pos < in.size()) {
    size_t n = chunk_seed == 0 ? in.size() - pos : 1 + step % 61;
    step = step * 31 + 7;
    n = std::min(n, in.size() - pos);
    pr::Bytes chunk = in.subspan(pos, n);
    size_t last_end = 0;
    auto r = f.feed(chunk, [&](const pr::Frame& fr, size_t end) {
      check(end >= last_end && end <= chunk.size());
      last_end = end;
      if (fr.inspected) check(fr.body.size() == fr.body_length);
      seen.push_back({fr.type, fr.body_length, fr.body.size(), fr.inspected});
      return pr::FrameAction::kContinue;
    });
    if (!r.ok()) {
      // A failed Framer stays failed.
      check(!f.feed(chunk, [](const pr::Frame&, size_t) { return pr::FrameAction::kContinue; }).ok());
      return false;
    }
    check(*r == chunk.size());
    pos += n;
  }
  check(f.buffered() <= pr::kDefaultMaxMessageSize);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t options = data[0];
  pr::Bytes in(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  std::vector<Seen> whole, chunked;
  const bool whole_ok = run(options, in, 0, whole);
  const bool chunked_ok = run(options, in, size, chunked);
  check(whole_ok == chunked_ok);
  // Peeked bodies depend on the chunking; everything else must not.
  if (!(options & 8)) check(whole == chunked);
  else check(whole.size() == chunked.size());

  // Stopping at the first message and going on from there sees the same messages.
  if (whole_ok && !whole.empty()) {
    pr::Framer f = make(options);
    size_t pos = 0, count = 0;
    while (pos < in.size()) {
      auto r = f.feed(in.subspan(pos), [&](const pr::Frame&, size_t) {
        ++count;
        return pr::FrameAction::kStop;
      });
      check(r.ok());
      pos += *r;
    }
    check(count == whole.size());
  }
  return 0;
}
