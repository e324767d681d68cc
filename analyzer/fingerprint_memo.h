// Fingerprints remembered by shape key (shape_key.h).
//
// Texts with one shape key differ only inside numbers and plain strings, and the lexer never
// lets a constant's content change where tokens start or end, so they normalize to one text:
// one fingerprint. A text whose shape was seen costs a lookup (and, when its constants are
// wanted, the shape pass that finds them) instead of the lexer and the normalizer, which is
// what a client sending literal SQL (pgbench -S, psql, drivers that inline their parameters)
// pays for every new text. Differential tests hold it to fingerprint()'s answer.
//
// A shape's constants are the shape pass's blanks when each of the fingerprint's constants
// stands exactly on one (`aid = 42`, `name = 'x'`); otherwise (signed numbers, 1.5, NULL,
// TRUE, $1, IN lists with those) they come from fingerprint() itself. One per thread (the
// caller's choice); bounded: full, it starts again empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "analyzer/fingerprint.h"

namespace pgrelay::analyzer {

class FingerprintMemo {
 public:
  explicit FingerprintMemo(size_t capacity = 4096) : capacity_(capacity == 0 ? 1 : capacity) {}

  // fingerprint(statement, options), made or remembered; `shape` is shape_key(statement,
  // options.lex), which must not have declined. `blanks`, when the caller has them: where that
  // pass found `statement`'s constants (offsets in `statement`), so that it is not made again
  // for them; taken (moved from).
  Fingerprint fingerprint(std::string_view statement, uint64_t shape, const FingerprintOptions& options,
                          std::vector<ConstantSpan>* blanks = nullptr);

  size_t size() const { return entries_.size(); }
  uint64_t hits() const { return hits_; }

 private:
  enum class Blanks : uint8_t { kUnknown, kSame, kOther };   // the constants against the shape's blanks
  struct Entry {
    uint64_t hash = 0;
    std::string normalized;
    bool truncated = false;
    size_t max_length = 0;
    Blanks constants = Blanks::kUnknown;
  };
  // Whether `constants` are exactly `statement`'s blanks, kind for kind (`given`: those blanks,
  // else found here).
  bool on_blanks(const std::vector<ConstantSpan>& constants, const std::vector<ConstantSpan>* given,
                 std::string_view statement, const LexOptions& lex);
  Entry& remember(uint64_t shape, const Fingerprint& f, size_t max_length);

  size_t capacity_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::vector<ConstantSpan> blanks_;   // scratch
  uint64_t hits_ = 0;
};

}  // namespace pgrelay::analyzer
