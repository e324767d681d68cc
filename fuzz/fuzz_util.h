// Helpers shared by the fuzz targets: a check that aborts (libFuzzer reports it as a crash with
// the input), and the round-trip check of the protocol decoders.
#pragma once

#include <cstdlib>
#include <cstring>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
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
