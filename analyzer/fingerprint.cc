// Statement fingerprints: normalization with the PostgreSQL-rules lexer, then XXH3-64.
//
// Each token is looked at once (Info: its bracket or operator character, which keyword it is)
// so that the rules below compare characters and small enums, not strings.
#include "analyzer/fingerprint.h"

#include <xxhash.h>

#include <cstdint>
#include <vector>

namespace pgrelay::analyzer {
namespace {

enum class Kw : uint8_t { kNone, kIn, kArray, kValues, kNull, kIs, kNot, kTrue, kFalse, kSet, kTo, kDefault };

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

// The keyword `w` (lower case, 2 to 7 bytes) names, as flags on `i`. Dispatched on length and
// first letter: a handful of comparisons per identifier at most.
void keyword(std::string_view w, Info& i) {
  auto is = [&](std::string_view k) { return w == k; };
  switch (w.size()) {
    case 2:
      if (is("in")) { i.kw = Kw::kIn; i.spaced = i.sign_context = true; }
      else if (is("is")) i.kw = Kw::kIs;
      else if (is("on") || is("as")) i.spaced = true;
      else if (is("or")) i.spaced = i.sign_context = true;
      else if (is("by")) i.sign_context = true;
      else if (is("to")) i.kw = Kw::kTo;
      return;
    case 3:
      if (is("not")) { i.kw = Kw::kNot; i.spaced = i.sign_context = true; }
      else if (is("and")) i.spaced = i.sign_context = true;
      else if (is("set")) { i.kw = Kw::kSet; i.spaced = true; }
      return;
    case 4:
      switch (w[0]) {
        case 'n': if (is("null")) i.kw = Kw::kNull; return;
        case 't':
          if (is("true")) { i.kw = Kw::kTrue; i.literal = true; }
          else if (is("then")) i.spaced = i.sign_context = true;
          return;
        case 'f': if (is("from")) i.spaced = true; return;
        case 'j': if (is("join")) i.spaced = true; return;
        case 'i': if (is("into")) i.spaced = true; return;
        case 'w':
          if (is("with")) i.spaced = true;
          else if (is("when")) i.spaced = i.sign_context = true;
          return;
        case 'e': if (is("else")) i.spaced = i.sign_context = true; return;
        case 'l': if (is("like")) i.sign_context = true; return;
        default: return;
      }
    case 5:
      if (is("array")) i.kw = Kw::kArray;
      else if (is("false")) { i.kw = Kw::kFalse; i.literal = true; }
      else if (is("using")) i.spaced = true;
      else if (is("where")) i.spaced = i.sign_context = true;
      else if (is("limit")) i.sign_context = true;
      return;
    case 6:
      if (is("values")) { i.kw = Kw::kValues; i.spaced = i.sign_context = true; }
      else if (is("select")) i.spaced = i.sign_context = true;
      else if (is("exists")) i.spaced = true;
      else if (is("offset") || is("return")) i.sign_context = true;
      return;
    case 7:
      if (is("between")) i.sign_context = true;
      else if (is("default")) i.kw = Kw::kDefault;
      return;
    default:
      return;
  }
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
  if (t.text.size() >= 2 && fold_short(t.text, buf, n)) keyword(std::string_view(buf, n), i);
  return i;
}

// A token as the normalizer keeps it: its text and kind, and what describe() found.
struct Tok {
  std::string_view text;
  TokenKind kind;
  Info info;
};

class Normalizer {
 public:
  // `toks` is scratch space, reused between calls (its capacity stays). With `constants`, the
  // constants replaced are appended there.
  Normalizer(std::string_view statement, const LexOptions& lex, std::vector<Tok>& toks,
             std::vector<ConstantSpan>* constants = nullptr)
      : toks_(toks), statement_(statement), constants_(constants) {
    toks_.clear();
    Lexer lexer(statement, lex);
    for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
      if (t.kind == TokenKind::kPunctuation && t.text == ";") continue;
      // Filled in place, field by field: copying a whole Token built on the stack stalls on
      // store forwarding (most of this function's time, measured).
      Tok& k = toks_.emplace_back();
      k.text = t.text;
      k.kind = t.kind;
      k.info = describe(t);
    }
    out_.reserve(statement.size());
  }

  std::string run() {
    // SET name = value, SET name TO value: the values are constants even when written as names
    // (SET search_path TO s1, public), as PostgreSQL's grammar reads them; DEFAULT stays.
    if (!toks_.empty() && toks_[0].info.kw == Kw::kSet) {
      for (size_t i = 1; i < toks_.size(); ++i) {
        if (toks_[i].info.punct == '=' || toks_[i].info.kw == Kw::kTo) {
          setting_values_from_ = i + 1;
          break;
        }
      }
    }
    for (size_t i = 0; i < toks_.size(); ++i) i = step(i);
    return std::move(out_);
  }

 private:
  char punct(size_t i) const { return i < toks_.size() ? toks_[i].info.punct : 0; }

  // Writes token i (or what it starts); returns the index of the last token it used.
  size_t step(size_t i) {
    const Tok& t = toks_[i];
    const Info& info = t.info;
    const Kw prev_kw = i > 0 ? toks_[i - 1].info.kw : Kw::kNone;
    if (info.punct == '(' && prev_kw == Kw::kIn) {
      if (size_t end = constant_list(i, ')'); end != 0) return emit_collapsed("(...)", i, end);
    }
    if (info.punct == '[' && prev_kw == Kw::kArray) {
      if (size_t end = constant_list(i, ']'); end != 0) return emit_collapsed("[...]", i, end);
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
        return emit_collapsed("(...)", i, end);
      }
    }
    if (i + 1 == setting_values_from_ && info.punct == '=') {
      put("to", info);   // SET name = value and SET name TO value are one statement
      return i;
    }
    if ((info.punct == '-' || info.punct == '+') && i + 1 < toks_.size() &&
        toks_[i + 1].kind == TokenKind::kNumber && sign_is_unary(i)) {
      if (constants_) collect(i, i + 1);
      put("?", info);
      return i + 1;
    }
    const bool null_value = info.kw == Kw::kNull && !after_is(i);
    if (info.literal || null_value || (i >= setting_values_from_ && info.name && info.kw != Kw::kDefault)) {
      if (constants_ && (info.literal || null_value)) collect(i, i);
      put("?", info);
      return i;
    }
    if (t.kind == TokenKind::kIdentifier) {
      put(t.text, info);
      // Folded in place: PostgreSQL folds unquoted identifiers and keywords (ASCII) too.
      char* const end = out_.data() + out_.size();
      for (char* c = end - t.text.size(); c != end; ++c)
        if (*c >= 'A' && *c <= 'Z') *c = char(*c - 'A' + 'a');
      return i;
    }
    put(t.text, info);
    return i;
  }

  // A sign at i makes the number after it a negative (or explicit positive) constant.
  bool sign_is_unary(size_t i) const {
    if (i == 0) return true;
    const Tok& p = toks_[i - 1];
    const Info& pi = p.info;
    if (p.kind == TokenKind::kOperator) return true;
    if (p.kind == TokenKind::kPunctuation) return pi.punct != ')' && pi.punct != ']';
    return pi.sign_context;
  }

  // NULL in IS NULL / IS NOT NULL is syntax, not a value.
  bool after_is(size_t i) const {
    if (i >= 1 && toks_[i - 1].info.kw == Kw::kIs) return true;
    return i >= 2 && toks_[i - 1].info.kw == Kw::kNot && toks_[i - 2].info.kw == Kw::kIs;
  }

  // toks_[open] is "(" or "[": when everything up to the matching `close` is constants (each
  // maybe signed and cast: -1, $1::int) separated by commas, the index of `close`; else 0.
  size_t constant_list(size_t open, char close) const {
    size_t j = open + 1;
    for (;;) {
      if (punct(j) == '-' || punct(j) == '+') ++j;
      if (j >= toks_.size() || !(toks_[j].info.literal || toks_[j].info.kw == Kw::kNull)) return 0;
      ++j;
      while (punct(j) == ':' && j + 1 < toks_.size() && toks_[j + 1].info.name) j += 2;
      if (j >= toks_.size()) return 0;
      if (punct(j) == close) return j;
      if (punct(j) != ',') return 0;
      ++j;
    }
  }

  // The constant made of tokens first..last (a sign and its number, or one token).
  void collect(size_t first, size_t last) {
    const Tok& t = toks_[last];
    const size_t begin = size_t(toks_[first].text.data() - statement_.data());
    const size_t end = size_t(t.text.data() - statement_.data()) + t.text.size();
    if (end > UINT32_MAX) return;
    ConstantKind kind = ConstantKind::kNumber;
    switch (t.kind) {
      case TokenKind::kString: case TokenKind::kDollarString: kind = ConstantKind::kString; break;
      case TokenKind::kBitString: kind = ConstantKind::kBitString; break;
      case TokenKind::kParameter: kind = ConstantKind::kParameter; break;
      case TokenKind::kIdentifier: kind = t.info.kw == Kw::kNull ? ConstantKind::kNull : ConstantKind::kBoolean; break;
      default: break;
    }
    constants_->push_back({.offset = uint32_t(begin), .length = uint32_t(end - begin), .kind = kind});
  }

  // The constants of a list constant_list() accepted, between `open` and `close`: each element is
  // an optional sign, a constant, and casts (names, skipped).
  void collect_list(size_t open, size_t close) {
    for (size_t j = open + 1; j < close; ++j) {
      const Tok& t = toks_[j];
      if ((t.info.punct == '-' || t.info.punct == '+') && toks_[j + 1].kind == TokenKind::kNumber) {
        collect(j, j + 1);
        ++j;
      } else if (t.info.literal || t.info.kw == Kw::kNull) {
        collect(j, j);
      }
    }
  }

  // A collapsed list ("(...)" or "[...]") in place of tokens from `open` up to `end`, its closing
  // bracket (VALUES rows: the closing bracket of the last row).
  size_t emit_collapsed(std::string_view text, size_t open, size_t end) {
    if (constants_) collect_list(open, end);
    const bool glued = text[0] == '[' || (last_ && last_->name && !last_->spaced);
    if (!out_.empty() && !glue_next_ && !glued) out_ += ' ';
    out_.append(text);
    glue_next_ = false;
    last_ = &toks_[end].info;
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

  std::vector<Tok>& toks_;
  std::string_view statement_;                // the tokens' texts are views into it
  std::vector<ConstantSpan>* constants_;      // null: not collected
  std::string out_;
  const Info* last_ = nullptr;    // the token written last
  bool glue_next_ = false;        // no space before the next token (after "(", "[", ".", "::")
  size_t setting_values_from_ = SIZE_MAX;   // SET ... = : the first token of the values
};

}  // namespace

Fingerprint fingerprint(std::string_view statement, const FingerprintOptions& options) {
  Fingerprint f;
  // Token buffers per thread: no allocation per call once they have grown.
  thread_local std::vector<Tok> toks;
  f.normalized =
      Normalizer(statement, options.lex, toks, options.collect_constants ? &f.constants : nullptr).run();
  if (toks.capacity() > 65536) std::vector<Tok>().swap(toks);   // a huge statement's buffer goes
  f.hash = XXH3_64bits(f.normalized.data(), f.normalized.size());
  if (f.normalized.size() > options.max_length) {
    size_t cut = options.max_length;
    while (cut > 0 && (static_cast<unsigned char>(f.normalized[cut]) & 0xC0) == 0x80) --cut;   // whole UTF-8 characters
    f.normalized.resize(cut);
    f.truncated = true;
  }
  return f;
}

namespace {

// A string constant's value when string_value() declines it: in E'...', \u and \U are kept as
// written and the other escapes decoded; U&'...' is read as a plain string, its escapes as
// written; an unterminated string (cut by the end of input) is its raw body.
std::string string_fallback(const Token& t, const LexOptions& lex) {
  const size_t quote = t.text.find('\'');
  if (quote == std::string_view::npos) return {};
  if (!t.terminated) return std::string(t.text.substr(quote + 1));
  if ((t.text[0] | 0x20) == 'u') {
    return string_value(Token{.kind = TokenKind::kString, .text = t.text.substr(quote)}, LexOptions{})
        .value_or(std::string());
  }
  std::string text(t.text.substr(0, quote + 1));
  for (size_t i = quote + 1; i < t.text.size(); ++i) {
    text.push_back(t.text[i]);
    if (t.text[i] != '\\' || i + 1 == t.text.size()) continue;
    if (t.text[i + 1] == 'u' || t.text[i + 1] == 'U') text.push_back('\\');
    text.push_back(t.text[++i]);
  }
  return string_value(Token{.kind = TokenKind::kString, .text = text}, lex).value_or(std::string());
}

// B'101' -> 101, X'1F' -> 00011111 (as a bit string prints).
std::string bits_value(std::string_view text) {
  const size_t quote = text.find('\'');
  if (quote == std::string_view::npos) return {};
  std::string_view body = text.substr(quote + 1);
  if (!body.empty() && body.back() == '\'') body.remove_suffix(1);
  if ((text[0] | 0x20) != 'x') return std::string(body);
  std::string out;
  out.reserve(body.size() * 4);
  for (const char c : body) {
    const char h = char(c | 0x20);
    const int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : 0;
    for (int b = 3; b >= 0; --b) out.push_back((v >> b) & 1 ? '1' : '0');
  }
  return out;
}

}  // namespace

std::string constant_value(std::string_view statement, const ConstantSpan& c, const LexOptions& lex) {
  if (c.offset > statement.size() || c.length > statement.size() - c.offset) return {};
  const std::string_view text = statement.substr(c.offset, c.length);
  switch (c.kind) {
    case ConstantKind::kNumber: {
      // Re-lexed: a comment or whitespace may stand between the sign and the number.
      Lexer lexer(text, lex);
      Token t = lexer.next();
      std::string out;
      if (t.is("-") || t.is("+")) {
        if (t.is("-")) out.push_back('-');
        t = lexer.next();
      }
      out.append(t.text);
      return out;
    }
    case ConstantKind::kString: {
      Lexer lexer(text, lex);
      const Token t = lexer.next();
      if (auto v = string_value(t, lex)) return std::move(*v);
      return string_fallback(t, lex);
    }
    case ConstantKind::kBitString: return bits_value(text);
    case ConstantKind::kBoolean: return !text.empty() && (text[0] | 0x20) == 't' ? "t" : "f";
    case ConstantKind::kNull: return {};
    case ConstantKind::kParameter: return std::string(text);
  }
  return {};
}

std::string fingerprint_hex(uint64_t hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) out[size_t(i)] = kHex[hash & 15];
  return out;
}

}  // namespace pgrelay::analyzer
