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
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "analyzer/lexer.h"

namespace pgrelay::analyzer {

struct FingerprintOptions {
  LexOptions lex;
  size_t max_length = 1024;   // of the normalized text kept for display
};

struct Fingerprint {
  uint64_t hash = 0;          // XXH3-64 of the whole normalized text
  std::string normalized;     // at most max_length bytes of it
  bool truncated = false;     // normalized was cut
};

// One statement (a Parse's query, or one statement of a simple Query split by split_statements).
Fingerprint fingerprint(std::string_view statement, const FingerprintOptions& options = {});

}  // namespace pgrelay::analyzer
