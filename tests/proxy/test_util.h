// Helpers shared by the proxy room tests: messages as byte strings.
#pragma once

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "protocol/bytes.h"
#include "protocol/framer.h"
#include "protocol/messages.h"

namespace pgrelay::proxy::test {

inline std::string str(protocol::Bytes b) { return std::string(protocol::as_string_view(b)); }

// One whole encoded message (type byte and length included).
template <class M>
std::string encoded(const M& m) {
  protocol::Buffer b;
  protocol::encode(m, b);
  return str(b);
}

struct Message {
  char type;
  std::string body;
};

// The messages in `out`, split with the Framer (which must consume all of it, ending between
// messages).
inline std::vector<Message> frames(const protocol::Buffer& out) {
  std::vector<Message> v;
  protocol::Framer f;
  f.inspect_all();
  auto r = f.feed(out, [&](const protocol::Frame& fr, size_t) {
    v.push_back({fr.type, str(fr.body)});
    return protocol::FrameAction::kContinue;
  });
  REQUIRE(r.ok());
  CHECK(*r == out.size());
  CHECK(f.at_boundary());
  return v;
}

}  // namespace pgrelay::proxy::test
