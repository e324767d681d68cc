// A statement's shape key: one hash for texts that differ only in their numeric and plain
// string constants, made from the bytes in one pass, without the lexer or the normalizer
// (a fingerprint costs several times more). The lanes' and read routing's verdicts are
// remembered by it (ClientSession::judge_plain_read) before a statement is sent, and by the
// fingerprint only when it misses, so that the fingerprint is made after the send.
//
// It is finer than the fingerprint, never coarser: two texts with one shape key differ only
// where a constant stands, so they read and call the same things (`IN (1, 2)` and `IN (1, 2, 3)`
// have two shape keys and one fingerprint; case and spacing count too). It declines (nullopt)
// every text whose constants the bytes alone cannot tell apart from names or syntax: quoted
// identifiers, comments, dollar quotes, prefixed strings (E'', B'', X'', N''), backslashes in
// strings when standard_conforming_strings is off, an unterminated string, and texts over
// kMaxShapeText bytes. Pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "analyzer/fingerprint.h"
#include "analyzer/lexer.h"

namespace pgrelay::analyzer {

inline constexpr size_t kMaxShapeText = 1024;

// With `blanks`, where each constant it blanked stands is appended there, in text order: a run
// of digits as kNumber (1.5 is two), a plain string with its quotes as kString (when it
// declines, what it appended means nothing).
std::optional<uint64_t> shape_key(std::string_view statement, const LexOptions& lex = {},
                                  std::vector<ConstantSpan>* blanks = nullptr);

}  // namespace pgrelay::analyzer
