// Helpers shared by the protocol tests: byte strings written as C++ literals.
#pragma once

#include <string>
#include <string_view>

#include "protocol/bytes.h"

namespace pgrelay::protocol::test {

// Golden bytes are written as string literals with embedded NULs; sizeof-1 keeps them.
template <size_t N>
std::string lit(const char (&s)[N]) { return std::string(s, N - 1); }

inline std::string str(const Buffer& b) { return std::string(as_string_view(b)); }

// The body of one encoded typed message: drops the type byte and the length.
inline std::string body_of(const Buffer& b) { return str(b).substr(5); }

}  // namespace pgrelay::protocol::test
