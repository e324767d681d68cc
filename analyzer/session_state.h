// Which statements leave state behind on a server connection beyond their transaction, and each statement's class.
//
// In transaction pooling the proxy hands a server connection to another client once a
// transaction ends, so anything that outlives the transaction (a SET, a temporary table, a
// LISTEN, a session advisory lock, ...) must either be tracked and replayed by the proxy or pin
// the client to its connection. classify_session_effects() finds those statements in the text
// of a simple Query (any number of statements) or of one Parse'd statement, and reports what each
// does, in order, so the proxy can also implement RESET and DISCARD semantics.
//
// It reads the text, not the catalog: a function the statement calls may do anything, and is
// only caught when it is one of the built-ins named below. Known limits:
//  - Inside function bodies only calls are seen: a DO block's body (its string or dollar-quoted
//    argument, and string literals within it, two levels deep) is scanned for the advisory-lock
//    functions and set_config, conservatively (a call in a RAISE message counts too; a deeper
//    string naming them gives kUnanalyzed); a SET, LISTEN or CREATE TEMP TABLE inside a DO body,
//    and whatever a called user-defined function or procedure does, is not detected.
//  - Memory is bounded whatever the text: a statement (or DO body) is analyzed from its first
//    4096 tokens; in the rest only the names of the functions above (kUnanalyzed), a query's
//    INTO (kUnanalyzed, and a write), FOR and, after WITH, INSERT/UPDATE/DELETE/MERGE (a write)
//    are looked for, and a long statement with any effect also gets kUnanalyzed (values are cut).
//  - Session state outside this list is not reported: dblink connections, large-object
//    descriptors, extension-specific state. Sequence state is reported only as explicit calls of
//    nextval/setval and currval/lastval: an INSERT's DEFAULT nextval() is not in the text.
//  - Identifiers written with Unicode escapes (U&"pg\005fadvisory_lock") are not decoded, and
//    standard_conforming_strings must be passed in when the session turned it off.
//  - Effects are what the statements do when they run and succeed. Whether one survives a
//    rollback depends on its kind (a SET or a temporary table inside a rolled-back transaction
//    is undone; a session advisory lock or a SQL PREPARE is not): that is the caller's to judge.
//  - The text is not validated: a statement PostgreSQL would reject may still be reported.
//    (A simple Query is parsed whole before anything runs, so a syntax error anywhere means no
//    statement of it has an effect; reporting one anyway only costs a pin.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "analyzer/lexer.h"

namespace pgrelay::analyzer {

// Coarse statement class; the cache work refines it.
enum class StatementClass : uint8_t {
  kOther,               // DO, CALL, EXECUTE, FETCH, NOTIFY, LOCK, VACUUM, ANALYZE, ...
  kTransactionControl,  // BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE,
                        // PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED
  kRead,                // SELECT, VALUES, TABLE, SHOW, COPY TO, EXPLAIN (unless ANALYZE of a write)
  kWrite,               // INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM, REFRESH, SELECT INTO,
                        // SELECT FOR UPDATE/SHARE, WITH with data-modifying CTEs
  kDdl,                 // CREATE, ALTER, DROP, COMMENT, GRANT, REVOKE, SECURITY LABEL, IMPORT FOREIGN
                        // SCHEMA, REINDEX
  kSession,             // SET, RESET, DISCARD, LISTEN, UNLISTEN, PREPARE, DEALLOCATE, DECLARE, CLOSE, LOAD
};

// "other", "transaction control", "read", "write", "DDL", "session".
std::string_view class_name(StatementClass c);

// What a statement leaves on the connection. Kinds marked "clears" remove state rather than add it.
enum class EffectKind : uint8_t {
  kSetParameter,               // SET name TO value, set_config(name, value, false): name, value
  kSetParameterFromCurrent,    // SET name FROM CURRENT: name (the value is not in the text)
  kResetParameter,             // RESET name, SET name TO DEFAULT (clears): name
  kResetAll,                   // RESET ALL (clears parameters; PostgreSQL exempts role and session_authorization)
  kSetRole,                    // SET ROLE r: name "role", value r as written
  kResetRole,                  // RESET ROLE, SET ROLE NONE (clears)
  kSetSessionAuthorization,    // SET SESSION AUTHORIZATION u: name "session_authorization", value u as written
  kResetSessionAuthorization,  // RESET SESSION AUTHORIZATION, ... DEFAULT (clears)
  kSetConfigNonLiteral,        // set_config(...) whose name, value or is_local is not a literal; name if known
  kTempTable,                  // CREATE TEMP TABLE, SELECT INTO TEMP, CREATE TABLE pg_temp.x: name
  kTempObject,                 // CREATE TEMP SEQUENCE/VIEW, CREATE FUNCTION pg_temp.f, ...: name, value = object kind
  kPrepare,                    // SQL PREPARE name
  kDeallocate,                 // DEALLOCATE [PREPARE] name (clears)
  kDeallocateAll,              // DEALLOCATE [PREPARE] ALL (clears)
  kHoldCursor,                 // DECLARE name ... WITH HOLD ... FOR
  kCloseCursor,                // CLOSE name (clears)
  kCloseAllCursors,            // CLOSE ALL (clears)
  kListen,                     // LISTEN channel
  kUnlisten,                   // UNLISTEN channel (clears)
  kUnlistenAll,                // UNLISTEN * (clears)
  kLoad,                       // LOAD 'library': name = library
  kAdvisoryLock,               // pg_[try_]advisory_lock[_shared](...): name = function, value = arguments as written
  kAdvisoryUnlock,             // pg_advisory_unlock[_shared](...) (clears one): name, value as above
  kAdvisoryUnlockAll,          // pg_advisory_unlock_all() (clears)
  kDiscardAll,                 // DISCARD ALL (clears everything above)
  kDiscardTemp,                // DISCARD TEMP[ORARY] (clears temporary objects)
  kDiscardPlans,               // DISCARD PLANS (drops cached plans: no lasting state)
  kDiscardSequences,           // DISCARD SEQUENCES (clears sequence state)
  kSequenceAdvance,            // nextval(...), setval(...): name = function (sets currval/lastval state)
  kSequenceRead,               // currval(...), lastval(): name = function (reads that state)
  kUnanalyzed,                 // something that may matter was not analyzed (see the limits above)
};
inline constexpr size_t kEffectKindCount = size_t(EffectKind::kUnanalyzed) + 1;

// For error messages: "SET", "SET ROLE", "temporary table", "SQL PREPARE", "LISTEN",
// "session advisory lock", ... as in "feature not supported in transaction pooling: SET ROLE".
std::string_view feature_name(EffectKind kind);

struct Effect {
  EffectKind kind = EffectKind::kSetParameter;
  // Parameter names are folded to lower case (PostgreSQL compares them case-insensitively) and
  // dotted names joined with '.'; other names are identifier values (lower case unless quoted).
  std::string name;
  // For SET: the SQL text after TO or = as written ('UTC', a, "B", 5), replayable with
  // SET name TO value (for name "timezone" from SET TIME ZONE: replay with SET TIME ZONE value).
  // For set_config (via_set_config): the decoded string, replayable with
  // set_config(name, value, false) -- list parameters such as search_path read the two forms
  // differently, so they are not interchangeable.
  std::string value;
  bool via_set_config = false;
  uint32_t statement = 0;      // index of the statement in the text, from 0

  bool operator==(const Effect&) const = default;
};

// The classes of all statements of a text and the effects they have, in text order.
// Cheap to build and to test when there are none: no allocation for up to 15 statements and no
// effects. At most kMaxEffects effects are kept: past that, one kUnanalyzed effect stands for
// the rest, so a text of a million LISTENs costs bounded memory.
inline constexpr size_t kMaxEffects = 1024;

class SessionEffects {
 public:
  bool any() const { return !effects_.empty(); }
  const std::vector<Effect>& effects() const { return effects_; }
  bool has(EffectKind kind) const;
  // The first effect, for error messages; precondition: any().
  const Effect& first() const { return effects_.front(); }

  // Non-empty statements; ";;" and comment-only texts have none.
  size_t statement_count() const { return classes_.size(); }
  StatementClass statement_class(size_t i) const { return StatementClass(classes_[i]); }

  // Building (the classifier, tests).
  void add_statement(StatementClass c) { classes_.push_back(char(c)); }
  void add_effect(Effect e) {
    if (effects_.size() > kMaxEffects) return;
    if (effects_.size() == kMaxEffects) e = Effect{EffectKind::kUnanalyzed, {}, {}, false, e.statement};
    effects_.push_back(std::move(e));
  }

 private:
  std::vector<Effect> effects_;
  std::string classes_;    // one char per statement: the small-string buffer avoids an allocation
};

// The hot-path check: false only when the text provably has no session effect, decided by one
// pass over the bytes without tokenizing: a single statement starting with SELECT, INSERT,
// UPDATE, DELETE, VALUES, TABLE, SHOW or transaction control, that has no ';' before its end and
// does not contain "advisory" or "set_config" as in pg_advisory_lock (nor, for SELECT, VALUES,
// TABLE and SHOW, the words INTO or FOR), wherever they are, strings and comments included.
// true means "run classify_session_effects".
[[nodiscard]] bool may_have_session_effects(std::string_view sql, const LexOptions& options = {});
// The same pre-scan: the class of the one statement of `sql` when it has no session effect, or
// nullopt. Only words outside numbers and plain strings decide it, never a constant's content
// (a word inside a string may only send a text to the full path): a text that differs from an
// accepted one only inside those constants has no session effect either, and the same class.
[[nodiscard]] std::optional<StatementClass> effect_free_class(std::string_view sql);

// Classifies every statement of `sql` (a simple Query's text or a Parse'd statement). Texts that
// pass the may_have_session_effects pre-scan are answered from it without tokenizing.
// For a Parse'd statement the effects happen at Execute, not at Parse.
[[nodiscard]] SessionEffects classify_session_effects(std::string_view sql, const LexOptions& options = {});

// The same without the pre-scan: always tokenizes. For tests and benchmarks that compare the two.
[[nodiscard]] SessionEffects classify_session_effects_slowly(std::string_view sql, const LexOptions& options = {});

}  // namespace pgrelay::analyzer
