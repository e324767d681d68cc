// Statement analysis, memoized per distinct text.
#include "proxy/request/statement_analysis.h"

#include <xxhash.h>

#include <optional>
#include <utility>

#include "analyzer/fingerprint_memo.h"
#include "analyzer/shape_key.h"

namespace pgrelay::proxy {
namespace {

using analyzer::Lexer;
using analyzer::Token;

// The significant words of a transaction-control statement, lower case, at most `max`.
std::vector<std::string> leading_words(std::string_view statement, size_t max) {
  std::vector<std::string> words;
  Lexer lexer(statement);
  for (Token t = lexer.next(); t.kind != analyzer::TokenKind::kEnd && words.size() < max; t = lexer.next())
    words.push_back(analyzer::identifier_value(t));
  return words;
}

// The transaction control `statement` performs, if any.
std::optional<TxControl> tx_control(std::string_view statement) {
  using K = TxControl::Kind;
  const auto w = leading_words(statement, 8);
  if (w.empty()) return std::nullopt;
  auto chain = [&] {
    for (size_t i = 1; i + 1 < w.size(); ++i)
      if (w[i] == "and" && w[i + 1] == "chain") return true;
    return false;
  };
  // The word after an optional WORK or TRANSACTION.
  auto after_noise = [&](size_t i) { return i < w.size() && (w[i] == "work" || w[i] == "transaction") ? i + 1 : i; };
  TxControl c;
  if (w[0] == "begin" || (w[0] == "start" && w.size() > 1 && w[1] == "transaction")) {
    c.kind = K::kBegin;
  } else if (w[0] == "savepoint" && w.size() > 1) {
    c.kind = K::kSavepoint;
    c.savepoint = w[1];
  } else if (w[0] == "release" && w.size() > 1) {
    c.kind = K::kRelease;
    c.savepoint = w.size() > 2 && w[1] == "savepoint" ? w[2] : w[1];
  } else if (w[0] == "prepare") {
    if (w.size() < 2 || w[1] != "transaction") return std::nullopt;
    c.kind = K::kCommit;   // the transaction leaves the session as a prepared one
  } else if (w[0] == "commit" || w[0] == "end" || w[0] == "abort" || w[0] == "rollback") {
    if (w.size() > 1 && w[1] == "prepared") return std::nullopt;   // another transaction's
    const size_t i = after_noise(1);
    if (w[0] == "rollback" && i < w.size() && w[i] == "to") {
      c.kind = K::kRollbackTo;
      const size_t n = i + 1 < w.size() && w[i + 1] == "savepoint" ? i + 2 : i + 1;
      if (n >= w.size()) return std::nullopt;
      c.savepoint = w[n];
    } else {
      c.kind = w[0] == "commit" || w[0] == "end" ? K::kCommit : K::kRollback;
      c.chain = chain();
    }
  } else {
    return std::nullopt;
  }
  return c;
}

// The one statement of a text with no comment and no ';' but a last one, as split_statements
// would give it: without the surrounding whitespace and that ';'. Saves a lexing pass for the
// common single-statement text. (A ';' that only looks last, inside an unterminated string,
// changes what is displayed of a statement the server rejects anyway.)
std::optional<std::string_view> lone_statement(std::string_view text) {
  if (text.find("--") != std::string_view::npos || text.find("/*") != std::string_view::npos) return std::nullopt;
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  auto trim = [&](std::string_view s) -> std::string_view {
    const size_t first = s.find_first_not_of(kSpace);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(kSpace) + 1 - first);
  };
  std::string_view t = trim(text);
  if (!t.empty() && t.back() == ';') t = trim(t.substr(0, t.size() - 1));
  if (t.empty() || t.find(';') != std::string_view::npos) return std::nullopt;
  return t;
}

// Turns `blanks` (offsets in `text`) into offsets in `statement`, a view into `text` that holds
// them all; false (and `blanks` unusable) when it is not or does not.
bool within_statement(std::string_view text, std::string_view statement, std::vector<analyzer::ConstantSpan>& blanks) {
  if (statement.data() < text.data() || statement.data() + statement.size() > text.data() + text.size()) return false;
  const size_t base = size_t(statement.data() - text.data());
  for (analyzer::ConstantSpan& b : blanks) {
    if (b.offset < base || b.offset + b.length > base + statement.size()) return false;
    b.offset -= uint32_t(base);
  }
  return true;
}

// Every statement's fingerprint into a.fingerprints; `statement(i)` gives statement i's text.
template <class StatementText>
void fingerprint_all(const StatementAnalysis& a, StatementText&& statement) {
  a.fingerprints.reserve(a.effects.statement_count());
  // One statement with a shape key: its shape's fingerprint may be known on this thread (a
  // client inlining its constants sends a new text each time).
  const std::optional<uint64_t> shape = a.shape_key();
  for (size_t i = 0; i < a.effects.statement_count(); ++i) {
    // Only a read's constants are ever looked at (N+1 detection flags reads).
    const bool read = a.effects.statement_class(i) == analyzer::StatementClass::kRead;
    const analyzer::FingerprintOptions options{
        .lex = a.lex_options, .max_length = a.fingerprint_length, .collect_constants = a.fingerprint_constants && read};
    if (shape) {
      thread_local analyzer::FingerprintMemo memo;
      auto blanks = std::exchange(a.shape_blanks, std::nullopt);
      if (blanks && !(options.collect_constants && within_statement(a.text, statement(i), *blanks))) blanks.reset();
      a.fingerprints.push_back(memo.fingerprint(statement(i), *shape, options, blanks ? &*blanks : nullptr));
    } else {
      a.fingerprints.push_back(analyzer::fingerprint(statement(i), options));
    }
  }
}

}  // namespace

const analyzer::Fingerprint* StatementAnalysis::fingerprint(size_t i) const {
  if (fingerprint_length == 0) return nullptr;
  fill_fingerprints_once([this] { fingerprint_all(*this, [this](size_t k) { return statement_text(k); }); });
  return i < fingerprints.size() ? &fingerprints[i] : nullptr;
}

std::optional<uint64_t> StatementAnalysis::constant_free_key() const {
  if (statement_count() != 1) return std::nullopt;
  if (const analyzer::Fingerprint* fp = fingerprint(0)) return fp->hash;
  if (text_truncated) return std::nullopt;
  // Made twice at worst (two threads at once), with the same result.
  uint64_t key = made_key.load(std::memory_order_relaxed);
  if (key == 0) {
    key = analyzer::fingerprint(statement_text(0), {.lex = lex_options, .max_length = 0, .collect_constants = false}).hash;
    made_key.store(key, std::memory_order_relaxed);
  }
  return key;
}

uint64_t StatementAnalysis::keep_shape(std::optional<uint64_t> made) const {
  // A hash of 0 or 1 (once in 2^63 texts) counts as declined: the fingerprint's key serves.
  const uint64_t key = made && *made > kNoShape ? *made : kNoShape;
  made_shape.store(key, std::memory_order_relaxed);
  return key;
}

std::optional<uint64_t> StatementAnalysis::shape_key() const {
  uint64_t key = made_shape.load(std::memory_order_relaxed);
  if (key == 0) {
    std::optional<uint64_t> made;
    if (statement_count() == 1 && !text_truncated) made = analyzer::shape_key(text, lex_options);
    key = keep_shape(made);
  }
  if (key == kNoShape) return std::nullopt;
  return key;
}

namespace {

// analyze_statement(), with the session effects of `like` when given (a text of its shape).
AnalysisPtr make_analysis(std::string_view text, const analyzer::LexOptions& options, size_t fingerprint_length,
                    bool constants, const StatementAnalysis* like) {
  auto a = std::make_shared<StatementAnalysis>();
  a->hash = XXH3_64bits(text.data(), text.size());
  if (like) {
    a->effects = like->effects;
    a->prescanned = true;
  } else if (const auto cls = analyzer::effect_free_class(text)) {
    a->effects.add_statement(*cls);
    a->prescanned = true;
  } else {
    a->effects = analyzer::classify_session_effects_slowly(text, options);
  }
  a->text_truncated = text.size() > AnalysisCache::kMaxKeptText;
  a->text.assign(text.substr(0, AnalysisCache::kMaxKeptText));
  // Views into a->text, which never moves again (the analysis lives behind a shared_ptr).
  if (!a->text_truncated && a->effects.statement_count() == 1) {
    if (auto lone = lone_statement(a->text)) a->statements.push_back(*lone);
  }
  if (!a->text_truncated && a->effects.statement_count() > 0 && a->statements.empty())
    a->statements = analyzer::split_statements(a->text, options);
  // A cut text's statements past the cut are not in a->text: read them from the caller's.
  std::vector<std::string_view> whole;
  if (a->text_truncated && a->effects.statement_count() > 0) whole = analyzer::split_statements(text, options);
  bool open = false;
  // Statement i's text, read from the caller's when a->text was cut.
  auto statement = [&](size_t i) { return a->text_truncated ? (i < whole.size() ? whole[i] : text) : a->statement_text(i); };
  a->fingerprint_length = fingerprint_length;
  a->fingerprint_constants = constants;
  a->lex_options = options;
  // A cut text's statements past the cut are gone after this call: fingerprint them now.
  if (fingerprint_length > 0 && a->text_truncated)
    a->fill_fingerprints_once([&] { fingerprint_all(*a, statement); });
  for (size_t i = 0; i < a->effects.statement_count(); ++i) {
    const analyzer::StatementClass cls = a->effects.statement_class(i);
    if (cls == analyzer::StatementClass::kDdl) a->ddl = true;
    if (advances_sequences(cls)) a->advances_sequences = true;
    if (cls == analyzer::StatementClass::kOther) {
      const auto first = leading_words(statement(i), 1);
      if (!first.empty() && (first[0] == "do" || first[0] == "call")) a->runs_code = true;
    }
    if (cls != analyzer::StatementClass::kTransactionControl) continue;
    auto control = tx_control(statement(i));
    if (!control) continue;
    control->statement = uint32_t(i);
    if (control->kind == TxControl::Kind::kBegin) open = true;
    if (control->kind == TxControl::Kind::kCommit || control->kind == TxControl::Kind::kRollback) open = control->chain;
    a->tx_controls.push_back(std::move(*control));
  }
  a->opens_transaction = open;
  for (const auto& e : a->effects.effects()) {
    if (e.kind == analyzer::EffectKind::kSequenceAdvance) a->advances_sequences = true;
    if (e.kind == analyzer::EffectKind::kSequenceRead) a->reads_sequences = true;
  }
  return a;
}

}  // namespace

AnalysisPtr analyze_statement(std::string_view text, const analyzer::LexOptions& options, size_t fingerprint_length,
                              bool constants) {
  return make_analysis(text, options, fingerprint_length, constants, nullptr);
}

AnalysisPtr AnalysisCache::analyze(std::string_view text, const analyzer::LexOptions& options) {
  const uint64_t key = XXH3_64bits_withSeed(text.data(), text.size(), options.standard_conforming_strings ? 0 : 1);
  if (text.size() <= kMaxKeptText) {
    auto [first, last] = index_.equal_range(key);
    for (auto it = first; it != last; ++it) {
      if (it->second->analysis->text != text) continue;   // a hash collision: a different text
      lru_.splice(lru_.begin(), lru_, it->second);
      ++hits_;
      return it->second->analysis;
    }
  }
  ++misses_;
  // A new text of a seen shape, whose one statement the pre-scan cleared, is that statement
  // with other numbers and strings: the same class and no session effect, unclassified again
  // (the pre-scan decides by the words between constants only).
  // With fingerprint constants wanted, the pass notes where the constants stand as well.
  const bool blanks_wanted = fingerprint_length_ > 0 && constants_;
  blanks_.clear();
  const std::optional<uint64_t> shape = analyzer::shape_key(text, options, blanks_wanted ? &blanks_ : nullptr);
  const StatementAnalysis* like = nullptr;
  if (shape) {
    if (auto it = shapes_.find(*shape); it != shapes_.end()) like = it->second.get();
  }
  AnalysisPtr a = make_analysis(text, options, fingerprint_length_, constants_, like);
  if (like) ++shaped_;
  if (a->statement_count() == 1 && !a->text_truncated) {
    a->keep_shape(shape);   // made once: shape_key() does not make it again, declined or not
    // Only a read's constants are looked at (fingerprint_all).
    if (shape && blanks_wanted && a->effects.statement_class(0) == analyzer::StatementClass::kRead)
      a->shape_blanks = blanks_;
    if (shape && !like && a->prescanned && a->tx_controls.empty()) {
      if (shapes_.size() >= kMaxShapes) shapes_.clear();
      shapes_.emplace(*shape, a);
    }
  }
  if (a->text_truncated) return a;
  // Kept from the second miss on: a text seen once may never come again.
  if (seen_once_.empty()) seen_once_.resize(kDoorkeeperSlots);
  uint64_t& slot = seen_once_[key % kDoorkeeperSlots];
  if (slot != key) {
    slot = key;
    return a;
  }
  lru_.push_front(Entry{key, a});
  index_.emplace(key, lru_.begin());
  if (index_.size() > capacity_) {
    const Entry& oldest = lru_.back();
    auto [first, last] = index_.equal_range(oldest.key);
    for (auto it = first; it != last; ++it) {
      if (it->second != std::prev(lru_.end())) continue;
      index_.erase(it);
      break;
    }
    lru_.pop_back();
    ++evictions_;
  }
  return a;
}

}  // namespace pgrelay::proxy
