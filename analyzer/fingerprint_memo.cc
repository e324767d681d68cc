// Fingerprints remembered by shape key (fingerprint_memo.h).
#include "analyzer/fingerprint_memo.h"

#include "analyzer/shape_key.h"

namespace pgrelay::analyzer {

bool FingerprintMemo::on_blanks(const std::vector<ConstantSpan>& constants, const std::vector<ConstantSpan>* given,
                                std::string_view statement, const LexOptions& lex) {
  if (!given) {
    blanks_.clear();
    if (!shape_key(statement, lex, &blanks_)) return false;
  }
  return (given ? *given : blanks_) == constants;
}

FingerprintMemo::Entry& FingerprintMemo::remember(uint64_t shape, const Fingerprint& f, size_t max_length) {
  if (entries_.size() >= capacity_) entries_.clear();
  Entry& e = entries_[shape];
  e.hash = f.hash;
  e.normalized = f.normalized;
  e.truncated = f.truncated;
  e.max_length = max_length;
  e.constants = Blanks::kUnknown;
  return e;
}

Fingerprint FingerprintMemo::fingerprint(std::string_view statement, uint64_t shape, const FingerprintOptions& options,
                                         std::vector<ConstantSpan>* blanks) {
  auto it = entries_.find(shape);
  if (it == entries_.end() || it->second.max_length != options.max_length ||
      (options.collect_constants && it->second.constants == Blanks::kUnknown)) {
    Fingerprint f = analyzer::fingerprint(statement, options);
    Entry& e = remember(shape, f, options.max_length);
    if (options.collect_constants)
      e.constants = on_blanks(f.constants, blanks, statement, options.lex) ? Blanks::kSame : Blanks::kOther;
    return f;
  }
  const Entry& e = it->second;
  // Where its constants stand is the fingerprint's to say: nothing is saved.
  if (options.collect_constants && e.constants == Blanks::kOther) return analyzer::fingerprint(statement, options);
  ++hits_;
  Fingerprint f;
  f.hash = e.hash;
  f.normalized = e.normalized;
  f.truncated = e.truncated;
  if (options.collect_constants) {
    if (blanks) f.constants = std::move(*blanks);
    else (void)shape_key(statement, options.lex, &f.constants);
  }
  return f;
}

}  // namespace pgrelay::analyzer
