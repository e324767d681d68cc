// What a statement text reads, writes and calls, from PostgreSQL's own grammar (libpg_query): the
// text half of the cache's "may this be cached?" and "what does this invalidate?".
//
// Only what the text says. Whether a name is an ordinary table, a view, a temporary table or has
// row-level security, and whether a function is IMMUTABLE, needs the server's catalog; this
// analysis lists the names so that a catalog check can answer for them (unresolved names are
// not cacheable). Pure: no I/O, no clocks, no shared state; safe on any thread.
//
// Cost: one full parse (tens of microseconds for a typical query); callers memoize the result
// per statement text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgrelay::cache {

// A relation as the statement names it: schema empty when unqualified (resolved by the
// session's search_path, which is why search_path is part of a cache key).
struct RelationName {
  std::string schema;
  std::string name;
  auto operator<=>(const RelationName&) const = default;
};

// What runs code chosen by name: a function call, an operator, or a cast to a type (the type's
// input or cast function runs). The catalog check decides whether each may be cached.
enum class RoutineKind { kFunction, kOperator, kCast };

// A routine as the statement names it (schema empty when unqualified).
struct RoutineName {
  std::string schema;
  std::string name;
  RoutineKind kind = RoutineKind::kFunction;
  auto operator<=>(const RoutineName&) const = default;
};

enum class StatementKind {
  kRead,          // SELECT, VALUES, TABLE, WITH ... SELECT with no data-modifying part
  kWrite,         // INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM, SELECT INTO, REFRESH MATERIALIZED VIEW
  kTransaction,   // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ... (see `transaction`)
  kUtility,       // changes no table's rows and is not cached: SET, SHOW, DISCARD, LISTEN, PREPARE, cursors, LOCK, VACUUM, EXPLAIN, COPY TO, ...
  kDdl,           // schema and privilege changes: may change what any read returns
  kUnknown,       // not parsed (PostgreSQL's grammar rejects it, or a newer server's syntax)
};

// What a transaction-control or SET statement says about the transaction's snapshot.
enum class Isolation {
  kUnspecified,      // nothing said (the session's default applies)
  kReadCommitted,    // also READ UNCOMMITTED, which PostgreSQL runs as READ COMMITTED
  kRepeatableRead,
  kSerializable,
  kImportedSnapshot, // SET TRANSACTION SNAPSHOT
};

struct AccessAnalysis {
  StatementKind kind = StatementKind::kUnknown;
  size_t statements = 0;   // statements in the text (a simple Query may carry several)

  // True when nothing in the text forbids caching: a single read with no locking clause, no
  // SQL value function (CURRENT_TIMESTAMP, CURRENT_USER, ...), no time-dependent literal
  // ('now', 'today', ...), no TABLESAMPLE, no catalog relation. The catalog check of `reads`
  // and `routines` still decides.
  bool cacheable_text = false;
  std::string not_cacheable;   // why not, when !cacheable_text (for SHOW CACHES and metrics)
  bool locks_rows = false;     // FOR UPDATE/SHARE (a standby refuses it)

  std::vector<RelationName> reads;     // relations read (CTE names excluded, scoped as PostgreSQL does)
  std::vector<RelationName> writes;    // relations whose rows it may change
  std::vector<RoutineName> routines;   // functions called, operators used, types cast to

  // The statement may change rows of relations it does not name, or what names resolve to
  // (CALL, DO, EXECUTE of a SQL prepared statement, DDL, GRANT, a text this grammar does not
  // parse): a commit after it invalidates the database.
  bool writes_unknown = false;
  // Of those, the ones that may also change the schema (DDL, CALL, DO, EXECUTE, COMMIT PREPARED,
  // an unparsed text): the catalog facts pgrelay fetched may be stale after them.
  bool schema_may_change = false;
  // CALL or DO: may COMMIT inside and run on, so its writes are visible before it ends.
  bool commits_inside = false;
  // COMMIT or END (AND CHAIN or not): what the transaction wrote becomes visible when it completes.
  bool commits = false;
  // CREATE TEMP TABLE/VIEW/SEQUENCE: from now on this session's unqualified names may resolve to
  // its own objects (pg_temp comes first in every search_path), so its reads are not cached.
  bool creates_temporary = false;

  // SET/RESET of search_path or role (or RESET ALL, DISCARD ALL, SET SESSION AUTHORIZATION), or
  // a set_config() call: later statements may resolve names differently.
  bool changes_name_resolution = false;

  // kTransaction and kUtility: BEGIN/START TRANSACTION/SET TRANSACTION isolation, or a SET of
  // transaction_isolation or default_transaction_isolation (`sets_default_isolation`).
  Isolation isolation = Isolation::kUnspecified;
  bool sets_default_isolation = false;
  bool read_only = false;   // BEGIN READ ONLY / SET TRANSACTION READ ONLY
};

// Parses `sql` (one or more statements, as a simple Query carries them) and lists its accesses.
// Never throws. A text this grammar rejects yields kind kUnknown with writes_unknown set: usually
// the server rejects it too, but a newer server may accept syntax PostgreSQL 15's grammar does not,
// and a write nobody can name must still invalidate.
AccessAnalysis analyze_access(std::string_view sql);

// 'now', 'today', 'tomorrow', 'yesterday' (any case, surrounding spaces): a date/time input
// that PostgreSQL evaluates against the clock. A parameter value like that makes an otherwise
// cacheable execution uncacheable.
bool time_dependent_literal(std::string_view value);

}  // namespace pgrelay::cache
