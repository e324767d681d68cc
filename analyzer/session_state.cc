// Session-state classification: the hot-path byte pre-scan, the statement loop, advisory-lock and set_config calls.
#include "analyzer/session_state.h"

#include <optional>

#include "analyzer/chars.h"
#include "analyzer/session_commands.h"

namespace pgrelay::analyzer {
namespace {

using detail::Sink;
using detail::Tokens;
using detail::span_text;

using chars::ident_cont;
using chars::ident_start;
using chars::is_alpha;
using chars::is_space;

// ---- Pre-scan ---------------------------------------------------------------------------------

// Every fast word is checked for the call names, even those whose statements have no
// expressions (BEGIN, SHOW): the full path scans any text for calls, and the two must agree.
enum class Shape : uint8_t {
  kCommand,      // INSERT, UPDATE, DELETE, transaction control
  kQuery,        // read statements, whose class INTO or FOR may change (SELECT, VALUES, TABLE, SHOW)
};
struct FastWord {
  std::string_view word;
  Shape shape;
  StatementClass cls;
};
constexpr FastWord kFastWords[] = {
    {"select", Shape::kQuery, StatementClass::kRead},
    {"insert", Shape::kCommand, StatementClass::kWrite},
    {"update", Shape::kCommand, StatementClass::kWrite},
    {"delete", Shape::kCommand, StatementClass::kWrite},
    {"values", Shape::kQuery, StatementClass::kRead},
    {"table", Shape::kQuery, StatementClass::kRead},
    {"show", Shape::kQuery, StatementClass::kRead},
    {"begin", Shape::kCommand, StatementClass::kTransactionControl},
    {"start", Shape::kCommand, StatementClass::kTransactionControl},
    {"commit", Shape::kCommand, StatementClass::kTransactionControl},
    {"end", Shape::kCommand, StatementClass::kTransactionControl},
    {"rollback", Shape::kCommand, StatementClass::kTransactionControl},
    {"abort", Shape::kCommand, StatementClass::kTransactionControl},
    {"savepoint", Shape::kCommand, StatementClass::kTransactionControl},
    {"release", Shape::kCommand, StatementClass::kTransactionControl},
};

// The class of the one statement in `sql` when the bytes prove it has no session effect.
// Soundness: the first token is the word; without an inner ';' there is one statement; every
// effect such a statement can have comes from a call of a function whose name has "advisory",
// "set_config", "nextval", "setval", "currval" or "lastval" between non-letters, or (for
// queries) from the keyword INTO, and its class changes only with INTO or FOR. The scan walks runs of ASCII letters, so each byte is looked at
// about once; it ignores quoting, so a match inside a string merely sends the text to the full path.
std::optional<StatementClass> prescan(std::string_view sql) {
  const size_t n = sql.size();
  size_t i = 0;
  while (i < n && is_space(sql[i])) ++i;
  const size_t w = i;
  while (i < n && is_alpha(sql[i])) ++i;
  if (i == w || (i < n && ident_cont(sql[i]))) return std::nullopt;
  const FastWord* fast = nullptr;
  for (const FastWord& f : kFastWords)
    if (iequals(sql.substr(w, i - w), f.word)) {
      fast = &f;
      break;
    }
  if (!fast) return std::nullopt;
  const bool query = fast->shape == Shape::kQuery;
  while (i < n) {
    const char c = sql[i];
    if (c == ';') {
      for (size_t k = i + 1; k < n; ++k)
        if (!is_space(sql[k]) && sql[k] != ';') return std::nullopt;
      return fast->cls;
    }
    if (!is_alpha(c)) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < n && is_alpha(sql[end])) ++end;
    const std::string_view run = sql.substr(i, end - i);
    // A keyword only when no identifier character joins it to its neighbours. A digit or $ before
    // it does not: the lexer reads "1into" as 1 then INTO (PostgreSQL < 15 did; 15 rejects it),
    // so only a letter or _ counts there.
    const bool whole_word = (i == 0 || !ident_start(sql[i - 1])) && (end == n || !ident_cont(sql[end]));
    switch (run.size()) {
      case 8:
        if (iequals(run, "advisory")) return std::nullopt;
        break;
      case 7:
        if (iequals(run, "nextval") || iequals(run, "currval") || iequals(run, "lastval")) return std::nullopt;
        break;
      case 6:
        if (i >= 4 && iequals(sql.substr(i - 4, 10), "set_config")) return std::nullopt;
        if (iequals(run, "setval")) return std::nullopt;
        break;
      case 4:
        if (query && whole_word && iequals(run, "into")) return std::nullopt;
        break;
      case 3:
        if (query && whole_word && iequals(run, "for")) return std::nullopt;
        break;
      default:
        break;
    }
    i = end;
  }
  return fast->cls;
}

// ---- Calls ------------------------------------------------------------------------------------

// PostgreSQL's boolean input: t/true/y/yes/on/1 and f/false/n/no/off/0, any case, unambiguous
// prefixes allowed.
std::optional<bool> parse_bool(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  std::string v;
  for (char c : s) v.push_back(is_alpha(c) ? char(c | 0x20) : c);
  if (v.empty()) return std::nullopt;
  auto prefix_of = [&](std::string_view full, size_t min) { return v.size() >= min && full.substr(0, v.size()) == v; };
  if (prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || v == "1") return true;
  if (prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0") return false;
  return std::nullopt;
}

// is_local written as a literal: FALSE, TRUE, 'f', 'off', 0, ...
std::optional<bool> literal_bool(const Token& t, const LexOptions& options) {
  if (t.is_word("true")) return true;
  if (t.is_word("false")) return false;
  if (t.kind == TokenKind::kNumber) return t.text.find_first_not_of("0.") != std::string_view::npos;
  if (auto s = string_value(t, options)) return parse_bool(*s);
  return std::nullopt;
}

// set_config(name, value, is_local). bounds: the index of each argument's first token, then
// one past the closing ')' (or past the end of the statement when it is missing).
void set_config_call(Tokens t, const std::vector<size_t>& bounds, Sink& sink) {
  auto single = [&](size_t arg) { return bounds[arg + 1] - bounds[arg] == 2; };   // one token + ',' or ')'
  auto literal = [&](size_t arg) { return single(arg) ? string_value(t[bounds[arg]], sink.options) : std::nullopt; };
  const size_t args = bounds.size() - 1;
  auto name = args >= 1 ? literal(0) : std::nullopt;
  if (name)
    for (char& c : *name) c = (c >= 'A' && c <= 'Z') ? char(c | 0x20) : c;
  if (name && detail::is_transaction_scoped(*name)) return;
  const auto is_local = args == 3 && single(2) ? literal_bool(t[bounds[2]], sink.options) : std::nullopt;
  if (is_local == true) return;                    // like SET LOCAL: ends with the transaction
  const auto value = args == 3 ? literal(1) : std::nullopt;
  if (is_local != false || !name || !value) return sink.emit(EffectKind::kSetConfigNonLiteral, name.value_or(""));
  if (*name == "role")
    return *value == "none" ? sink.emit(EffectKind::kResetRole) : sink.emit(EffectKind::kSetRole, "role", *value, true);
  if (*name == "session_authorization")
    return sink.emit(EffectKind::kSetSessionAuthorization, *name, *value, true);
  sink.emit(EffectKind::kSetParameter, *name, *value, true);
}

std::optional<EffectKind> advisory_kind(std::string_view fn) {
  if (fn == "pg_advisory_lock" || fn == "pg_advisory_lock_shared" || fn == "pg_try_advisory_lock" ||
      fn == "pg_try_advisory_lock_shared")
    return EffectKind::kAdvisoryLock;
  if (fn == "pg_advisory_unlock" || fn == "pg_advisory_unlock_shared") return EffectKind::kAdvisoryUnlock;
  if (fn == "pg_advisory_unlock_all") return EffectKind::kAdvisoryUnlockAll;
  return std::nullopt;
}

std::optional<EffectKind> sequence_kind(std::string_view fn) {
  if (fn == "nextval" || fn == "setval") return EffectKind::kSequenceAdvance;
  if (fn == "currval" || fn == "lastval") return EffectKind::kSequenceRead;
  return std::nullopt;
}

// A call of a sequence function: reported, but not a reason to analyze the rest of a long text.
bool is_sequence_function(const Token& t) {
  if (t.kind != TokenKind::kIdentifier && t.kind != TokenKind::kQuotedIdentifier) return false;
  if (t.text.size() < 6 || t.text.size() > 9) return false;
  return sequence_kind(identifier_value(t)).has_value();
}

// The name of one of the functions this file looks for (all have an underscore; identifiers
// are at most 63 bytes, so longer texts need no look).
bool is_watched_function(const Token& t) {
  if (t.kind != TokenKind::kIdentifier && t.kind != TokenKind::kQuotedIdentifier) return false;
  if (t.text.size() > 70 || t.text.find('_') == std::string_view::npos) return false;
  const std::string name = identifier_value(t);
  return name == "set_config" || advisory_kind(name).has_value();
}

bool contains_ci(std::string_view text, std::string_view lower) {
  for (size_t i = 0; i + lower.size() <= text.size(); ++i)
    if (iequals(text.substr(i, lower.size()), lower)) return true;
  return false;
}
bool mentions_watched_function(std::string_view text) {
  return contains_ci(text, "advisory") || contains_ci(text, "set_config");
}

// Every call of a session advisory-lock function or of set_config among `t`, nested ones too.
void scan_calls(Tokens t, Sink& sink) {
  std::vector<size_t> bounds;
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    if (!t[i + 1].is("(")) continue;
    if (is_sequence_function(t[i])) {
      const std::string fn = identifier_value(t[i]);
      sink.emit(*sequence_kind(fn), fn);
      continue;
    }
    if (!is_watched_function(t[i])) continue;
    const std::string name = identifier_value(t[i]);
    // Arguments: split at commas at depth 1, up to the matching ')' (or the end of the tokens).
    bounds.assign(1, i + 2);
    size_t j = i + 2;
    for (int depth = 1; j < t.size(); ++j) {
      if (t[j].is("(") || t[j].is("[")) ++depth;
      else if ((t[j].is(")") || t[j].is("]")) && --depth == 0) break;
      else if (depth == 1 && t[j].is(",")) bounds.push_back(j + 1);
    }
    bounds.push_back(j + 1);
    if (bounds.size() == 2 && bounds[0] == j) bounds.pop_back();   // no arguments: f()
    if (const auto advisory = advisory_kind(name)) sink.emit(*advisory, name, std::string(span_text(t, i + 2, j)));
    else set_config_call(t, bounds, sink);
  }
}

// ---- Statements -------------------------------------------------------------------------------

// A statement or DO body is analyzed from its first kHeadTokens significant tokens, which bounds
// memory whatever the client sends; Tail remembers what the rest holds that could matter.
constexpr size_t kHeadTokens = 4096;

struct Tail {
  bool truncated = false;
  bool call = false;     // a watched function name (in DO bodies: also a mention inside a string)
  bool into = false;     // INTO: perhaps SELECT INTO TEMP
  bool row_lock = false; // FOR: perhaps FOR UPDATE
  bool dml = false;      // INSERT, UPDATE, DELETE, MERGE: perhaps a data-modifying CTE

  void see(const Token& t, bool strings_are_code) {
    truncated = true;
    if (is_watched_function(t)) call = true;
    else if (t.is_word("into")) into = true;
    else if (t.is_word("for")) row_lock = true;
    else if (t.is_word("insert") || t.is_word("update") || t.is_word("delete") || t.is_word("merge")) dml = true;
    else if (strings_are_code && (t.kind == TokenKind::kString || t.kind == TokenKind::kDollarString))
      call = call || mentions_watched_function(t.text);
  }
};

// Fills `head` with up to kHeadTokens significant tokens of `text` and `tail` with the rest.
void collect(std::string_view text, const LexOptions& options, std::vector<Token>& head, Tail& tail) {
  Lexer lexer(text, options);
  for (Token t = lexer.next(); t.kind != TokenKind::kEnd; t = lexer.next()) {
    if (head.size() < kHeadTokens) head.push_back(t);
    else tail.see(t, true);
  }
}

// A DO block's body, and the string literals inside it down to `levels` deep: calls only. At the
// last level a string that merely mentions a watched function is reported as kUnanalyzed.
void scan_body(std::string_view body, int levels, Sink& sink) {
  std::vector<Token> head;
  Tail tail;
  collect(body, sink.options, head, tail);
  scan_calls(head, sink);
  if (tail.call) sink.emit(EffectKind::kUnanalyzed);
  for (const Token& t : head) {
    if (t.kind != TokenKind::kString && t.kind != TokenKind::kDollarString) continue;
    if (levels <= 1) {
      if (mentions_watched_function(t.text)) sink.emit(EffectKind::kUnanalyzed);
    } else if (t.kind == TokenKind::kDollarString) {
      scan_body(dollar_body(t), levels - 1, sink);
    } else if (const auto s = string_value(t, sink.options)) {
      scan_body(*s, levels - 1, sink);
    } else if (mentions_watched_function(t.text)) {
      sink.emit(EffectKind::kUnanalyzed);        // escapes this analyzer does not decode
    }
  }
}

void classify_statement(Tokens t, const Tail& tail, SessionEffects& out, const LexOptions& options) {
  Sink sink{out, uint32_t(out.statement_count()), options};
  const size_t effects_before = out.effects().size();
  StatementClass cls = detail::classify_command(t, sink);
  scan_calls(t, sink);
  if (t[0].is_word("do")) {                        // DO [LANGUAGE l] body [LANGUAGE l]
    for (const Token& body : t.subspan(1)) {
      if (body.kind == TokenKind::kDollarString) {
        scan_body(dollar_body(body), 3, sink);
        break;
      }
      if (body.kind == TokenKind::kString) {
        if (const auto text = string_value(body, options)) scan_body(*text, 3, sink);
        else if (mentions_watched_function(body.text)) sink.emit(EffectKind::kUnanalyzed);
        break;
      }
    }
  }
  if (tail.truncated) {
    // What the head cannot tell: an INTO of a query, a call, values cut short; a query's class.
    const bool with = t[0].is_word("with") || t[0].is("(");
    const bool query = with || t[0].is_word("select") || t[0].is_word("values") || t[0].is_word("table") ||
                       t[0].is_word("explain");
    const bool emitted = out.effects().size() > effects_before;
    if (tail.call || (query && tail.into) || emitted) sink.emit(EffectKind::kUnanalyzed);
    const bool may_write = tail.into || tail.row_lock || (with && tail.dml);
    if (cls == StatementClass::kRead && may_write) cls = StatementClass::kWrite;
  }
  out.add_statement(cls);
}

}  // namespace

std::string_view class_name(StatementClass c) {
  switch (c) {
    case StatementClass::kOther: return "other";
    case StatementClass::kTransactionControl: return "transaction control";
    case StatementClass::kRead: return "read";
    case StatementClass::kWrite: return "write";
    case StatementClass::kDdl: return "DDL";
    case StatementClass::kSession: return "session";
  }
  return "other";
}

std::string_view feature_name(EffectKind kind) {
  switch (kind) {
    case EffectKind::kSetParameter: return "SET";
    case EffectKind::kSetParameterFromCurrent: return "SET FROM CURRENT";
    case EffectKind::kResetParameter: return "RESET";
    case EffectKind::kResetAll: return "RESET ALL";
    case EffectKind::kSetRole: return "SET ROLE";
    case EffectKind::kResetRole: return "RESET ROLE";
    case EffectKind::kSetSessionAuthorization: return "SET SESSION AUTHORIZATION";
    case EffectKind::kResetSessionAuthorization: return "RESET SESSION AUTHORIZATION";
    case EffectKind::kSetConfigNonLiteral: return "set_config with non-literal arguments";
    case EffectKind::kTempTable: return "temporary table";
    case EffectKind::kTempObject: return "temporary object";
    case EffectKind::kPrepare: return "SQL PREPARE";
    case EffectKind::kDeallocate: return "DEALLOCATE";
    case EffectKind::kDeallocateAll: return "DEALLOCATE ALL";
    case EffectKind::kHoldCursor: return "WITH HOLD cursor";
    case EffectKind::kCloseCursor: return "CLOSE";
    case EffectKind::kCloseAllCursors: return "CLOSE ALL";
    case EffectKind::kListen: return "LISTEN";
    case EffectKind::kUnlisten: return "UNLISTEN";
    case EffectKind::kUnlistenAll: return "UNLISTEN *";
    case EffectKind::kLoad: return "LOAD";
    case EffectKind::kAdvisoryLock: return "session advisory lock";
    case EffectKind::kAdvisoryUnlock: return "advisory unlock";
    case EffectKind::kAdvisoryUnlockAll: return "pg_advisory_unlock_all";
    case EffectKind::kDiscardAll: return "DISCARD ALL";
    case EffectKind::kDiscardTemp: return "DISCARD TEMP";
    case EffectKind::kDiscardPlans: return "DISCARD PLANS";
    case EffectKind::kDiscardSequences: return "DISCARD SEQUENCES";
    case EffectKind::kSequenceAdvance: return "nextval/setval";
    case EffectKind::kSequenceRead: return "currval/lastval";
    case EffectKind::kUnanalyzed: return "statement too complex to analyze";
  }
  return "unknown";
}

bool SessionEffects::has(EffectKind kind) const {
  for (const Effect& e : effects_)
    if (e.kind == kind) return true;
  return false;
}

bool may_have_session_effects(std::string_view sql, const LexOptions&) {
  return !prescan(sql).has_value();
}

std::optional<StatementClass> effect_free_class(std::string_view sql) { return prescan(sql); }

SessionEffects classify_session_effects(std::string_view sql, const LexOptions& options) {
  if (const auto cls = prescan(sql)) {
    SessionEffects out;
    out.add_statement(*cls);
    return out;
  }
  return classify_session_effects_slowly(sql, options);
}

SessionEffects classify_session_effects_slowly(std::string_view sql, const LexOptions& options) {
  // One statement at a time: memory is its first kHeadTokens tokens, however long the text.
  SessionEffects out;
  Lexer lexer(sql, options);
  StatementBoundary boundary;
  std::vector<Token> head;
  Tail tail;
  for (;;) {
    const Token t = lexer.next();
    const bool end = t.kind == TokenKind::kEnd;
    if (end || boundary.ends_statement(t)) {
      if (!head.empty()) classify_statement(head, tail, out, options);
      head.clear();
      tail = Tail();
      if (end) return out;
    } else if (head.size() < kHeadTokens) {
      head.push_back(t);
    } else {
      tail.see(t, false);
    }
  }
}

}  // namespace pgrelay::analyzer
