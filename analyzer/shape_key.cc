// Statement shape keys (shape_key.h): constants blanked byte by byte, then XXH3-64.
#include "analyzer/shape_key.h"

#include <xxhash.h>

#include <array>
#include <cstring>

#include "analyzer/chars.h"

namespace pgrelay::analyzer {

namespace {

// The bytes the loop stops at: digits and what may open a string, a quoted name, a dollar
// quote or a comment. Everything else is copied in runs.
constexpr std::array<bool, 256> kStops = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[size_t(c)] = true;
  for (char c : std::string_view("'\"$-/")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

}  // namespace

std::optional<uint64_t> shape_key(std::string_view s, const LexOptions& lex, std::vector<ConstantSpan>* blanks) {
  const size_t n = s.size();
  if (n > kMaxShapeText) return std::nullopt;
  // Each constant becomes a NUL and a letter: a query text holds no NUL, so no text without
  // constants can read the same.
  char out[2 * kMaxShapeText + 2];
  size_t o = 0;
  size_t i = 0;
  for (;;) {
    const size_t from = i;
    while (i < n && !kStops[static_cast<unsigned char>(s[i])]) ++i;
    std::memcpy(out + o, s.data() + from, i - from);
    o += i - from;
    if (i == n) break;
    const char c = s[i];
    // The byte before is a name's (letters, digits, _, $, UTF-8): a digit there is part of it.
    const bool after_name = i > 0 && chars::ident_cont(s[i - 1]);
    if (chars::is_digit(c)) {
      if (after_name) {
        out[o++] = c;
        ++i;
        continue;
      }
      // A run of digits that no name character joins on the left starts a number (1, 1.5's
      // parts, 1e5's mantissa). What follows is copied as it is: the key stays finer.
      const size_t start = i;
      while (i < n && chars::is_digit(s[i])) ++i;
      if (blanks) blanks->push_back({.offset = uint32_t(start), .length = uint32_t(i - start), .kind = ConstantKind::kNumber});
      out[o++] = '\0';
      out[o++] = 'n';
      continue;
    }
    switch (c) {
      case '\'': {
        if (after_name) return std::nullopt;   // E'...', B'...', X'...', N'...', 1'x': not plain strings
        size_t j = i + 1;
        for (;; ++j) {
          if (j >= n) return std::nullopt;     // unterminated
          if (s[j] == '\\' && !lex.standard_conforming_strings) return std::nullopt;
          if (s[j] != '\'') continue;
          if (j + 1 < n && s[j + 1] == '\'') {   // '' inside the string
            ++j;
            continue;
          }
          break;
        }
        if (blanks) blanks->push_back({.offset = uint32_t(i), .length = uint32_t(j + 1 - i), .kind = ConstantKind::kString});
        i = j + 1;
        out[o++] = '\0';
        out[o++] = 's';
        continue;
      }
      case '"':
        return std::nullopt;
      case '$':
        // In a name (a$b), or a parameter ($1, copied): else a dollar quote.
        if (!after_name && !(i + 1 < n && chars::is_digit(s[i + 1]))) return std::nullopt;
        break;
      case '-':
        if (i + 1 < n && s[i + 1] == '-') return std::nullopt;
        break;
      case '/':
        if (i + 1 < n && s[i + 1] == '*') return std::nullopt;
        break;
      default:
        break;
    }
    out[o++] = c;
    ++i;
  }
  // Seeded: no shape key is any fingerprint's hash (judge_plain_read keeps both in one map).
  constexpr XXH64_hash_t kShapeSeed = 0x5ba9e;
  return XXH3_64bits_withSeed(out, o, kShapeSeed);
}

}  // namespace pgrelay::analyzer
