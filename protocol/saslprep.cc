// SASLprep (RFC 4013 over RFC 3454) with Unicode 3.2 data from protocol/saslprep_tables.cc.
#include "protocol/saslprep.h"

#include <algorithm>

#include "protocol/saslprep_tables.h"
#include "protocol/utf8.h"

namespace pgrelay::protocol {
namespace {

namespace t = saslprep_tables;

bool in_ranges(const t::CodeRange* r, size_t n, char32_t cp) {
  const auto* end = r + n;
  const auto* it = std::lower_bound(r, end, cp, [](const t::CodeRange& x, char32_t v) { return x.last < v; });
  return it != end && it->first <= cp;
}

bool between(char32_t cp, char32_t first, char32_t last) { return cp >= first && cp <= last; }

// RFC 3454 table B.1: commonly mapped to nothing.
bool maps_to_nothing(char32_t cp) {
  return cp == 0x00AD || cp == 0x034F || cp == 0x1806 || between(cp, 0x180B, 0x180D) || between(cp, 0x200B, 0x200D) ||
         cp == 0x2060 || between(cp, 0xFE00, 0xFE0F) || cp == 0xFEFF;
}

// Table C.1.2: non-ASCII space characters (RFC 4013 maps them to U+0020, then prohibits them).
bool non_ascii_space(char32_t cp) {
  return cp == 0x00A0 || cp == 0x1680 || between(cp, 0x2000, 0x200B) || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// RFC 4013 section 2.3: tables C.1.2, C.2.1, C.2.2, C.3 to C.9, and unassigned code points (A.1).
bool prohibited(char32_t cp) {
  if (non_ascii_space(cp)) return true;                                        // C.1.2
  if (cp < 0x20 || cp == 0x7F) return true;                                    // C.2.1
  if (between(cp, 0x80, 0x9F) || cp == 0x06DD || cp == 0x070F || cp == 0x180E || cp == 0x200C || cp == 0x200D ||
      cp == 0x2028 || cp == 0x2029 || between(cp, 0x2060, 0x2063) || between(cp, 0x206A, 0x206F) || cp == 0xFEFF ||
      between(cp, 0xFFF9, 0xFFFC) || between(cp, 0x1D173, 0x1D17A))
    return true;                                                               // C.2.2
  if (between(cp, 0xE000, 0xF8FF) || between(cp, 0xF0000, 0xFFFFD) || between(cp, 0x100000, 0x10FFFD))
    return true;                                                               // C.3
  if (between(cp, 0xFDD0, 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return true;    // C.4
  if (between(cp, 0xD800, 0xDFFF)) return true;                                // C.5
  if (between(cp, 0xFFF9, 0xFFFD)) return true;                                // C.6
  if (between(cp, 0x2FF0, 0x2FFB)) return true;                                // C.7
  if (cp == 0x0340 || cp == 0x0341 || cp == 0x200E || cp == 0x200F || between(cp, 0x202A, 0x202E) ||
      between(cp, 0x206A, 0x206F))
    return true;                                                               // C.8
  if (cp == 0xE0001 || between(cp, 0xE0020, 0xE007F)) return true;            // C.9
  return in_ranges(t::kUnassigned, t::kUnassigned_size, cp);                   // A.1
}

// Hangul syllables compose and decompose by arithmetic (Unicode 3.2, section 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(char32_t cp, std::u32string& out) {
  if (between(cp, kSBase, kSBase + kSCount - 1)) {
    const char32_t s = cp - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount != 0) out += kTBase + s % kTCount;
    return;
  }
  const auto* end = t::kDecompositions + t::kDecompositions_size;
  const auto* it = std::lower_bound(t::kDecompositions, end, cp, [](const t::Decomposition& d, char32_t v) { return d.cp < v; });
  if (it == end || it->cp != cp) {
    out += cp;
    return;
  }
  out.append(t::kDecompositionData + it->offset, it->length);
}

uint8_t combining_class(char32_t cp) {
  const auto* end = t::kCombiningClasses + t::kCombiningClasses_size;
  const auto* it = std::lower_bound(t::kCombiningClasses, end, cp, [](const t::CombiningClass& c, char32_t v) { return c.last < v; });
  return it != end && it->first <= cp ? it->ccc : 0;
}

// The primary composite of `a` and `b`, or 0.
char32_t compose_pair(char32_t a, char32_t b) {
  if (between(a, kLBase, kLBase + kLCount - 1) && between(b, kVBase, kVBase + kVCount - 1))
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (between(a, kSBase, kSBase + kSCount - 1) && (a - kSBase) % kTCount == 0 && between(b, kTBase + 1, kTBase + kTCount - 1))
    return a + (b - kTBase);
  const auto* end = t::kCompositions + t::kCompositions_size;
  const auto* it = std::lower_bound(t::kCompositions, end, std::pair(a, b), [](const t::Composition& c, std::pair<char32_t, char32_t> v) {
    return c.first < v.first || (c.first == v.first && c.second < v.second);
  });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

// NFKC (UAX #15): full compatibility decomposition, canonical ordering, canonical composition.
std::u32string nfkc(const std::u32string& in) {
  std::u32string d;
  for (char32_t cp : in) decompose(cp, d);
  for (size_t i = 1; i < d.size(); ++i) {   // a stable sort of each run of non-starters
    const uint8_t cc = combining_class(d[i]);
    if (cc == 0) continue;
    for (size_t j = i; j > 0; --j) {
      const uint8_t prev = combining_class(d[j - 1]);
      if (prev == 0 || prev <= cc) break;
      std::swap(d[j - 1], d[j]);
    }
  }
  std::u32string out;
  size_t starter = std::u32string::npos;
  int last_cc = -1;   // the class of the last character kept after the starter; -1: none yet
  for (char32_t cp : d) {
    const int cc = combining_class(cp);
    if (starter != std::u32string::npos && (last_cc == -1 || last_cc < cc)) {   // not blocked
      if (char32_t composite = compose_pair(out[starter], cp)) {
        out[starter] = composite;
        continue;
      }
    }
    if (cc == 0) {
      starter = out.size();
      last_cc = -1;
    } else {
      last_cc = cc;
    }
    out += cp;
  }
  return out;
}

}  // namespace

std::optional<std::string> saslprep(std::string_view password) {
  std::u32string mapped;
  while (!password.empty()) {
    char32_t cp = 0;
    const size_t n = utf8_decode(password, cp);
    if (n == 0) return std::nullopt;
    password.remove_prefix(n);
    if (maps_to_nothing(cp)) continue;
    mapped += non_ascii_space(cp) ? U' ' : cp;
  }
  if (mapped.empty()) return std::nullopt;   // PostgreSQL allows no empty password either
  const std::u32string normalized = nfkc(mapped);
  bool rand_al = false, l = false;
  for (char32_t cp : normalized) {
    if (prohibited(cp)) return std::nullopt;
    rand_al = rand_al || in_ranges(t::kRandALCat, t::kRandALCat_size, cp);
    l = l || in_ranges(t::kLCat, t::kLCat_size, cp);
  }
  // RFC 3454 section 6: right-to-left text has no left-to-right characters, and begins and ends
  // with right-to-left ones.
  if (rand_al && (l || !in_ranges(t::kRandALCat, t::kRandALCat_size, normalized.front()) ||
                  !in_ranges(t::kRandALCat, t::kRandALCat_size, normalized.back())))
    return std::nullopt;
  std::string out;
  for (char32_t cp : normalized) utf8_append(out, cp);
  return out;
}

std::string saslprep_or_raw(std::string_view password) {
  // Pure ASCII needs nothing (PostgreSQL's shortcut: its controls are kept as they are).
  if (std::all_of(password.begin(), password.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return std::string(password);
  auto prepared = saslprep(password);
  return prepared ? std::move(*prepared) : std::string(password);
}

}  // namespace pgrelay::protocol
