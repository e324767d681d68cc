// The catalog queries behind a CatalogView, and the parsing of their rows.
#include "cache/catalog_queries.h"

#include <charconv>

namespace pgrelay::cache {
namespace {

// Every name is qualified with pg_catalog, so a client's own objects named like them cannot
// change what these queries do. The family is the inheritance tree through the relation (its
// ancestors and descendants: a write to a partition changes what a read of its parent returns,
// and the reverse); writes_beyond looks at the whole family, since triggers and foreign keys
// are cloned to partitions. The _RETURN rule every view and materialized view has is not a
// rule that writes. Defaults and constraints (the table's, and its columns' domains') that call
// a volatile function not in pg_catalog run it on every write (pg_depend lists the functions an
// expression calls); nextval() and friends are built in.
constexpr std::string_view kRelations = R"SQL(SELECT q.i, c.oid, c.relkind, c.relpersistence, c.relrowsecurity,
       n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast') AS system,
       f.beyond AS writes_beyond, f.family,
       CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END AS definition
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(schema, name, i)
  LEFT JOIN pg_catalog.pg_class c
    ON c.oid = pg_catalog.to_regclass(CASE WHEN q.schema = '' THEN pg_catalog.quote_ident(q.name)
                                           ELSE pg_catalog.quote_ident(q.schema) || '.' || pg_catalog.quote_ident(q.name) END)
  LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN LATERAL (
    WITH RECURSIVE up(oid) AS (SELECT c.oid UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.oid),
                 down(oid) AS (SELECT c.oid UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.oid),
                 fam(oid) AS (SELECT oid FROM up UNION SELECT oid FROM down)
    SELECT array_agg(fam.oid ORDER BY fam.oid) AS family,
           bool_or(EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w WHERE w.ev_class = fam.oid AND w.rulename <> '_RETURN')
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = fam.oid AND NOT t.tgisinternal)
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                               WHERE k.confrelid = fam.oid AND k.contype = 'f'
                                 AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd')))
                   OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
                               WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.provolatile = 'v'
                                 AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
                                 AND ((d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                                       AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_attrdef a WHERE a.adrelid = fam.oid))
                                   OR (d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                                       AND d.objid IN (SELECT k.oid FROM pg_catalog.pg_constraint k
                                                        WHERE k.conrelid = fam.oid
                                                           OR k.contypid IN (SELECT a.atttypid FROM pg_catalog.pg_attribute a
                                                                              WHERE a.attrelid = fam.oid AND a.attnum > 0)))))) AS beyond
      FROM fam JOIN pg_catalog.pg_class r ON r.oid = fam.oid
  ) f ON c.oid IS NOT NULL
 ORDER BY q.i
)SQL";

// A cast runs the type's input function (from a literal) or a cast function into the type.
constexpr std::string_view kRoutines = R"SQL(WITH q AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS q(kind, schema, name, i)),
     path AS (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY (pg_catalog.current_schemas(true))),
     candidates AS (
       SELECT q.i, p.provolatile, p.pronamespace AS ns, q.kind
         FROM q JOIN pg_catalog.pg_proc p ON q.kind = 'f' AND p.proname = q.name
        WHERE CASE WHEN q.schema = '' THEN p.pronamespace IN (SELECT oid FROM path)
                   ELSE p.pronamespace = pg_catalog.to_regnamespace(pg_catalog.quote_ident(q.schema)) END
       UNION ALL
       SELECT q.i, p.provolatile, p.pronamespace, q.kind
         FROM q JOIN pg_catalog.pg_operator o ON q.kind = 'o' AND o.oprname = q.name
         JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
        WHERE CASE WHEN q.schema = '' THEN o.oprnamespace IN (SELECT oid FROM path)
                   ELSE o.oprnamespace = pg_catalog.to_regnamespace(pg_catalog.quote_ident(q.schema)) END
       UNION ALL
       SELECT q.i, p.provolatile, p.pronamespace, q.kind
         FROM q JOIN pg_catalog.pg_type t
           ON q.kind = 'c' AND t.oid = pg_catalog.to_regtype(CASE WHEN q.schema = '' THEN pg_catalog.quote_ident(q.name)
                                                                  ELSE pg_catalog.quote_ident(q.schema) || '.' || pg_catalog.quote_ident(q.name) END)
         JOIN pg_catalog.pg_proc p
           ON p.oid = t.typinput
           OR p.oid IN (SELECT k.castfunc FROM pg_catalog.pg_cast k WHERE k.casttarget = t.oid AND k.castfunc <> 0)
     )
SELECT q.i, count(c.i) AS overloads,
       coalesce(bool_and(c.provolatile = 'i' OR (c.kind <> 'f' AND c.ns = 'pg_catalog'::pg_catalog.regnamespace)), false) AS cacheable,
       coalesce(bool_or(c.provolatile = 'v' AND c.ns <> 'pg_catalog'::pg_catalog.regnamespace), false) AS may_write
  FROM q LEFT JOIN candidates c ON c.i = q.i
 GROUP BY q.i ORDER BY q.i
)SQL";

bool parse_bool(const Column& c, bool& out) {
  if (!c || (*c != "t" && *c != "f")) return false;
  out = *c == "t";
  return true;
}

bool parse_oid(std::string_view s, Oid& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// '{1,2,3}' (an oid[] in text format).
bool parse_oid_array(std::string_view s, std::vector<Oid>& out) {
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return false;
  s = s.substr(1, s.size() - 2);
  while (!s.empty()) {
    const size_t comma = s.find(',');
    Oid oid = 0;
    if (!parse_oid(s.substr(0, comma), oid)) return false;
    out.push_back(oid);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return true;
}

}  // namespace

std::string_view set_search_path_sql() { return "SELECT pg_catalog.set_config('search_path', $1, true)"; }
std::string_view relations_sql() { return kRelations; }
std::string_view routines_sql() { return kRoutines; }

std::string text_array(std::span<const std::string> items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

bool parse_relation_row(std::span<const Column> row, RelationInfo& info) {
  info = RelationInfo{};
  if (row.size() != 9) return false;
  if (!row[1]) return true;   // resolves to nothing: found stays false
  info.found = true;
  if (!parse_oid(*row[1], info.oid)) return false;
  if (!row[2] || row[2]->size() != 1 || !row[3] || row[3]->size() != 1) return false;
  info.kind = row[2]->front();
  info.persistence = row[3]->front();
  if (!parse_bool(row[4], info.row_security) || !parse_bool(row[5], info.system) || !parse_bool(row[6], info.writes_beyond)) return false;
  if (!row[7] || !parse_oid_array(*row[7], info.family)) return false;
  if (row[8]) info.view_definition = std::string(*row[8]);
  return info.kind != 'v' || row[8].has_value();
}

bool parse_routine_row(std::span<const Column> row, RoutineInfo& info) {
  info = RoutineInfo{};
  if (row.size() != 4 || !row[1]) return false;
  Oid overloads = 0;
  if (!parse_oid(*row[1], overloads)) return false;
  info.found = overloads > 0;
  return parse_bool(row[2], info.cacheable) && parse_bool(row[3], info.may_write);
}

const RelationInfo* FetchedCatalog::relation(const RelationName& name) const {
  auto it = relations_.find({name.schema, name.name});
  return it == relations_.end() ? nullptr : &it->second;
}

const RoutineInfo* FetchedCatalog::routine(const RoutineName& name) const {
  auto it = routines_.find({name.schema, name.name, name.kind});
  return it == routines_.end() ? nullptr : &it->second;
}

std::vector<std::string> FetchedCatalog::relation_params(std::span<const RelationName> names) {
  std::vector<std::string> schemas, relnames;
  for (const RelationName& n : names) {
    schemas.push_back(n.schema);
    relnames.push_back(n.name);
  }
  return {text_array(schemas), text_array(relnames)};
}

std::vector<std::string> FetchedCatalog::routine_params(std::span<const RoutineName> names) {
  std::vector<std::string> kinds, schemas, routine_names;
  for (const RoutineName& n : names) {
    kinds.push_back(n.kind == RoutineKind::kFunction ? "f" : n.kind == RoutineKind::kOperator ? "o" : "c");
    schemas.push_back(n.schema);
    routine_names.push_back(n.name);
  }
  return {text_array(kinds), text_array(schemas), text_array(routine_names)};
}

}  // namespace pgrelay::cache
