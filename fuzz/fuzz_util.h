// Helpers shared by the fuzz targets: a check that aborts (libFuzzer reports it as a crash with
// the input), the split of an input into option bits and text, and the round-trip check of the
// protocol decoders.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

// Most targets read their first byte as option bits and the rest as the text under test.
struct FlaggedText {
  uint8_t flags = 0;
  std::string_view text;
};
inline std::optional<FlaggedText> flagged_text(const uint8_t* data, size_t size) {
  if (size < 1) return std::nullopt;
  return FlaggedText{data[0], std::string_view(reinterpret_cast<const char*>(data + 1), size - 1)};
}

// A decoded message encodes back to its type byte, length and exactly the body it came from
// (the protocol has one encoding per message: every length is checked, trailing bytes refused).
template <class Message>
void round_trips(char type, protocol::Bytes body, const Result<Message>& decoded) {
  if (!decoded.ok()) {
    check(decoded.error().sqlstate.size() == 5);
    return;
  }
  protocol::Buffer out;
  encode(*decoded, out);
  check(out.size() == 5 + body.size());
  check(char(out[0]) == type);
  check(protocol::load_u32(&out[1]) == 4 + body.size());
  check(body.empty() || std::memcmp(out.data() + 5, body.data(), body.size()) == 0);
}

}  // namespace pgrelay::fuzz
