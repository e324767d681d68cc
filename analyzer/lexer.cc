// SQL tokenizer following PostgreSQL's lexical rules (src/backend/parser/scan.l, re-derived from the docs).
#include "analyzer/lexer.h"

#include "analyzer/chars.h"

namespace pgrelay::analyzer {
namespace {

using chars::ident_cont;
using chars::ident_start;
using chars::is_digit;
using chars::is_op_char;
using chars::is_space;

bool is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
// An operator containing one of these may end in + or -; others may not (so 1*-2 is 1 * -2).
bool is_non_sql_op_char(char c) {
  return c != '+' && c != '-' && c != '*' && c != '/' && c != '<' && c != '>' && c != '=' && is_op_char(c);
}
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c + ('a' - 'A')) : c; }

}  // namespace

bool iequals(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != lower[i]) return false;
  return true;
}

bool Token::is_word(std::string_view lower) const {
  return kind == TokenKind::kIdentifier && iequals(text, lower);
}

Token Lexer::next() {
  for (;;) {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;   // no whitespace token made
    Token t = next_any();
    if (t.significant()) return t;
  }
}

Token Lexer::next_any() {
  const size_t n = text_.size();
  if (pos_ >= n) return Token{TokenKind::kEnd, text_.substr(n), true};
  const size_t start = pos_;
  const unsigned char c = text_[pos_];
  auto at = [&](size_t k) -> unsigned char { return pos_ + k < n ? text_[pos_ + k] : '\0'; };

  if (is_space(c)) {
    while (pos_ < n && is_space(text_[pos_])) ++pos_;
    return make(TokenKind::kWhitespace, start);
  }
  if ((c == '-' && at(1) == '-') || (c == '/' && at(1) == '*')) return comment();
  if (c == '\'') {
    ++pos_;
    bool done = quoted('\'', !options_.standard_conforming_strings);
    return make(TokenKind::kString, start, done);
  }
  if (c == '"') {
    ++pos_;
    bool done = quoted('"', false);
    return make(TokenKind::kQuotedIdentifier, start, done);
  }
  // Prefixed constants: E'..', N'..', B'..', X'..', U&'..', U&"..".
  const unsigned char lc = c | 0x20;
  if (at(1) == '\'' && (lc == 'e' || lc == 'n' || lc == 'b' || lc == 'x')) {
    pos_ += 2;
    if (lc == 'b' || lc == 'x') return make(TokenKind::kBitString, start, quoted('\'', false, false));
    bool escapes = lc == 'e' || !options_.standard_conforming_strings;
    return make(TokenKind::kString, start, quoted('\'', escapes));
  }
  if (lc == 'u' && at(1) == '&' && (at(2) == '\'' || at(2) == '"')) {
    const char quote = char(at(2));
    pos_ += 3;
    bool done = quoted(quote, false);
    return make(quote == '\'' ? TokenKind::kString : TokenKind::kQuotedIdentifier, start, done);
  }
  if (ident_start(c)) {
    while (pos_ < n && ident_cont(text_[pos_])) ++pos_;
    return make(TokenKind::kIdentifier, start);
  }
  if (c == '$') return dollar();
  if (is_digit(c) || (c == '.' && is_digit(at(1)))) return number();
  if (is_op_char(c)) return operator_token();
  switch (c) {
    case '(': case ')': case '[': case ']': case ',': case ';':
      ++pos_;
      return make(TokenKind::kPunctuation, start);
    case '.':
      pos_ += at(1) == '.' ? 2 : 1;
      return make(TokenKind::kPunctuation, start);
    case ':':
      pos_ += (at(1) == ':' || at(1) == '=') ? 2 : 1;
      return make(TokenKind::kPunctuation, start);
    default:
      ++pos_;
      return make(TokenKind::kInvalid, start);
  }
}

bool Lexer::quoted(char quote, bool backslash_escapes, bool doubled) {
  const size_t n = text_.size();
  while (pos_ < n) {
    const char ch = text_[pos_];
    if (backslash_escapes && ch == '\\') {
      pos_ = pos_ + 2 < n ? pos_ + 2 : n;
      continue;
    }
    ++pos_;
    if (ch == quote) {
      if (doubled && pos_ < n && text_[pos_] == quote) {
        ++pos_;
        continue;
      }
      return true;
    }
  }
  return false;
}

Token Lexer::comment() {
  const size_t n = text_.size();
  const size_t start = pos_;
  if (text_[pos_] == '-') {
    while (pos_ < n && text_[pos_] != '\n' && text_[pos_] != '\r') ++pos_;
    return make(TokenKind::kComment, start);
  }
  pos_ += 2;
  int depth = 1;
  while (pos_ < n) {
    const char ch = text_[pos_];
    const char next = pos_ + 1 < n ? text_[pos_ + 1] : '\0';
    if (ch == '/' && next == '*') {
      ++depth;
      pos_ += 2;
    } else if (ch == '*' && next == '/') {
      pos_ += 2;
      if (--depth == 0) return make(TokenKind::kComment, start);
    } else {
      ++pos_;
    }
  }
  return make(TokenKind::kComment, start, false);
}

// $1 (a parameter), $tag$...$tag$ or $$...$$ (a dollar-quoted string), or a lone $ (invalid).
Token Lexer::dollar() {
  const size_t n = text_.size();
  const size_t start = pos_;
  size_t j = pos_ + 1;
  if (j < n && is_digit(text_[j])) {
    while (j < n && is_digit(text_[j])) ++j;
    pos_ = j;
    return make(TokenKind::kParameter, start);
  }
  if (j < n && ident_start(text_[j])) {   // a tag: an identifier without $
    while (j < n && (ident_start(text_[j]) || is_digit(text_[j]))) ++j;
  }
  if (j >= n || text_[j] != '$') {
    ++pos_;
    return make(TokenKind::kInvalid, start);
  }
  const std::string_view tag = text_.substr(start, j + 1 - start);
  const size_t close = text_.find(tag, j + 1);
  if (close == std::string_view::npos) {
    pos_ = n;
    return make(TokenKind::kDollarString, start, false);
  }
  pos_ = close + tag.size();
  return make(TokenKind::kDollarString, start);
}

Token Lexer::number() {
  const size_t n = text_.size();
  const size_t start = pos_;
  while (pos_ < n && is_digit(text_[pos_])) ++pos_;
  // "1..5" is 1 followed by "..", as in PostgreSQL (PL/pgSQL's FOR i IN 1..5).
  if (pos_ < n && text_[pos_] == '.' && !(pos_ + 1 < n && text_[pos_ + 1] == '.')) {
    ++pos_;
    while (pos_ < n && is_digit(text_[pos_])) ++pos_;
  }
  if (pos_ < n && (text_[pos_] | 0x20) == 'e') {
    size_t j = pos_ + 1;
    if (j < n && (text_[j] == '+' || text_[j] == '-')) ++j;
    if (j < n && is_digit(text_[j])) {
      while (j < n && is_digit(text_[j])) ++j;
      pos_ = j;
    }
  }
  return make(TokenKind::kNumber, start);
}

// The longest run of operator characters that does not run into a comment start; a
// multi-character operator cannot end in + or - unless it contains one of ~ ! @ # % ^ & | ` ?.
Token Lexer::operator_token() {
  const size_t n = text_.size();
  const size_t start = pos_;
  size_t j = pos_ + 1;
  while (j < n && is_op_char(text_[j])) {
    const char next = j + 1 < n ? text_[j + 1] : '\0';
    if ((text_[j] == '-' && next == '-') || (text_[j] == '/' && next == '*')) break;
    ++j;
  }
  bool non_sql = false;
  for (size_t k = start; k < j; ++k) non_sql = non_sql || is_non_sql_op_char(text_[k]);
  if (!non_sql)
    while (j - start > 1 && (text_[j - 1] == '+' || text_[j - 1] == '-')) --j;
  pos_ = j;
  return make(TokenKind::kOperator, start);
}

std::string identifier_value(const Token& t) {
  std::string out;
  if (t.kind == TokenKind::kIdentifier) {
    out.reserve(t.text.size());
    for (char c : t.text) out.push_back(to_lower(c));
    return out;
  }
  if (t.kind != TokenKind::kQuotedIdentifier) return std::string(t.text);
  std::string_view body = t.text.substr(t.text[0] == '"' ? 1 : 3);
  if (t.terminated && !body.empty()) body.remove_suffix(1);
  for (size_t i = 0; i < body.size(); ++i) {
    out.push_back(body[i]);
    if (body[i] == '"' && i + 1 < body.size() && body[i + 1] == '"') ++i;
  }
  return out;
}

std::string_view dollar_body(const Token& t) {
  if (t.kind != TokenKind::kDollarString) return {};
  const size_t tag_end = t.text.find('$', 1);
  if (tag_end == std::string_view::npos) return {};
  const size_t tag = tag_end + 1;
  if (!t.terminated) return t.text.substr(tag);
  if (t.text.size() < 2 * tag) return {};
  return t.text.substr(tag, t.text.size() - 2 * tag);
}

std::optional<std::string> string_value(const Token& t, const LexOptions& options) {
  if (!t.terminated) return std::nullopt;
  if (t.kind == TokenKind::kDollarString) return std::string(dollar_body(t));
  if (t.kind != TokenKind::kString) return std::nullopt;
  const char prefix = char(t.text[0] | 0x20);
  size_t skip = 1;
  bool escapes = !options.standard_conforming_strings;
  if (prefix == 'e') {
    skip = 2;
    escapes = true;
  } else if (prefix == 'n') {
    skip = 2;
  } else if (prefix == 'u') {
    skip = 3;
    if (t.text.find('\\') != std::string_view::npos) return std::nullopt;  // Unicode escapes
  }
  if (t.text.size() < skip + 1) return std::nullopt;
  const std::string_view body = t.text.substr(skip, t.text.size() - skip - 1);
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\'') {            // always doubled inside a terminated string
      out.push_back('\'');
      ++i;
    } else if (c == '\\' && escapes && i + 1 < body.size()) {
      const char e = body[++i];
      switch (e) {
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': case 'U': return std::nullopt;
        case 'x': {
          int v = 0, k = 0;
          while (k < 2 && i + 1 < body.size() && is_hex(body[i + 1])) {
            const char h = char(body[++i] | 0x20);
            v = v * 16 + (is_digit(h) ? h - '0' : h - 'a' + 10);
            ++k;
          }
          if (k == 0) out.push_back('x'); else out.push_back(char(v));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
              v = v * 8 + (body[++i] - '0');
            out.push_back(char(v & 0xff));
          } else {
            out.push_back(e);
          }
      }
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool StatementBoundary::ends_statement(const Token& t) {
  if (t.is(";") && depth_ == 0 && atomic_depth_ == 0) {
    *this = StatementBoundary();
    return true;
  }
  if (index_ == 0) {
    create_ = t.is_word("create");
  } else if (create_ && !routine_ && index_ <= 3) {   // CREATE [OR REPLACE] FUNCTION
    routine_ = t.is_word("function") || t.is_word("procedure");
  }
  if (t.is("(") || t.is("[")) {
    ++depth_;
  } else if ((t.is(")") || t.is("]")) && depth_ > 0) {
    --depth_;
  }
  if (routine_) {
    if (atomic_depth_ == 0) {
      if (after_begin_ && t.is_word("atomic")) atomic_depth_ = 1;
    } else if (t.is_word("case")) {
      ++atomic_depth_;
    } else if (t.is_word("end")) {
      --atomic_depth_;
    }
    after_begin_ = t.is_word("begin");
  }
  if (index_ < 255) ++index_;
  return false;
}

std::vector<std::string_view> split_statements(std::string_view sql, const LexOptions& options) {
  std::vector<std::string_view> out;
  Lexer lexer(sql, options);
  StatementBoundary boundary;
  const char* first = nullptr;
  const char* end = nullptr;
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    if (boundary.ends_statement(t)) {
      if (first) out.emplace_back(first, size_t(end - first));
      first = nullptr;
      continue;
    }
    if (!first) first = t.text.data();
    end = t.text.data() + t.text.size();
  }
  if (first) out.emplace_back(first, size_t(end - first));
  return out;
}

}  // namespace pgrelay::analyzer
