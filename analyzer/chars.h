// SQL's character classes, as PostgreSQL's lexer (scan.l) reads bytes: one table lookup a byte.
// The lexer, the session-state pre-scan and the small command parsers share them.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace pgrelay::analyzer::chars {

enum : uint8_t { kSpace = 1, kDigit = 2, kAlpha = 4, kIdentStart = 8, kIdentCont = 16, kOpChar = 32 };

inline constexpr std::array<uint8_t, 256> kClasses = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t k = 0;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') k |= kSpace;
    if (c >= '0' && c <= '9') k |= kDigit | kIdentCont;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k |= kAlpha;
    // PostgreSQL treats every byte >= 0x80 as a letter, so UTF-8 identifiers work in any encoding.
    if ((k & kAlpha) || c == '_' || c >= 0x80) k |= kIdentStart | kIdentCont;
    if (c == '$') k |= kIdentCont;
    for (char op : std::string_view("+-*/<>=~!@#%^&|`?"))
      if (c == op) k |= kOpChar;
    t[size_t(c)] = k;
  }
  return t;
}();

inline bool has(char c, uint8_t cls) { return kClasses[static_cast<unsigned char>(c)] & cls; }
// Space, tab, newline, carriage return, form feed, vertical tab.
inline bool is_space(char c) { return has(c, kSpace); }
inline bool is_digit(char c) { return has(c, kDigit); }
inline bool is_alpha(char c) { return has(c, kAlpha); }   // ASCII letters only
inline bool ident_start(char c) { return has(c, kIdentStart); }
inline bool ident_cont(char c) { return has(c, kIdentCont); }
// + - * / < > = ~ ! @ # % ^ & | ` ?: what operators are made of.
inline bool is_op_char(char c) { return has(c, kOpChar); }

}  // namespace pgrelay::analyzer::chars
