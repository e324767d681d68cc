// SQL lexer: every token shape of PostgreSQL's lexical rules, unterminated input, statement splitting, random bytes.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "analyzer/chars.h"
#include "analyzer/lexer.h"

using namespace pgrelay::analyzer;

namespace {

char kind_letter(TokenKind k) {
  switch (k) {
    case TokenKind::kEnd: return '$';
    case TokenKind::kWhitespace: return 'w';
    case TokenKind::kComment: return 'c';
    case TokenKind::kIdentifier: return 'i';
    case TokenKind::kQuotedIdentifier: return 'q';
    case TokenKind::kString: return 's';
    case TokenKind::kBitString: return 'b';
    case TokenKind::kDollarString: return 'd';
    case TokenKind::kNumber: return 'n';
    case TokenKind::kParameter: return 'p';
    case TokenKind::kOperator: return 'o';
    case TokenKind::kPunctuation: return ',';
    case TokenKind::kInvalid: return '!';
  }
  return '?';
}

// Significant tokens as "kind:text" joined by spaces, e.g. "i:select n:1".
std::string lex(std::string_view sql, LexOptions options = {}) {
  std::string out;
  Lexer lexer(sql, options);
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    if (!out.empty()) out += ' ';
    out += kind_letter(t.kind);
    out += ':';
    out += t.text;
    if (!t.terminated) out += "<unterminated>";
  }
  return out;
}

// All tokens, trivia included, and a check that they cover the input exactly, in order.
std::vector<Token> lex_all(std::string_view sql, LexOptions options = {}) {
  std::vector<Token> out;
  Lexer lexer(sql, options);
  std::string joined;
  for (Token t = lexer.next_any(); t.kind != TokenKind::kEnd; t = lexer.next_any()) {
    REQUIRE(!t.text.empty());
    REQUIRE(t.text.data() == sql.data() + joined.size());
    joined += t.text;
    out.push_back(t);
    REQUIRE(out.size() <= sql.size());
  }
  CHECK(joined == sql);
  CHECK(lexer.offset() == sql.size());
  return out;
}

Token only_token(std::string_view sql, LexOptions options = {}) {
  Lexer lexer(sql, options);
  Token t = lexer.next();
  CHECK(lexer.next().kind == TokenKind::kEnd);
  return t;
}

std::string split(std::string_view sql) {
  std::string out;
  for (std::string_view s : split_statements(sql)) {
    REQUIRE(s.data() >= sql.data());
    REQUIRE(s.data() + s.size() <= sql.data() + sql.size());
    out += '[';
    out += s;
    out += ']';
  }
  return out;
}

}  // namespace

TEST_CASE("identifiers and keywords: case-insensitive, lower-cased values, $ inside") {
  CHECK(lex("SELECT Foo, a$b$, _x1 FROM t") == "i:SELECT i:Foo ,:, i:a$b$ ,:, i:_x1 i:FROM i:t");
  Token t = only_token("SeLeCt");
  CHECK(t.is_word("select"));
  CHECK_FALSE(t.is_word("selec"));
  CHECK(identifier_value(t) == "select");
  CHECK(identifier_value(only_token("Ünïcode")) == "Ünïcode");   // bytes >= 0x80 are letters, not folded
  CHECK(iequals("ListEN", "listen"));
  CHECK_FALSE(iequals("listen", "listen_log"));
}

TEST_CASE("quoted identifiers keep case and undouble quotes") {
  Token t = only_token(R"("My ""Table""")");
  CHECK(t.kind == TokenKind::kQuotedIdentifier);
  CHECK(identifier_value(t) == R"(My "Table")");
  CHECK_FALSE(t.is_word("my \"table\""));                        // quoted is never a keyword
  Token u = only_token(R"(U&"d\0061t")");
  CHECK(u.kind == TokenKind::kQuotedIdentifier);
  CHECK(identifier_value(u) == R"(d\0061t)");
  CHECK(lex(R"(a."b".c)") == R"(i:a ,:. q:"b" ,:. i:c)");
}

TEST_CASE("string constants: '', E'' escapes, N'', U&'', B'' and X''") {
  Token s = only_token("'it''s'");
  CHECK(s.kind == TokenKind::kString);
  CHECK(string_value(s) == "it's");
  CHECK(string_value(only_token(R"(E'it\'s\n\x41\101\\')")) == "it's\nAA\\");
  CHECK(string_value(only_token(R"(e'a''b')")) == "a'b");
  CHECK(string_value(only_token("N'abc'")) == "abc");
  CHECK(string_value(only_token("U&'abc'")) == "abc");
  CHECK_FALSE(string_value(only_token(R"(U&'d\0061t')")).has_value());  // escapes not decoded: no value
  CHECK_FALSE(string_value(only_token(R"(E'\u0041')")).has_value());
  CHECK(only_token("B'1010'").kind == TokenKind::kBitString);
  CHECK(only_token("x'1F'").kind == TokenKind::kBitString);
  CHECK_FALSE(string_value(only_token("x'1F'")).has_value());
  // A backslash is an ordinary character in a standard string: the string ends at the quote.
  CHECK(lex(R"('a\'; select 1)") == R"(s:'a\' ,:; i:select n:1)");
  CHECK(string_value(only_token(R"('a\b')")) == R"(a\b)");
  // Identifiers that merely start with a prefix letter are identifiers.
  CHECK(lex("ex 'x'") == "i:ex s:'x'");
}

TEST_CASE("standard_conforming_strings off: backslash escapes in plain strings") {
  LexOptions off;
  off.standard_conforming_strings = false;
  CHECK(lex(R"('a\'; select 1')", off) == R"(s:'a\'; select 1')");
  CHECK(string_value(only_token(R"('a\'b')", off), off) == "a'b");
  CHECK(string_value(only_token(R"('a\nb')", off), off) == "a\nb");
}

TEST_CASE("dollar-quoted strings, parameters and lone dollars") {
  Token d = only_token("$$it's; a \"body\"$$");
  CHECK(d.kind == TokenKind::kDollarString);
  CHECK(dollar_body(d) == "it's; a \"body\"");
  CHECK(string_value(d) == "it's; a \"body\"");
  Token tagged = only_token("$fn$ select $$inner$$; $fn$");
  CHECK(tagged.kind == TokenKind::kDollarString);
  CHECK(dollar_body(tagged) == " select $$inner$$; ");
  CHECK(dollar_body(only_token("$$$$")).empty());
  CHECK(lex("$1 + $23") == "p:$1 o:+ p:$23");
  CHECK(lex("$ 1") == "!:$ n:1");
  CHECK(lex("$a b") == "!:$ i:a i:b");
  CHECK(lex("x$$y$$") == "i:x$$y$$");                                // $ continues an identifier
  CHECK(lex("$1$$x$$") == "p:$1 d:$$x$$");
}

TEST_CASE("numbers") {
  CHECK(lex("42 3.5 .5 5. 1e10 1.5E-3 2e") == "n:42 n:3.5 n:.5 n:5. n:1e10 n:1.5E-3 n:2 i:e");
  CHECK(lex("1..5") == "n:1 ,:.. n:5");
  CHECK(lex("1into") == "n:1 i:into");
}

TEST_CASE("operators: longest match, comment starts, trailing + and -") {
  CHECK(lex("a>=b") == "i:a o:>= i:b");
  CHECK(lex("1*-2") == "n:1 o:* o:- n:2");
  CHECK(lex("a<>-1") == "i:a o:<> o:- n:1");
  CHECK(lex("a @- b") == "i:a o:@- i:b");             // contains @: may end in -
  CHECK(lex("j->>'k'") == "i:j o:->> s:'k'");
  CHECK(lex("a != b") == "i:a o:!= i:b");
  CHECK(lex("a+--c\nb") == "i:a o:+ i:b");
  CHECK(lex("a*/*c*/b") == "i:a o:* i:b");
  CHECK(lex("x::int") == "i:x ,::: i:int");
  CHECK(lex("f(a := 1, b => 2)[1:2]") == "i:f ,:( i:a ,::= n:1 ,:, i:b o:=> n:2 ,:) ,:[ n:1 ,:: n:2 ,:]");
  CHECK(lex("a \\ {b}") == "i:a !:\\ !:{ i:b !:}");
}

TEST_CASE("comments: line comments, nested block comments, unterminated") {
  auto all = lex_all("select -- note ; here\r\n1 /* a /* nested */ still; */ + 2");
  std::string kinds;
  for (const Token& t : all) kinds += kind_letter(t.kind);
  CHECK(kinds == "iwcwnwcwown");
  CHECK(all[2].text == "-- note ; here");
  CHECK(all[6].text == "/* a /* nested */ still; */");
  CHECK(lex("select 1 /* open /* nested */ never closed") == "i:select n:1");
  auto open = lex_all("/* open /* nested */ never closed");
  REQUIRE(open.size() == 1);
  CHECK_FALSE(open[0].terminated);
}

TEST_CASE("whitespace of every kind separates tokens") {
  CHECK(lex(" \t\n\r\f\vselect\f1\v") == "i:select n:1");
  auto all = lex_all("\f\v");
  REQUIRE(all.size() == 1);
  CHECK(all[0].kind == TokenKind::kWhitespace);
}

TEST_CASE("unterminated strings, identifiers and dollar quotes end at the end of input") {
  CHECK(lex("select 'abc; set role x") == "i:select s:'abc; set role x<unterminated>");
  CHECK(lex(R"(E'abc\)") == R"(s:E'abc\<unterminated>)");
  CHECK(lex(R"("abc)") == R"(q:"abc<unterminated>)");
  CHECK(lex("$q$ body $Q$") == "d:$q$ body $Q$<unterminated>");       // tags are case-sensitive
  CHECK(dollar_body(only_token("$q$ body")) == " body");
  CHECK_FALSE(string_value(only_token("'abc")).has_value());
  CHECK(lex("'") == "s:'<unterminated>");
  CHECK(lex("U&'") == "s:U&'<unterminated>");
  CHECK(lex("E") == "i:E");
}

TEST_CASE("split_statements: top-level semicolons only") {
  CHECK(split("select 1; select 2") == "[select 1][select 2]");
  CHECK(split("  select 'a;b' ; select \"c;d\";") == "[select 'a;b'][select \"c;d\"]");
  CHECK(split("select 1 -- x; y\n; /* ; */ select 2 /* tail */") == "[select 1][select 2]");
  CHECK(split("do $$ begin perform 1; end $$; listen x") == "[do $$ begin perform 1; end $$][listen x]");
  CHECK(split("select (1; 2); select [3;4]") == "[select (1; 2)][select [3;4]]");
  CHECK(split(";;  ; -- only comments\n").empty());
  CHECK(split("") == "");
  CHECK(split("select 'open; set role x") == "[select 'open; set role x]");
  CHECK(split("select ((1; select 2") == "[select ((1; select 2]");     // unbalanced: no split
  CHECK(split("select 1)); select 2") == "[select 1))][select 2]");
}

TEST_CASE("split_statements: BEGIN ATOMIC bodies stay whole") {
  const char* sql =
      "CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\n"
      "BEGIN ATOMIC\n"
      "  INSERT INTO log VALUES (x);\n"
      "  SELECT CASE WHEN x > 0 THEN 1 ELSE CASE WHEN x < 0 THEN -1 END END;\n"
      "END;\n"
      "SELECT f(1); CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END; begin; select 2";
  auto parts = split_statements(sql);
  REQUIRE(parts.size() == 5);
  CHECK(parts[0].substr(0, 26) == "CREATE OR REPLACE FUNCTION");
  CHECK(parts[0].substr(parts[0].size() - 3) == "END");
  CHECK(parts[1] == "SELECT f(1)");
  CHECK(parts[2] == "CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END");
  CHECK(parts[3] == "begin");
  CHECK(parts[4] == "select 2");
  // BEGIN as a transaction statement, or outside a routine, is not a body.
  CHECK(split("begin; create table atomic(a int); end") == "[begin][create table atomic(a int)][end]");
}

TEST_CASE("StatementBoundary reports the terminating semicolon and starts afresh") {
  StatementBoundary b;
  Lexer lexer("create function f() begin atomic select 1; end; select 2;");
  std::vector<std::string> ends;
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next())
    if (b.ends_statement(t)) ends.push_back(std::to_string(lexer.offset()));
  CHECK(ends == std::vector<std::string>{"47", "57"});
}

TEST_CASE("random bytes never crash, loop or lose input") {
  std::mt19937 rng(20240501);
  const std::string alphabet = "aEeUuNnBbXx_$019'\"\\;:.,()[]*/-+<>=@!&|` \t\n\r\f\v&\x80\xff\0";
  size_t tokens = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string sql(rng() % 96, '\0');
    for (char& c : sql) {
      uint32_t x = rng();
      c = (x % 8 == 0) ? char(x >> 8) : alphabet[(x >> 8) % alphabet.size()];
    }
    LexOptions options;
    options.standard_conforming_strings = iter % 3 != 0;
    tokens += lex_all(sql, options).size();
    for (std::string_view s : split_statements(sql, options)) {
      REQUIRE(s.data() >= sql.data());
      REQUIRE(s.data() + s.size() <= sql.data() + sql.size());
      REQUIRE(!s.empty());
    }
    Lexer lexer(sql, options);
    for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
      (void)identifier_value(t);
      (void)string_value(t, options);
      (void)dollar_body(t);
    }
  }
  CHECK(tokens > 20000);   // the inputs really were tokenized, not skipped
}

TEST_CASE("character classes: every byte as scan.l reads it") {
  for (int i = 0; i < 256; ++i) {
    const char c = char(i);
    const bool alpha = (i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z');
    const bool digit = i >= '0' && i <= '9';
    CAPTURE(i);
    CHECK(chars::is_alpha(c) == alpha);
    CHECK(chars::is_digit(c) == digit);
    CHECK(chars::ident_start(c) == (alpha || i == '_' || i >= 0x80));   // any byte >= 0x80 is a letter
    CHECK(chars::ident_cont(c) == (alpha || digit || i == '_' || i == '$' || i >= 0x80));
    CHECK(chars::is_space(c) == (i == ' ' || (i >= '\t' && i <= '\r')));   // \t \n \v \f \r
    CHECK(chars::is_op_char(c) == (std::string_view("+-*/<>=~!@#%^&|`?").find(c) != std::string_view::npos && i != 0));
  }
}

TEST_CASE("next() skips whitespace of every kind between tokens, as next_any() reports it") {
  Lexer a("select\t\v\f 1\r\n,\n  x  ");
  Lexer b("select\t\v\f 1\r\n,\n  x  ");
  std::vector<std::string_view> significant;
  for (Token t = a.next_any(); t.kind != TokenKind::kEnd; t = a.next_any())
    if (t.significant()) significant.push_back(t.text);
  std::vector<std::string_view> skipped;
  for (Token t = b.next(); t.kind != TokenKind::kEnd; t = b.next()) skipped.push_back(t.text);
  CHECK(skipped == significant);
  CHECK(skipped == std::vector<std::string_view>{"select", "1", ",", "x"});
  CHECK(b.offset() == std::string_view("select\t\v\f 1\r\n,\n  x  ").size());
}
