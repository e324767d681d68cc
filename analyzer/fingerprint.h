// Statement fingerprints: the same query with other constants is the same fingerprint.
//
// normalize() reads one statement with the PostgreSQL-rules lexer and writes it back with:
//   - every constant as `?`: numbers (a unary minus folded in, as PostgreSQL's parser folds it),
//     strings in every form ('', E'', U&'', $$ $$), bit strings, TRUE/FALSE, NULL where it is a
//     value (not in IS [NOT] NULL), and parameters ($1): a literal query and the same query
//     prepared get one fingerprint; a typed literal keeps its type (`date ?`, `?::int`);
//   - a list of constants after IN, in ARRAY[...], and the rows of a VALUES list of constants
//     collapsed to `(...)` / `[...]`: `IN (1, 2)` and `IN (3, 4, 5)` are one fingerprint, `= 1` another;
//   - comments and whitespace dropped, tokens separated by single spaces (none inside `a.b`,
//     `x::int`, `f(`, before `,` and `)`), the trailing `;` dropped;
//   - unquoted identifiers and keywords in lower case (PostgreSQL folds them too); quoted
//     identifiers exactly as written.
// The fingerprint is XXH3-64 of the whole normalized text; the text kept for display is cut at
// `max_length` bytes. Pure: no I/O, no locks.
//
// With collect_constants the normalizer also lists where each constant it replaced stands in the
// statement (the N+1 detector matches them against values earlier statements returned);
// constant_value() reads one back as PostgreSQL would print it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "analyzer/lexer.h"

namespace pgrelay::analyzer {

struct FingerprintOptions {
  LexOptions lex;
  size_t max_length = 1024;         // of the normalized text kept for display
  bool collect_constants = false;   // fill Fingerprint::constants (off: the hot path pays nothing)
};

enum class ConstantKind : uint8_t {
  kNumber,      // 42, -1.5, 1e-3 (a unary sign folded in, as the normalizer folds it)
  kString,      // '...', E'...', N'...', U&'...', $$...$$; also the text of a typed literal (date '...')
  kBitString,   // B'101', X'1F'
  kBoolean,     // TRUE, FALSE
  kNull,        // NULL as a value (not IS [NOT] NULL)
  kParameter,   // $1
};

// Where one constant stands in the statement text given to fingerprint(): its token (for a
// signed number, from the sign through the number).
struct ConstantSpan {
  uint32_t offset = 0;
  uint32_t length = 0;
  ConstantKind kind = ConstantKind::kNumber;
  bool operator==(const ConstantSpan&) const = default;
};

struct Fingerprint {
  uint64_t hash = 0;          // XXH3-64 of the whole normalized text
  std::string normalized;     // at most max_length bytes of it
  bool truncated = false;     // normalized was cut
  // With collect_constants: every constant replaced by `?`, in text order, those inside a
  // collapsed IN/ARRAY/VALUES list included. The values of SET written as names (SET search_path
  // TO public) are not listed: they are not constants of any kind above.
  std::vector<ConstantSpan> constants;
};

// One statement (a Parse's query, or one statement of a simple Query split by split_statements).
// Statements over 4 GB are not expected; constants beyond that offset are not listed.
Fingerprint fingerprint(std::string_view statement, const FingerprintOptions& options = {});

// A fingerprint as it is shown (SHOW QUERIES, the slow log, metrics labels): 16 hex digits.
std::string fingerprint_hex(uint64_t hash);

// The value of constant `c` of `statement` (the same text fingerprint() was given) as
// PostgreSQL's text output shows it, so it can be compared with DataRow values:
//   - numbers as written, a minus kept and a plus dropped ("-1", "2.50", "1e3": not reformatted);
//   - strings without quotes or prefix, '' undoubled, E'...' backslash escapes decoded (\n, \t,
//     \\, \', octal, \x; \u and \U are left as written), dollar-quoted bodies as they are,
//     U&'...' with escapes left as written; `lex` must be the options the statement was lexed with
//     (standard_conforming_strings off decodes backslashes in '...' too);
//   - bit strings as bits: B'101' is "101", X'1F' is "00011111";
//   - booleans as "t" / "f"; NULL as "" (PostgreSQL sends no value: check the kind to tell it
//     from ''); parameters as written ("$1": the caller maps them to Bind values).
// A span outside `statement` gives "".
std::string constant_value(std::string_view statement, const ConstantSpan& c, const LexOptions& lex = {});

}  // namespace pgrelay::analyzer
