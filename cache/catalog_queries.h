// The catalog queries behind a CatalogView, their parameters and the parsing of their rows, and
// FetchedCatalog: the facts fetched so far for one (database, search_path, role).
//
// Both queries resolve names exactly as the client's statement would: they must run in a
// transaction whose search_path is the client's (`set_search_path_sql` first, same
// transaction) as the client's role, so "$user", pg_catalog's implicit place and unqualified
// names all mean what they mean to the client. Parameters are text arrays, one element per
// name (`text_array`); results come back one row per element, in order, in text format.
// Pure: builds strings and parses text; running them is the caller's (proxy/) job.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "cache/catalog.h"

namespace pgrelay::cache {

// SELECT set_config('search_path', $1, true): run first, in the same transaction.
std::string_view set_search_path_sql();

// Parameters $1 schemas ('' when unqualified), $2 names. Columns: position, oid, relkind,
// relpersistence, relrowsecurity, system, writes_beyond, family (oid[]), definition (views).
// A name that resolves to nothing has every column but the position NULL.
std::string_view relations_sql();

// Parameters $1 kinds ('f' function, 'o' operator, 'c' cast to a type), $2 schemas, $3 names.
// Columns: position, overloads, cacheable, may_write. Rules: a function is cacheable when every
// overload under the search_path is IMMUTABLE; an operator or cast when every function behind it
// is IMMUTABLE or lives in pg_catalog (built-in operators and type inputs that are not
// IMMUTABLE depend on settings the cache key holds, such as TimeZone, and never on the clock;
// 'now'-style literals are refused by the text analysis). may_write: any VOLATILE function
// outside pg_catalog behind the name.
std::string_view routines_sql();

// A PostgreSQL text-array literal of `items` ('{"a","b"}'), quoting every element.
std::string text_array(std::span<const std::string> items);

using Column = std::optional<std::string_view>;   // NULL = nullopt; text format

// One row of relations_sql into `info`; false when the row is malformed.
bool parse_relation_row(std::span<const Column> row, RelationInfo& info);
// One row of routines_sql into `info`; false when the row is malformed.
bool parse_routine_row(std::span<const Column> row, RoutineInfo& info);

// The facts fetched so far under one search_path and role. Not thread-safe: one owner, or a
// lock around it.
class FetchedCatalog : public CatalogView {
 public:
  const RelationInfo* relation(const RelationName& name) const override;
  const RoutineInfo* routine(const RoutineName& name) const override;
  void add(const RelationName& name, RelationInfo info) { relations_[{name.schema, name.name}] = std::move(info); }
  void add(const RoutineName& name, RoutineInfo info) { routines_[{name.schema, name.name, name.kind}] = info; }
  // The parameters of relations_sql / routines_sql for `names`.
  static std::vector<std::string> relation_params(std::span<const RelationName> names);
  static std::vector<std::string> routine_params(std::span<const RoutineName> names);
  void clear() {
    relations_.clear();
    routines_.clear();
  }
  size_t size() const { return relations_.size() + routines_.size(); }

 private:
  std::map<std::pair<std::string, std::string>, RelationInfo> relations_;
  std::map<std::tuple<std::string, std::string, RoutineKind>, RoutineInfo> routines_;
};

}  // namespace pgrelay::cache
