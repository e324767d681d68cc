// Statement analysis, memoized per distinct text.
#include "proxy/request/statement_analysis.h"

#include <xxhash.h>

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

// Whether, after `statement`, a transaction block is open: `open` is the state before it.
bool transaction_open_after(std::string_view statement, bool open) {
  const auto w = leading_words(statement, 8);
  if (w.empty()) return open;
  auto has_chain = [&] {
    for (size_t i = 1; i + 1 < w.size(); ++i)
      if (w[i] == "and" && w[i + 1] == "chain") return true;
    return false;
  };
  if (w[0] == "begin" || (w[0] == "start" && w.size() > 1 && w[1] == "transaction")) return true;
  if (w[0] == "prepare") return w.size() > 1 && w[1] == "transaction" ? false : open;
  if (w[0] == "commit" || w[0] == "end" || w[0] == "abort" || w[0] == "rollback") {
    if (w.size() > 1 && w[1] == "prepared") return open;                 // another transaction's
    for (size_t i = 1; i < w.size() && i < 3; ++i)
      if (w[i] == "to") return open;                                     // ROLLBACK [WORK] TO SAVEPOINT
    return has_chain();
  }
  return open;
}

}  // namespace

AnalysisPtr analyze_statement(std::string_view text, const analyzer::LexOptions& options) {
  auto a = std::make_shared<StatementAnalysis>();
  a->hash = XXH3_64bits(text.data(), text.size());
  a->effects = analyzer::classify_session_effects(text, options);
  a->text_truncated = text.size() > AnalysisCache::kMaxKeptText;
  a->text.assign(text.substr(0, AnalysisCache::kMaxKeptText));
  // Views into a->text, which never moves again (the analysis lives behind a shared_ptr).
  if (!a->text_truncated && a->effects.statement_count() > 0) a->statements = analyzer::split_statements(a->text, options);
  // A cut text's statements past the cut are not in a->text: read them from the caller's.
  std::vector<std::string_view> whole;
  if (a->text_truncated && a->effects.statement_count() > 0) whole = analyzer::split_statements(text, options);
  bool open = false;
  for (size_t i = 0; i < a->effects.statement_count(); ++i) {
    if (a->effects.statement_class(i) != analyzer::StatementClass::kTransactionControl) continue;
    open = transaction_open_after(a->text_truncated ? (i < whole.size() ? whole[i] : text) : a->statement_text(i), open);
  }
  a->opens_transaction = open;
  return a;
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
  AnalysisPtr a = analyze_statement(text, options);
  if (a->text_truncated) return a;
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
