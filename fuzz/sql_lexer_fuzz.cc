// Fuzz target: the SQL lexer, the statement split and the token value decoders, over any text.
//
// Input: 1 byte of options (bit 0: standard_conforming_strings off), then the text. Checks the
// lexer's contract (analyzer/lexer.h): it always advances, every token is a view into the text,
// and the tokens concatenate to the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analyzer/lexer.h"
#include "fuzz/sql_input.h"

using pgrelay::fuzz::check;
namespace an = pgrelay::analyzer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto in = pgrelay::fuzz::sql_input(data, size);
  if (!in) return 0;
  const an::LexOptions& options = in->options;
  const std::string_view text = in->text;

  an::Lexer all(text, options);
  size_t covered = 0;
  for (;;) {
    an::Token t = all.next_any();
    if (t.kind == an::TokenKind::kEnd) break;
    check(!t.text.empty());
    check(t.text.data() == text.data() + covered);   // contiguous, in order
    covered += t.text.size();
    check(all.offset() == covered);
    (void)an::identifier_value(t);
    if (auto v = an::string_value(t, options); v) check(t.kind == an::TokenKind::kString || t.kind == an::TokenKind::kDollarString);
    if (t.kind == an::TokenKind::kDollarString) {
      std::string_view body = an::dollar_body(t);
      check(body.data() >= t.text.data() && body.data() + body.size() <= t.text.data() + t.text.size());
    }
  }
  check(covered == text.size());
  check(all.next_any().kind == an::TokenKind::kEnd);

  an::Lexer significant(text, options);
  an::StatementBoundary boundary;
  for (an::Token t = significant.next(); t.kind != an::TokenKind::kEnd; t = significant.next()) {
    check(t.significant());
    (void)boundary.ends_statement(t);
  }

  for (std::string_view s : an::split_statements(text, options)) {
    check(!s.empty());
    check(s.data() >= text.data() && s.data() + s.size() <= text.data() + text.size());
  }
  return 0;
}
