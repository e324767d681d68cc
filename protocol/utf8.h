// UTF-8 as RFC 3629 defines it: decoding one well-formed sequence, and encoding a code point.
// What log lines and JSON escape by, and what SASLprep (saslprep.h) reads passwords with.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgrelay::protocol {

// The length (1 to 4) of the well-formed UTF-8 sequence `s` starts with, its code point in `cp`;
// 0 when `s` is empty or starts with anything else (a stray continuation byte, an overlong form,
// a surrogate, a code point past U+10FFFF, a truncated sequence).
size_t utf8_decode(std::string_view s, char32_t& cp);

// True when all of `s` is well-formed UTF-8.
bool utf8_valid(std::string_view s);

// Appends `cp` (a Unicode scalar value) in UTF-8.
void utf8_append(std::string& out, char32_t cp);

}  // namespace pgrelay::protocol
