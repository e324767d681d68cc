// SQL tokenizer following PostgreSQL's lexical rules, and the split of a simple Query into statements.
//
// https://www.postgresql.org/docs/15/sql-syntax-lexical.html
// Tokens are views into the caller's text, which must outlive them. The Lexer never fails, never
// allocates and always advances: a byte no rule accepts becomes a one-byte kInvalid token, and a
// string, quoted identifier or comment still open at the end of the input ends there (its
// Token::terminated is false). It does not know PostgreSQL's keyword list: keywords and
// identifiers are both kIdentifier, compared case-insensitively with Token::is_word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgrelay::analyzer {

enum class TokenKind : uint8_t {
  kEnd,               // no more input (returned again on every later call)
  kWhitespace,        // space, tab, newline, carriage return, form feed, vertical tab
  kComment,           // -- to the end of the line, or /* ... */ (which nest)
  kIdentifier,        // unquoted identifier or keyword: select, Foo, a$b, _x1
  kQuotedIdentifier,  // "Foo ""bar""" or U&"d\0061t\+000061"
  kString,            // '...', E'...', N'...', U&'...'
  kBitString,         // B'1010' or X'1F'
  kDollarString,      // $$...$$ or $tag$...$tag$
  kNumber,            // 42, 3.5, .5, 1e-3 (in "1into", 1 then an identifier, as before PostgreSQL 15,
                      // which rejects such "trailing junk": reading more is the safe side here)
  kParameter,         // $1
  kOperator,          // + - * / < > = ~ ! @ # % ^ & | ` ? and their multi-character combinations
  kPunctuation,       // ( ) [ ] , ; . .. : :: :=
  kInvalid,           // one byte that starts no token (a backslash, a lone $, a brace, a control byte)
};

struct LexOptions {
  // standard_conforming_strings is a session setting (on by default since PostgreSQL 9.1).
  // When off, a backslash escapes the next character in plain '...' strings too, so
  // 'a\';select 1' is one string instead of a string followed by a statement.
  bool standard_conforming_strings = true;
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;     // exactly as written, quotes and prefixes included
  bool terminated = true;    // false: a string, quoted identifier or comment cut by the end of input

  // An unquoted identifier equal to `lower` ignoring ASCII case. `lower` must be lower case.
  bool is_word(std::string_view lower) const;
  // Punctuation or an operator spelled exactly `exact` (";", "(", "::", "*").
  bool is(std::string_view exact) const {
    return (kind == TokenKind::kPunctuation || kind == TokenKind::kOperator) && text == exact;
  }
  // Neither whitespace nor a comment (kEnd counts as significant).
  bool significant() const { return kind != TokenKind::kWhitespace && kind != TokenKind::kComment; }
};

class Lexer {
 public:
  explicit Lexer(std::string_view text, LexOptions options = {}) : text_(text), options_(options) {}

  // The next significant token: whitespace and comments are skipped.
  Token next();
  // The next token of any kind, whitespace and comments included; the texts of all tokens up to
  // kEnd concatenate to the input.
  Token next_any();
  // Bytes consumed so far.
  size_t offset() const { return pos_; }

 private:
  Token make(TokenKind kind, size_t start, bool terminated = true) const {
    return Token{kind, text_.substr(start, pos_ - start), terminated};
  }
  // Consumes a quoted body from just after the opening quote through the closing one; false
  // when the input ends first. `doubled`: a doubled quote stands for one quote character.
  bool quoted(char quote, bool backslash_escapes, bool doubled = true);
  Token comment();
  Token dollar();
  Token number();
  Token operator_token();

  std::string_view text_;
  size_t pos_ = 0;
  LexOptions options_;
};

// True when `a` equals `lower` ignoring ASCII case; `lower` must be lower case.
bool iequals(std::string_view a, std::string_view lower);

// An identifier as PostgreSQL names it: unquoted ones folded to ASCII lower case, quoted ones
// without their quotes and with "" undoubled (U&"..." escapes are left as written). Other
// tokens: their text.
std::string identifier_value(const Token& t);

// The value of a string constant (kString or kDollarString): quotes removed, '' undoubled,
// backslash escapes decoded in E'...' (and in '...' when standard_conforming_strings is off).
// nullopt for other tokens, unterminated strings, and escapes this function does not decode
// (U&'...' with a backslash, \u and \U in E'...'), so a caller never acts on a wrong value.
std::optional<std::string> string_value(const Token& t, const LexOptions& options = {});

// The text between the tags of a kDollarString (to the end of input when unterminated).
std::string_view dollar_body(const Token& t);

// Decides which ';' ends a statement: one outside parentheses and brackets and outside the body
// of CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC ... END. Strings, comments and
// dollar quotes never reach it (they are single tokens).
//
// BEGIN ATOMIC is approximated much as psql does it: inside a CREATE FUNCTION or PROCEDURE,
// BEGIN followed by ATOMIC opens a body, CASE opens a nested level, END closes one. That is
// right for valid bodies, which hold only SQL statements, whose only other END is CASE's.
class StatementBoundary {
 public:
  // Feed every significant token of the text in order. Returns true when `t` is the ';' that
  // ends the current statement; the next token then starts a new one.
  bool ends_statement(const Token& t);

 private:
  int depth_ = 0;           // open ( and [
  int atomic_depth_ = 0;    // > 0 inside BEGIN ATOMIC ... END
  uint8_t index_ = 0;       // significant tokens seen in this statement, saturating
  bool create_ = false;     // the statement starts with CREATE
  bool routine_ = false;    // ... and is a FUNCTION or PROCEDURE
  bool after_begin_ = false;
};

// Splits a simple Query's text into statements at top-level ';' (see StatementBoundary). Each
// view runs from a statement's first significant token to its last, so leading and trailing
// whitespace and comments are dropped; empty statements (";;", a lone comment) are skipped.
std::vector<std::string_view> split_statements(std::string_view sql, const LexOptions& options = {});

}  // namespace pgrelay::analyzer
