// What the server's catalog says about the names a statement uses, and the two judgements the
// cache makes from it: may this read be cached (and on which tables does its answer depend),
// and which tables does this write change.
//
// The catalog facts come through `CatalogView`, an interface: the proxy fills one per
// (database, search_path, role) from the queries in catalog_queries.h; tests pass an in-memory
// one. A name the view has not fetched yet is "pending": the statement goes to the server this
// time, and a later execution can be cached once the facts are in. Pure; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cache/access_analysis.h"

namespace pgrelay::cache {

using Oid = uint32_t;

struct RelationInfo {
  bool found = false;        // the name resolves to a relation under this search_path
  Oid oid = 0;
  char kind = 0;             // pg_class.relkind: 'r' table, 'p' partitioned, 'm' materialized view, 'v' view, 'f' foreign, 'S' sequence, ...
  char persistence = 'p';    // pg_class.relpersistence: 'p' permanent, 'u' unlogged, 't' temporary
  bool row_security = false; // relrowsecurity: answers depend on policies (and often on settings no key holds)
  bool system = false;       // in pg_catalog, information_schema or pg_toast
  // A write to it may change rows elsewhere: user triggers, rules, foreign keys referencing it
  // with ON DELETE/UPDATE CASCADE, SET NULL or SET DEFAULT, or a column default, a CHECK
  // constraint or a column's domain constraint that calls a volatile function not built in.
  bool writes_beyond = false;
  std::vector<Oid> family;   // itself, its inheritance ancestors and descendants (partitions)
  std::string view_definition;   // kind 'v': pg_get_viewdef under the same search_path
};

struct RoutineInfo {
  bool found = false;       // at least one overload under this search_path
  bool cacheable = false;   // every overload IMMUTABLE (operators and casts: see catalog_queries.h)
  bool may_write = false;   // a VOLATILE overload outside pg_catalog: it may write any table
};

class CatalogView {
 public:
  virtual ~CatalogView() = default;
  // nullptr: not fetched yet (pending). A fetched name that does not exist has found = false.
  virtual const RelationInfo* relation(const RelationName& name) const = 0;
  virtual const RoutineInfo* routine(const RoutineName& name) const = 0;
};

enum class Verdict { kCacheable, kNotCacheable, kPending };

struct ReadJudgement {
  Verdict verdict = Verdict::kNotCacheable;
  std::string reason;                        // why not, or what is pending
  std::vector<Oid> depends_on;               // kCacheable: the tables whose generations the entry records (sorted, unique)
  std::vector<RelationName> missing_relations;   // kPending: what to fetch
  std::vector<RoutineName> missing_routines;
};

// May the read `analysis` describes be answered from the cache, and on what does the answer
// depend? Views are followed through their definitions (each analyzed like a statement),
// nested up to a small depth, beyond which the read is not cached.
ReadJudgement judge_read(const AccessAnalysis& analysis, const CatalogView& catalog);

struct WriteJudgement {
  bool whole_database = false;   // invalidate every entry of the database
  bool schema_may_change = false;   // and drop its catalog facts (DDL, CALL, DO, ...)
  std::string reason;            // why the whole database
  std::vector<Oid> tables;       // otherwise: the tables whose generations move (sorted, unique)
};

// What a statement changes, for invalidation when its transaction commits. Anything unknown
// (a name not fetched, a view target, a trigger, a default or constraint calling a volatile user
// function, a volatile user function, operator or cast called directly or in a view read)
// widens to the whole database: an over-invalidation costs a miss, a missed one a wrong answer.
// Reads are judged too: reading a view may call a function that writes.
WriteJudgement judge_write(const AccessAnalysis& analysis, const CatalogView& catalog);

}  // namespace pgrelay::cache
