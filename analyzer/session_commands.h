// Internal to analyzer/: the per-statement rules behind classify_session_effects (class and command effects).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "analyzer/lexer.h"
#include "analyzer/session_state.h"

namespace pgrelay::analyzer::detail {

using Tokens = std::span<const Token>;

// Where effects of one statement go, and how its strings are read.
struct Sink {
  SessionEffects& out;
  uint32_t statement;
  LexOptions options;

  void emit(EffectKind kind, std::string name = {}, std::string value = {}, bool via_set_config = false) {
    out.add_effect(Effect{kind, std::move(name), std::move(value), via_set_config, statement});
  }
};

// The text of tokens [from, to) as written, whitespace and comments between them included.
// Precondition: the tokens are views into one buffer, in order.
inline std::string_view span_text(Tokens t, size_t from, size_t to) {
  if (from >= to || to > t.size()) return {};
  const char* begin = t[from].text.data();
  const char* end = t[to - 1].text.data() + t[to - 1].text.size();
  return std::string_view(begin, size_t(end - begin));
}

// transaction_isolation, transaction_read_only and transaction_deferrable are re-derived from
// their default_ counterparts when each transaction starts, so setting them leaves nothing behind.
bool is_transaction_scoped(std::string_view parameter);

// The statement's class and the effects of its command (SET, CREATE TEMP, LISTEN, ...), for one
// statement's significant tokens without the ';'. Function calls anywhere in the statement
// (advisory locks, set_config) are found by the caller, not here.
StatementClass classify_command(Tokens t, Sink& sink);

}  // namespace pgrelay::analyzer::detail
