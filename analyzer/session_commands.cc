// Per-statement rules: a statement's class and what its command (SET, CREATE TEMP, PREPARE, ...) leaves on the session.
//
// Grammar references: https://www.postgresql.org/docs/15/sql-set.html, sql-reset.html,
// sql-set-session-authorization.html, sql-set-role.html, sql-set-transaction.html,
// sql-createtable.html, sql-selectinto.html, sql-declare.html, sql-discard.html.
#include "analyzer/session_commands.h"

#include <initializer_list>
#include <optional>
#include <utility>

namespace pgrelay::analyzer::detail {
namespace {

constexpr size_t kNone = size_t(-1);

bool word(Tokens t, size_t i, std::string_view w) { return i < t.size() && t[i].is_word(w); }
bool punct(Tokens t, size_t i, std::string_view p) { return i < t.size() && t[i].is(p); }
bool any_word(Tokens t, size_t i, std::initializer_list<std::string_view> words) {
  for (auto w : words)
    if (word(t, i, w)) return true;
  return false;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = char(c + ('a' - 'A'));
  return out;
}

bool is_name(const Token& t) {
  return t.kind == TokenKind::kIdentifier || t.kind == TokenKind::kQuotedIdentifier;
}

// A possibly qualified name starting at t[i]: parts joined with '.', `schema` set when qualified.
struct Name {
  std::string text;
  std::string schema;
  size_t end = 0;      // index just past the name
};
Name qualified_name(Tokens t, size_t i, bool fold) {
  Name n;
  n.end = i;
  size_t parts = 0;
  while (n.end < t.size() && is_name(t[n.end])) {
    std::string part = identifier_value(t[n.end]);
    if (fold) part = lower(part);
    if (parts++ == 0) n.schema = part; else n.text.push_back('.');
    n.text += part;
    ++n.end;
    if (!(punct(t, n.end, ".") && n.end + 1 < t.size() && is_name(t[n.end + 1]))) break;
    ++n.end;
  }
  if (parts < 2) n.schema.clear();
  return n;
}

bool is_pg_temp(std::string_view schema) {
  return schema == "pg_temp" || schema.substr(0, 8) == "pg_temp_";
}

// Tokens [i, end) are exactly one word among `words`.
bool only_word(Tokens t, size_t i, std::initializer_list<std::string_view> words) {
  return i + 1 == t.size() && any_word(t, i, words);
}

void set_role(Tokens t, size_t i, Sink& sink) {
  // NONE, DEFAULT (SET role TO DEFAULT), or the string 'none' (compared case-sensitively).
  const bool none = i + 1 == t.size() && (t[i].is_word("none") || t[i].is_word("default") ||
                                          string_value(t[i], sink.options).value_or("") == "none");
  if (none) sink.emit(EffectKind::kResetRole);
  else sink.emit(EffectKind::kSetRole, "role", std::string(span_text(t, i, t.size())));
}

void set_authorization(Tokens t, size_t i, Sink& sink) {
  if (only_word(t, i, {"default"})) sink.emit(EffectKind::kResetSessionAuthorization);
  else sink.emit(EffectKind::kSetSessionAuthorization, "session_authorization", std::string(span_text(t, i, t.size())));
}

// SET name {TO|=} value, with the value starting at t[i].
void assign(Tokens t, const std::string& name, size_t i, Sink& sink) {
  if (name == "role") return set_role(t, i, sink);
  if (name == "session_authorization") return set_authorization(t, i, sink);
  if (is_transaction_scoped(name)) return;
  if (only_word(t, i, {"default"})) sink.emit(EffectKind::kResetParameter, name);
  else sink.emit(EffectKind::kSetParameter, name, std::string(span_text(t, i, t.size())));
}

// SET SESSION CHARACTERISTICS AS TRANSACTION mode [, ...], from just after CHARACTERISTICS.
void characteristics(Tokens t, size_t i, Sink& sink) {
  if (word(t, i, "as") && word(t, i + 1, "transaction")) i += 2;
  while (i < t.size()) {
    if (punct(t, i, ",")) {
      ++i;
    } else if (word(t, i, "isolation") && word(t, i + 1, "level")) {
      i += 2;
      const auto [level, words] = [&]() -> std::pair<std::string_view, size_t> {
        if (word(t, i, "serializable")) return {"'serializable'", 1};
        if (word(t, i, "repeatable") && word(t, i + 1, "read")) return {"'repeatable read'", 2};
        if (word(t, i, "read") && word(t, i + 1, "committed")) return {"'read committed'", 2};
        if (word(t, i, "read") && word(t, i + 1, "uncommitted")) return {"'read uncommitted'", 2};
        return {"", 0};
      }();
      if (words == 0) return;
      sink.emit(EffectKind::kSetParameter, "default_transaction_isolation", std::string(level));
      i += words;
    } else if (word(t, i, "read") && any_word(t, i + 1, {"only", "write"})) {
      sink.emit(EffectKind::kSetParameter, "default_transaction_read_only", word(t, i + 1, "only") ? "on" : "off");
      i += 2;
    } else if (word(t, i, "deferrable")) {
      sink.emit(EffectKind::kSetParameter, "default_transaction_deferrable", "on");
      i += 1;
    } else if (word(t, i, "not") && word(t, i + 1, "deferrable")) {
      sink.emit(EffectKind::kSetParameter, "default_transaction_deferrable", "off");
      i += 2;
    } else {
      return;
    }
  }
}

void set_command(Tokens t, Sink& sink) {
  size_t i = 1;
  if (word(t, i, "local")) return;                 // SET LOCAL ends with the transaction
  if (word(t, i, "session")) {
    if (word(t, i + 1, "characteristics")) return characteristics(t, i + 2, sink);
    ++i;
  }
  // The generic forms first, so that "SET role = x" and "SET time_zone TO x" read as assignments.
  const Name name = qualified_name(t, i, true);
  if (!name.text.empty()) {
    const size_t j = name.end;
    if (punct(t, j, "=") || word(t, j, "to")) return assign(t, name.text, j + 1, sink);
    if (word(t, j, "from") && word(t, j + 1, "current")) {
      if (!is_transaction_scoped(name.text)) sink.emit(EffectKind::kSetParameterFromCurrent, name.text);
      return;
    }
  }
  if (any_word(t, i, {"transaction", "constraints"})) return;   // this transaction only
  if (word(t, i, "role")) return set_role(t, i + 1, sink);
  if (word(t, i, "authorization")) return set_authorization(t, i + 1, sink);
  if (word(t, i, "time") && word(t, i + 1, "zone")) {
    if (only_word(t, i + 2, {"local", "default"})) sink.emit(EffectKind::kResetParameter, "timezone");
    else sink.emit(EffectKind::kSetParameter, "timezone", std::string(span_text(t, i + 2, t.size())));
    return;
  }
  if (word(t, i, "schema")) {
    sink.emit(EffectKind::kSetParameter, "search_path", std::string(span_text(t, i + 1, t.size())));
    return;
  }
  if (word(t, i, "names")) {
    const bool reset = i + 1 >= t.size() || only_word(t, i + 1, {"default"});
    if (reset) sink.emit(EffectKind::kResetParameter, "client_encoding");
    else sink.emit(EffectKind::kSetParameter, "client_encoding", std::string(span_text(t, i + 1, t.size())));
    return;
  }
  if (word(t, i, "xml") && word(t, i + 1, "option")) {
    sink.emit(EffectKind::kSetParameter, "xmloption", std::string(span_text(t, i + 2, t.size())));
    return;
  }
  // A form this classifier does not know: report it rather than miss it.
  sink.emit(EffectKind::kSetParameter, name.text, std::string(span_text(t, name.end, t.size())));
}

void reset_command(Tokens t, Sink& sink) {
  if (word(t, 1, "all")) return sink.emit(EffectKind::kResetAll);
  if (word(t, 1, "session") && word(t, 2, "authorization")) return sink.emit(EffectKind::kResetSessionAuthorization);
  if (word(t, 1, "time") && word(t, 2, "zone")) return sink.emit(EffectKind::kResetParameter, "timezone");
  if (word(t, 1, "transaction")) return;           // RESET TRANSACTION ISOLATION LEVEL
  const std::string name = qualified_name(t, 1, true).text;
  if (name == "role") return sink.emit(EffectKind::kResetRole);
  if (name == "session_authorization") return sink.emit(EffectKind::kResetSessionAuthorization);
  if (is_transaction_scoped(name)) return;
  sink.emit(EffectKind::kResetParameter, name);
}

bool on_commit_drop(Tokens t) {
  for (size_t i = 0; i + 2 < t.size(); ++i)
    if (t[i].is_word("on") && t[i + 1].is_word("commit") && t[i + 2].is_word("drop")) return true;
  return false;
}

// CREATE [OR REPLACE] [GLOBAL|LOCAL] [TEMP|TEMPORARY] [UNLOGGED] [RECURSIVE] kind [IF NOT EXISTS] name
void create_command(Tokens t, Sink& sink) {
  size_t i = 1;
  if (word(t, i, "or") && word(t, i + 1, "replace")) i += 2;
  bool temp = false;
  while (any_word(t, i, {"global", "local", "temp", "temporary", "unlogged", "recursive"})) {
    temp = temp || any_word(t, i, {"temp", "temporary"});
    ++i;
  }
  const std::string kind = i < t.size() && t[i].kind == TokenKind::kIdentifier ? identifier_value(t[i]) : "";
  ++i;
  if (word(t, i, "if") && word(t, i + 1, "not") && word(t, i + 2, "exists")) i += 3;
  const Name name = qualified_name(t, i, false);
  if (!temp && !is_pg_temp(name.schema)) return;
  if (on_commit_drop(t)) return;                   // gone when the transaction ends
  sink.emit(kind == "table" ? EffectKind::kTempTable : EffectKind::kTempObject, name.text, kind);
}

// SELECT ... INTO [TEMP|TEMPORARY|LOCAL|GLOBAL|UNLOGGED] [TABLE] name, from just after INTO.
void select_into(Tokens t, size_t i, Sink& sink) {
  bool temp = false;
  while (any_word(t, i, {"temporary", "temp", "local", "global", "unlogged", "table"})) {
    temp = temp || any_word(t, i, {"temp", "temporary"});
    ++i;
  }
  const Name name = qualified_name(t, i, false);
  if (temp || is_pg_temp(name.schema)) sink.emit(EffectKind::kTempTable, name.text, "table");
}

bool is_verb(Tokens t, size_t i) {
  return any_word(t, i, {"select", "values", "table", "insert", "update", "delete", "merge"});
}

// SELECT, VALUES, TABLE, WITH ..., ( SELECT ... ).
StatementClass query_class(Tokens t, Sink& sink) {
  bool writes = false;
  int depth = 0;
  size_t main = kNone;
  const bool with = t[0].is_word("with") || t[0].is("(");
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].is("(") || t[i].is("[")) {
      // A data-modifying CTE: WITH d AS (DELETE ... RETURNING *) SELECT ... (only WITH has them)
      if (with && any_word(t, i + 1, {"insert", "update", "delete", "merge"})) writes = true;
      ++depth;
    } else if ((t[i].is(")") || t[i].is("]")) && depth > 0) {
      --depth;
    } else if (depth == 0 && main == kNone && is_verb(t, i)) {
      main = i;
      if (!any_word(t, i, {"select", "values", "table"})) writes = true;
    } else if (depth == 0 && main != kNone && t[main].is_word("select") && t[i].is_word("into")) {
      select_into(t, i + 1, sink);
      writes = true;
    } else if (t[i].is_word("for") &&
               (any_word(t, i + 1, {"update", "share"}) || (word(t, i + 1, "no") && word(t, i + 2, "key")) ||
                (word(t, i + 1, "key") && word(t, i + 2, "share")))) {
      writes = true;                               // row locks: FOR UPDATE / SHARE / NO KEY UPDATE / KEY SHARE
    }
  }
  return writes ? StatementClass::kWrite : StatementClass::kRead;
}

// EXPLAIN [ANALYZE] [VERBOSE] statement, EXPLAIN (option [value], ...) statement.
StatementClass explain_class(Tokens t, Sink& sink) {
  size_t i = 1;
  bool analyze = false;
  if (punct(t, i, "(")) {
    int depth = 0;
    for (; i < t.size(); ++i) {
      if (t[i].is("(")) ++depth;
      else if (t[i].is(")") && --depth == 0) break;
      else if (any_word(t, i, {"analyze", "analyse"}))
        analyze = !(any_word(t, i + 1, {"false", "off"}) || (i + 1 < t.size() && t[i + 1].text == "0"));
    }
    ++i;
  } else {
    for (; any_word(t, i, {"analyze", "analyse", "verbose"}); ++i) analyze = analyze || !t[i].is_word("verbose");
  }
  // Nothing to explain, or EXPLAIN EXPLAIN ... (invalid; and recursion must stay shallow).
  if (i >= t.size() || t[i].is_word("explain")) return StatementClass::kRead;
  // EXPLAIN ANALYZE runs its statement (SELECT INTO TEMP included); plain EXPLAIN only plans it.
  SessionEffects planned_only;
  Sink scratch{planned_only, sink.statement, sink.options};
  const StatementClass inner = classify_command(t.subspan(i), analyze ? sink : scratch);
  return analyze && inner == StatementClass::kWrite ? StatementClass::kWrite : StatementClass::kRead;
}

}  // namespace

bool is_transaction_scoped(std::string_view parameter) {
  return parameter == "transaction_isolation" || parameter == "transaction_read_only" ||
         parameter == "transaction_deferrable";
}

StatementClass classify_command(Tokens t, Sink& sink) {
  using C = StatementClass;
  using K = EffectKind;
  if (t.empty()) return C::kOther;
  if (t[0].is("(")) return query_class(t, sink);
  const auto first = [&](std::initializer_list<std::string_view> words) { return any_word(t, 0, words); };
  const auto name_at = [&](size_t i) { return i < t.size() ? identifier_value(t[i]) : std::string(); };

  if (first({"select", "values", "table", "with"})) return query_class(t, sink);
  if (first({"insert", "update", "delete", "merge", "truncate", "refresh"})) return C::kWrite;
  if (first({"show"})) return C::kRead;
  if (first({"explain"})) return explain_class(t, sink);
  if (first({"copy"})) {                        // COPY t FROM ... writes; COPY t TO, COPY (query) TO read
    int depth = 0;
    for (size_t i = 1; i < t.size(); ++i) {
      if (t[i].is("(")) ++depth;
      else if (t[i].is(")")) --depth;
      else if (depth == 0 && t[i].is_word("from")) return C::kWrite;
    }
    return C::kRead;
  }
  if (first({"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"}))
    return C::kTransactionControl;
  if (first({"prepare"})) {
    if (word(t, 1, "transaction") && t.size() > 2 && t[2].kind == TokenKind::kString) return C::kTransactionControl;
    sink.emit(K::kPrepare, name_at(1));
    return C::kSession;
  }
  if (first({"create"})) {
    create_command(t, sink);
    return C::kDdl;
  }
  if (first({"alter", "drop", "comment", "grant", "revoke", "security", "import", "reindex"})) return C::kDdl;
  if (first({"set"})) set_command(t, sink);
  else if (first({"reset"})) reset_command(t, sink);
  else if (first({"discard"})) {
    if (word(t, 1, "all")) sink.emit(K::kDiscardAll);
    else if (any_word(t, 1, {"temp", "temporary"})) sink.emit(K::kDiscardTemp);
    else if (word(t, 1, "plans")) sink.emit(K::kDiscardPlans);
    else if (word(t, 1, "sequences")) sink.emit(K::kDiscardSequences);
  } else if (first({"listen"})) {
    sink.emit(K::kListen, name_at(1));
  } else if (first({"unlisten"})) {
    if (punct(t, 1, "*")) sink.emit(K::kUnlistenAll);
    else sink.emit(K::kUnlisten, name_at(1));
  } else if (first({"deallocate"})) {
    const size_t i = word(t, 1, "prepare") && t.size() > 2 ? 2 : 1;
    if (word(t, i, "all")) sink.emit(K::kDeallocateAll);
    else sink.emit(K::kDeallocate, name_at(i));
  } else if (first({"declare"})) {
    // DECLARE name [BINARY] [[ASENSITIVE|INSENSITIVE] [NO] SCROLL] CURSOR [{WITH|WITHOUT} HOLD] FOR query
    for (size_t i = 2; i < t.size() && !t[i].is_word("for"); ++i)
      if (t[i].is_word("with") && word(t, i + 1, "hold")) {
        sink.emit(K::kHoldCursor, name_at(1));
        break;
      }
  } else if (first({"close"})) {
    if (word(t, 1, "all")) sink.emit(K::kCloseAllCursors);
    else sink.emit(K::kCloseCursor, name_at(1));
  } else if (first({"load"})) {
    const auto lib = t.size() > 1 ? string_value(t[1], sink.options) : std::nullopt;
    sink.emit(K::kLoad, lib ? *lib : std::string(span_text(t, 1, t.size())));
  } else {
    return C::kOther;
  }
  return C::kSession;
}

}  // namespace pgrelay::analyzer::detail
