// Helpers shared by the proxy room tests: messages as byte strings.
#pragma once

#include <string>

#include "protocol/bytes.h"
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

}  // namespace pgrelay::proxy::test
