// Statement fingerprints: normalization with the PostgreSQL-rules lexer, then XXH3-64.
//
// Each token is looked at once (Info: its bracket or operator character, which keyword it is)
// so that the rules below compare characters and small enums, not strings.
#include "analyzer/fingerprint.h"

#include <xxhash.h>

#include <vector>

namespace pgrelay::analyzer {
namespace {

enum class Kw : uint8_t { kNone, kIn, kArray, kValues, kNull, kIs, kNot, kTrue, kFalse };

struct Info {
  char punct = 0;          // a one-character punctuation or operator; ':' for "::"; 0 otherwise
  Kw kw = Kw::kNone;
  bool name = false;       // identifier or quoted identifier
  bool spaced = false;     // a keyword after which "(" opens a list or subquery: "in (", "from ("
  bool sign_context = false;   // a keyword after which + or - is a sign: "where -1", "limit +5"
  bool literal = false;    // a constant (NULL not included: it depends on IS before it)
};

// Identifier `w` folded to lower case into `buf` (at most 8 bytes: longer words are none of ours).
bool fold_short(std::string_view w, char (&buf)[8], size_t& n) {
  if (w.size() > sizeof buf) return false;
  for (n = 0; n < w.size(); ++n) {
    const char c = w[n];
    buf[n] = c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
  }
  return true;
}

Info describe(const Token& t) {
  Info i;
  switch (t.kind) {
    case TokenKind::kString: case TokenKind::kBitString: case TokenKind::kDollarString:
    case TokenKind::kNumber: case TokenKind::kParameter:
      i.literal = true;
      return i;
    case TokenKind::kPunctuation: case TokenKind::kOperator:
      if (t.text.size() == 1) i.punct = t.text[0];
      else if (t.text == "::") i.punct = ':';
      return i;
    case TokenKind::kQuotedIdentifier:
      i.name = true;
      return i;
    case TokenKind::kIdentifier:
      break;
    default:
      return i;
  }
  i.name = true;
  char buf[8];
  size_t n = 0;
  if (!fold_short(t.text, buf, n)) return i;
  const std::string_view w(buf, n);
  if (w == "in") { i.kw = Kw::kIn; i.spaced = i.sign_context = true; }
  else if (w == "array") i.kw = Kw::kArray;
  else if (w == "values") { i.kw = Kw::kValues; i.spaced = i.sign_context = true; }
  else if (w == "null") i.kw = Kw::kNull;
  else if (w == "is") i.kw = Kw::kIs;
  else if (w == "not") { i.kw = Kw::kNot; i.spaced = i.sign_context = true; }
  else if (w == "true") { i.kw = Kw::kTrue; i.literal = true; }
  else if (w == "false") { i.kw = Kw::kFalse; i.literal = true; }
  else if (w == "exists" || w == "on" || w == "using" || w == "as" || w == "from" || w == "join" || w == "set" ||
           w == "into" || w == "with")
    i.spaced = true;
  else if (w == "select" || w == "where" || w == "and" || w == "or" || w == "when" || w == "then" || w == "else")
    i.spaced = i.sign_context = true;
  else if (w == "by" || w == "limit" || w == "offset" || w == "between" || w == "like" || w == "return")
    i.sign_context = true;
  return i;
}

class Normalizer {
 public:
  // `tokens` and `infos` are scratch space, reused between calls (their capacity stays).
  Normalizer(std::string_view statement, const LexOptions& lex, std::vector<Token>& tokens, std::vector<Info>& infos)
      : tokens_(tokens), infos_(infos) {
    tokens_.clear();
    infos_.clear();
    Lexer lexer(statement, lex);
    for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
      Info info = describe(t);
      if (info.punct == ';' && t.kind == TokenKind::kPunctuation) continue;
      tokens_.push_back(t);
      infos_.push_back(info);
    }
    out_.reserve(statement.size());
  }

  std::string run() {
    for (size_t i = 0; i < tokens_.size(); ++i) i = step(i);
    return std::move(out_);
  }

 private:
  char punct(size_t i) const { return i < infos_.size() ? infos_[i].punct : 0; }

  // Writes token i (or what it starts); returns the index of the last token it used.
  size_t step(size_t i) {
    const Token& t = tokens_[i];
    const Info& info = infos_[i];
    const Kw prev_kw = i > 0 ? infos_[i - 1].kw : Kw::kNone;
    if (info.punct == '(' && prev_kw == Kw::kIn) {
      if (size_t end = constant_list(i, ')'); end != 0) return emit_collapsed("(...)", end);
    }
    if (info.punct == '[' && prev_kw == Kw::kArray) {
      if (size_t end = constant_list(i, ']'); end != 0) return emit_collapsed("[...]", end);
    }
    if (info.punct == '(' && prev_kw == Kw::kValues) {
      // VALUES rows of constants, however many: one (...).
      size_t end = constant_list(i, ')');
      if (end != 0) {
        while (punct(end + 1) == ',' && punct(end + 2) == '(') {
          const size_t next = constant_list(end + 2, ')');
          if (next == 0) break;
          end = next;
        }
        return emit_collapsed("(...)", end);
      }
    }
    if ((info.punct == '-' || info.punct == '+') && i + 1 < tokens_.size() &&
        tokens_[i + 1].kind == TokenKind::kNumber && sign_is_unary(i)) {
      put("?", info);
      return i + 1;
    }
    if (info.literal || (info.kw == Kw::kNull && !after_is(i))) {
      put("?", info);
      return i;
    }
    if (t.kind == TokenKind::kIdentifier) {
      folded_.assign(t.text);
      for (char& c : folded_)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      put(folded_, info);
      return i;
    }
    put(t.text, info);
    return i;
  }

  // A sign at i makes the number after it a negative (or explicit positive) constant.
  bool sign_is_unary(size_t i) const {
    if (i == 0) return true;
    const Token& p = tokens_[i - 1];
    const Info& pi = infos_[i - 1];
    if (p.kind == TokenKind::kOperator) return true;
    if (p.kind == TokenKind::kPunctuation) return pi.punct != ')' && pi.punct != ']';
    return pi.sign_context;
  }

  // NULL in IS NULL / IS NOT NULL is syntax, not a value.
  bool after_is(size_t i) const {
    if (i >= 1 && infos_[i - 1].kw == Kw::kIs) return true;
    return i >= 2 && infos_[i - 1].kw == Kw::kNot && infos_[i - 2].kw == Kw::kIs;
  }

  // tokens_[open] is "(" or "[": when everything up to the matching `close` is constants (each
  // maybe signed and cast: -1, $1::int) separated by commas, the index of `close`; else 0.
  size_t constant_list(size_t open, char close) const {
    size_t j = open + 1;
    for (;;) {
      if (punct(j) == '-' || punct(j) == '+') ++j;
      if (j >= tokens_.size() || !(infos_[j].literal || infos_[j].kw == Kw::kNull)) return 0;
      ++j;
      while (punct(j) == ':' && j + 1 < tokens_.size() && infos_[j + 1].name) j += 2;
      if (j >= tokens_.size()) return 0;
      if (punct(j) == close) return j;
      if (punct(j) != ',') return 0;
      ++j;
    }
  }

  // A collapsed list ("(...)" or "[...]") in place of tokens up to `end`, its closing bracket.
  size_t emit_collapsed(std::string_view text, size_t end) {
    const bool glued = text[0] == '[' || (last_ && last_->name && !last_->spaced);
    if (!out_.empty() && !glue_next_ && !glued) out_ += ' ';
    out_.append(text);
    glue_next_ = false;
    last_ = &infos_[end];
    return end;
  }

  // Appends `text` for a token described by `info`, with the spacing rules of the header.
  void put(std::string_view text, const Info& info) {
    if (!out_.empty() && !glue_next_ && !glued_before(info)) out_ += ' ';
    out_.append(text);
    const char p = info.punct;
    glue_next_ = p == '(' || p == '[' || p == '.' || p == ':';
    last_ = &info;
  }

  bool glued_before(const Info& info) const {
    switch (info.punct) {
      case ')': case ']': case ',': case '.': case ':': case '[': return true;
      case '(': return last_ && last_->name && !last_->spaced;
      default: return false;
    }
  }

  std::vector<Token>& tokens_;
  std::vector<Info>& infos_;
  std::string out_;
  std::string folded_;
  const Info* last_ = nullptr;    // the token written last
  bool glue_next_ = false;        // no space before the next token (after "(", "[", ".", "::")
};

}  // namespace

Fingerprint fingerprint(std::string_view statement, const FingerprintOptions& options) {
  Fingerprint f;
  // Token buffers per thread: no allocation per call once they have grown.
  thread_local std::vector<Token> tokens;
  thread_local std::vector<Info> infos;
  f.normalized = Normalizer(statement, options.lex, tokens, infos).run();
  if (tokens.capacity() > 65536) {   // a huge statement's buffers go
    std::vector<Token>().swap(tokens);
    std::vector<Info>().swap(infos);
  }
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
