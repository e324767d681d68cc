// Fuzz target: a client's byte stream through the session's reader (proxy/request: framing,
// requests, prepared statements and portals, each statement's analysis) and its forwarder.
//
// Input: 1 byte of options (bit 0: server-side statement names as in transaction pooling, bit
// 1: a 4 KiB message limit, bit 2: standard_conforming_strings off, bits 3-4: fingerprints and
// their constants), then what a logged-in client
// sends, read in chunks whose sizes come from the input. Passed on unchanged, the forwarder's
// output must be exactly the input up to where the reader stopped (Terminate, a message no
// client may send, a framing error).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "proxy/request/request_reader.h"

namespace pr = pgrelay::protocol;
namespace px = pgrelay::proxy;
using pgrelay::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::byte* in = reinterpret_cast<const std::byte*>(data + 1);
  const size_t n_in = size - 1;

  px::AnalysisCache analyses(64, (flags & 8) ? 256 : 0, (flags & 16) != 0);
  px::RequestReader::Options options;
  options.server_names = flags & 1;
  if (flags & 2) options.max_message_size = 4096;
  options.lex.standard_conforming_strings = !(flags & 4);
  options.max_names = 16;
  px::RequestReader reader(analyses, options);

  constexpr size_t kMaxRead = 509;
  std::vector<std::byte> buf(kMaxRead + 16);
  std::vector<std::byte> out;
  size_t pos = 0, step = size;
  bool stopped = false;
  while (pos < n_in && !stopped) {
    const size_t n = std::min<size_t>(1 + step % kMaxRead, n_in - pos);
    step = step * 2654435761u + 11;
    reader.forwarder().keep_held(std::span(buf));
    const size_t held = reader.held();
    check(held + n <= buf.size());
    std::memcpy(buf.data() + held, in + pos, n);
    pos += n;
    auto scanned = reader.scan(std::span(buf), n);
    if (!scanned.ok()) {
      check(scanned.error().sqlstate.size() == 5);
      stopped = true;
      break;
    }
    check(reader.messages().size() == reader.forwarder().scanned().size());
    for (const px::Request& r : reader.requests()) check(r.first <= r.end && r.end <= reader.messages().size());
    auto chunk = reader.forwarder().emit(
        [](size_t, const pr::Frame&, pr::Buffer&) { return px::Verdict::kPass; }, [](size_t, size_t) {});
    out.insert(out.end(), chunk.send.begin(), chunk.send.end());
    stopped = chunk.stopped || reader.terminated() || reader.violation().has_value();
  }
  // Everything that went out is the client's bytes, in order, and nothing else.
  check(out.size() <= n_in);
  check(out.empty() || std::memcmp(out.data(), in, out.size()) == 0);
  // Unless it stopped, only the incomplete message at the end is held back.
  if (!stopped) check(out.size() + reader.forwarder().framer().pending_bytes() == n_in);
  return 0;
}
