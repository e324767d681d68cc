// SASLprep (RFC 4013, the stringprep profile of RFC 3454) for SCRAM passwords, as PostgreSQL
// applies it (src/common/saslprep.c): map (table B.1 to nothing, non-ASCII spaces to U+0020),
// normalize (NFKC, Unicode 3.2), refuse prohibited code points (tables C.1.2 to C.9, and
// unassigned ones, A.1: the "stored strings" rule) and mixed bidirectional text (section 6).
//
// https://www.postgresql.org/docs/15/sasl-authentication.html
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgrelay::protocol {

// The SASLprep'd form of `password`; nullopt when it is not UTF-8, SASLprep refuses it, or
// nothing is left of it.
std::optional<std::string> saslprep(std::string_view password);

// What SCRAM hashes, by PostgreSQL's rule: the SASLprep'd password, or the password's own bytes
// when it is not UTF-8 or SASLprep refuses it (so such passwords still work with PostgreSQL).
std::string saslprep_or_raw(std::string_view password);

}  // namespace pgrelay::protocol
