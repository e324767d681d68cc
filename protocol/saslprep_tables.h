// The Unicode 3.2 data SASLprep needs (generated: scripts/gen-saslprep-tables), sorted by code point.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pgrelay::protocol::saslprep_tables {

struct CodeRange { char32_t first, last; };
// A code point's full compatibility decomposition (NFKD): data[offset, offset + length).
struct Decomposition { char32_t cp; uint32_t offset; uint8_t length; };
struct CombiningClass { char32_t first, last; uint8_t ccc; };
// A primary composite: first + second compose to composite.
struct Composition { char32_t first, second, composite; };

extern const char32_t kDecompositionData[];
extern const Decomposition kDecompositions[];
extern const size_t kDecompositions_size;
extern const CombiningClass kCombiningClasses[];
extern const size_t kCombiningClasses_size;
extern const Composition kCompositions[];   // sorted by (first, second)
extern const size_t kCompositions_size;
extern const CodeRange kUnassigned[];       // RFC 3454 table A.1
extern const size_t kUnassigned_size;
extern const CodeRange kRandALCat[];        // table D.1
extern const size_t kRandALCat_size;
extern const CodeRange kLCat[];             // table D.2
extern const size_t kLCat_size;

}  // namespace pgrelay::protocol::saslprep_tables
