// Statement fingerprints: normalization with the PostgreSQL-rules lexer, then XXH3-64.
#include "analyzer/fingerprint.h"

#include <xxhash.h>

#include <array>
#include <vector>

namespace pgrelay::analyzer {
namespace {

bool is_literal(const Token& t) {
  switch (t.kind) {
    case TokenKind::kString: case TokenKind::kBitString: case TokenKind::kDollarString:
    case TokenKind::kNumber: case TokenKind::kParameter:
      return true;
    default:
      return t.is_word("true") || t.is_word("false");
  }
}

bool is_name(const Token& t) { return t.kind == TokenKind::kIdentifier || t.kind == TokenKind::kQuotedIdentifier; }

// Keywords after which "(" opens a list or a subquery rather than a function's arguments: written
// with a space, as people write them.
bool spaced_before_paren(const Token& t) {
  static constexpr std::array<std::string_view, 19> kWords = {
      "in", "values", "exists", "on", "using", "as", "from", "join", "and", "or", "not", "select",
      "where", "when", "then", "else", "set", "into", "with"};
  if (t.kind != TokenKind::kIdentifier) return false;
  for (std::string_view w : kWords)
    if (t.is_word(w)) return true;
  return false;
}

// A sign here makes the number after it a negative (or explicit positive) constant.
bool sign_is_unary(const Token* prev) {
  if (!prev) return true;
  if (prev->kind == TokenKind::kOperator) return true;
  if (prev->kind == TokenKind::kPunctuation) return !prev->is(")") && !prev->is("]");
  static constexpr std::array<std::string_view, 16> kWords = {
      "select", "where", "and", "or", "not", "when", "then", "else", "in", "values", "by",
      "limit", "offset", "between", "like", "return"};
  if (prev->kind != TokenKind::kIdentifier) return false;
  for (std::string_view w : kWords)
    if (prev->is_word(w)) return true;
  return false;
}

class Normalizer {
 public:
  Normalizer(std::string_view statement, const LexOptions& lex) {
    Lexer lexer(statement, lex);
    for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next())
      if (!t.is(";")) tokens_.push_back(t);
    out_.reserve(statement.size());
  }

  std::string run() {
    for (size_t i = 0; i < tokens_.size(); ++i) i = step(i);
    return std::move(out_);
  }

 private:
  // Writes token i (or what it starts); returns the index of the last token it used.
  size_t step(size_t i) {
    const Token& t = tokens_[i];
    const Token* prev = i > 0 ? &tokens_[i - 1] : nullptr;
    if (t.is("(") && prev && prev->is_word("in")) {
      if (size_t end = constant_list(i, ")"); end != 0) return emit_collapsed("(...)", end);
    }
    if (t.is("[") && prev && prev->is_word("array")) {
      if (size_t end = constant_list(i, "]"); end != 0) return emit_collapsed("[...]", end);
    }
    if (t.is("(") && prev && prev->is_word("values")) {
      // VALUES rows of constants, however many: one (...).
      size_t end = constant_list(i, ")");
      if (end != 0) {
        while (end + 2 < tokens_.size() && tokens_[end + 1].is(",") && tokens_[end + 2].is("(")) {
          const size_t next = constant_list(end + 2, ")");
          if (next == 0) break;
          end = next;
        }
        return emit_collapsed("(...)", end);
      }
    }
    if ((t.is("-") || t.is("+")) && i + 1 < tokens_.size() && tokens_[i + 1].kind == TokenKind::kNumber &&
        sign_is_unary(prev)) {
      put("?", t);
      return i + 1;
    }
    if (is_literal(t) || (t.is_word("null") && !after_is(i))) {
      put("?", t);
      return i;
    }
    if (t.kind == TokenKind::kIdentifier) {
      folded_.assign(t.text);
      for (char& c : folded_)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      put(folded_, t);
      return i;
    }
    put(t.text, t);
    return i;
  }

  // NULL in IS NULL / IS NOT NULL is syntax, not a value.
  bool after_is(size_t i) const {
    if (i >= 1 && tokens_[i - 1].is_word("is")) return true;
    return i >= 2 && tokens_[i - 1].is_word("not") && tokens_[i - 2].is_word("is");
  }

  // tokens_[open] is "(" or "[": when everything up to the matching `close` is constants (each
  // maybe signed and cast: -1, $1::int) separated by commas, the index of `close`; else 0.
  size_t constant_list(size_t open, std::string_view close) const {
    size_t j = open + 1;
    for (;;) {
      if (j < tokens_.size() && (tokens_[j].is("-") || tokens_[j].is("+"))) ++j;
      if (j >= tokens_.size() || !(is_literal(tokens_[j]) || tokens_[j].is_word("null"))) return 0;
      ++j;
      while (j + 1 < tokens_.size() && tokens_[j].is("::") && is_name(tokens_[j + 1])) j += 2;
      if (j >= tokens_.size()) return 0;
      if (tokens_[j].is(close)) return j;
      if (!tokens_[j].is(",")) return 0;
      ++j;
    }
  }

  // A collapsed list ("(...)" or "[...]") in place of tokens up to `end`, its closing bracket.
  size_t emit_collapsed(std::string_view text, size_t end) {
    const bool glued = text[0] == '[' || (last_ && is_name(*last_) && !spaced_before_paren(*last_));
    if (!out_.empty() && !glue_next_ && !glued) out_ += ' ';
    out_.append(text);
    glue_next_ = false;
    last_ = &tokens_[end];
    return end;
  }

  // Appends `text` for token `t` with the spacing rules of the header.
  void put(std::string_view text, const Token& t) {
    if (!out_.empty() && !glue_next_ && !glued_before(t)) out_ += ' ';
    out_.append(text);
    glue_next_ = t.is("(") || t.is("[") || t.is(".") || t.is("::");
    last_ = &t;
  }

  bool glued_before(const Token& t) const {
    if (t.is(")") || t.is("]") || t.is(",") || t.is(".") || t.is("::") || t.is("[")) return true;
    if (t.is("(")) return last_ && is_name(*last_) && !spaced_before_paren(*last_);
    return false;
  }

  std::vector<Token> tokens_;
  std::string out_;
  std::string folded_;
  const Token* last_ = nullptr;   // the token written last
  bool glue_next_ = false;        // no space before the next token (after "(", "[", ".", "::")
};

}  // namespace

Fingerprint fingerprint(std::string_view statement, const FingerprintOptions& options) {
  Fingerprint f;
  f.normalized = Normalizer(statement, options.lex).run();
  f.hash = XXH3_64bits(f.normalized.data(), f.normalized.size());
  if (f.normalized.size() > options.max_length) {
    size_t cut = options.max_length;
    while (cut > 0 && (static_cast<unsigned char>(f.normalized[cut]) & 0xC0) == 0x80) --cut;   // whole UTF-8 characters
    f.normalized.resize(cut);
    f.truncated = true;
  }
  return f;
}

}  // namespace pgrelay::analyzer
