// What a statement reads, writes and calls: a walk over libpg_query's protobuf parse tree.
//
// The walk is generic: every message-typed field of every node is visited through protobuf-c's
// descriptors, so a node type nobody listed here is still searched for the tables, functions
// and clauses inside it. Only the nodes that matter are named below.
#include "cache/access_analysis.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace pgrelay::cache {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view text(const char* s) { return s ? std::string_view(s) : std::string_view(); }

// The String nodes of a qualified name (funcname, operator name, type name): the last is the
// name, the one before it the schema.
RoutineName qualified(PgQuery__Node* const* parts, size_t n, RoutineKind kind) {
  std::vector<std::string_view> names;
  for (size_t i = 0; i < n; ++i) {
    if (parts[i] && parts[i]->node_case == PG_QUERY__NODE__NODE_STRING) names.push_back(text(parts[i]->string->sval));
  }
  RoutineName r;
  r.kind = kind;
  if (!names.empty()) r.name = names.back();
  if (names.size() >= 2) r.schema = names[names.size() - 2];
  return r;
}

// Calls `f` for every message held in a message-typed field of `m` (set oneof members only).
template <class F>
void for_each_child(const ProtobufCMessage* m, F&& f) {
  const ProtobufCMessageDescriptor* d = m->descriptor;
  const char* base = reinterpret_cast<const char*>(m);
  for (unsigned i = 0; i < d->n_fields; ++i) {
    const ProtobufCFieldDescriptor& fd = d->fields[i];
    if (fd.type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if ((fd.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *reinterpret_cast<const uint32_t*>(base + fd.quantifier_offset) != fd.id) {
      continue;
    }
    if (fd.label == PROTOBUF_C_LABEL_REPEATED) {
      const size_t n = *reinterpret_cast<const size_t*>(base + fd.quantifier_offset);
      auto* const* items = *reinterpret_cast<ProtobufCMessage* const* const*>(base + fd.offset);
      for (size_t k = 0; k < n; ++k) {
        if (items[k]) f(items[k]);
      }
    } else if (auto* child = *reinterpret_cast<ProtobufCMessage* const*>(base + fd.offset)) {
      f(child);
    }
  }
}

const ProtobufCMessage* as_message(const PgQuery__Node* n) {
  if (!n) return nullptr;
  const ProtobufCMessage* found = nullptr;
  for_each_child(&n->base, [&](const ProtobufCMessage* c) { found = c; });   // the one set member
  return found;
}

class Walker {
 public:
  explicit Walker(AccessAnalysis& out) : out_(out) {}

  void walk(const ProtobufCMessage* m) {
    const ProtobufCMessageDescriptor* d = m->descriptor;
    if (d == &pg_query__range_var__descriptor) return range_var(reinterpret_cast<const PgQuery__RangeVar*>(m));
    if (d == &pg_query__select_stmt__descriptor) {
      const auto* s = reinterpret_cast<const PgQuery__SelectStmt*>(m);
      if (s->into_clause) {
        into_ = true;
        add(out_.writes, s->into_clause->rel);
      }
      return with_scope(m, s->with_clause);
    }
    if (d == &pg_query__insert_stmt__descriptor) return modify(m, reinterpret_cast<const PgQuery__InsertStmt*>(m)->relation, reinterpret_cast<const PgQuery__InsertStmt*>(m)->with_clause);
    if (d == &pg_query__update_stmt__descriptor) return modify(m, reinterpret_cast<const PgQuery__UpdateStmt*>(m)->relation, reinterpret_cast<const PgQuery__UpdateStmt*>(m)->with_clause);
    if (d == &pg_query__delete_stmt__descriptor) return modify(m, reinterpret_cast<const PgQuery__DeleteStmt*>(m)->relation, reinterpret_cast<const PgQuery__DeleteStmt*>(m)->with_clause);
    if (d == &pg_query__merge_stmt__descriptor) return modify(m, reinterpret_cast<const PgQuery__MergeStmt*>(m)->relation, reinterpret_cast<const PgQuery__MergeStmt*>(m)->with_clause);
    if (d == &pg_query__func_call__descriptor) {
      const auto* f = reinterpret_cast<const PgQuery__FuncCall*>(m);
      add_routine(qualified(f->funcname, f->n_funcname, RoutineKind::kFunction));
    } else if (d == &pg_query__a__expr__descriptor) {
      operators(reinterpret_cast<const PgQuery__AExpr*>(m));
    } else if (d == &pg_query__type_cast__descriptor) {
      const auto* c = reinterpret_cast<const PgQuery__TypeCast*>(m);
      if (c->type_name) add_routine(qualified(c->type_name->names, c->type_name->n_names, RoutineKind::kCast));
    } else if (d == &pg_query__a__const__descriptor) {
      const auto* c = reinterpret_cast<const PgQuery__AConst*>(m);
      if (c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval && time_dependent_literal(text(c->sval->sval))) time_literal_ = true;
    } else if (d == &pg_query__sqlvalue_function__descriptor) {
      value_function_ = true;
    } else if (d == &pg_query__locking_clause__descriptor) {
      locking_ = true;
      return;   // its relations are the FROM items already listed
    } else if (d == &pg_query__range_table_sample__descriptor) {
      sample_ = true;
    }
    for_each_child(m, [&](const ProtobufCMessage* c) { walk(c); });
  }

  bool locking() const { return locking_; }
  bool value_function() const { return value_function_; }
  bool time_literal() const { return time_literal_; }
  bool sample() const { return sample_; }
  bool catalog() const { return catalog_; }
  bool into() const { return into_; }
  bool modifies() const { return modifies_; }

 private:
  static void add(std::vector<RelationName>& list, const PgQuery__RangeVar* r) {
    if (!r) return;
    RelationName name{std::string(text(r->schemaname)), std::string(text(r->relname))};
    if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(std::move(name));
  }

  void add_routine(RoutineName r) {
    if (r.name.empty()) return;
    if (std::find(out_.routines.begin(), out_.routines.end(), r) == out_.routines.end()) out_.routines.push_back(std::move(r));
  }

  void range_var(const PgQuery__RangeVar* r) {
    const std::string_view schema = text(r->schemaname), name = text(r->relname);
    // An unqualified name a WITH in scope defines is that CTE, not a table.
    if (schema.empty() && std::find(scope_.begin(), scope_.end(), name) != scope_.end()) return;
    // pg_catalog is searched first when the search_path does not name it, so an unqualified
    // pg_* name is the catalog's (or nothing); catalogs change with every DDL and statistic.
    if (schema == "pg_catalog" || schema == "information_schema" || schema == "pg_toast" ||
        (schema.empty() && name.substr(0, 3) == "pg_")) {
      catalog_ = true;
    }
    add(out_.reads, r);
  }

  // INSERT/UPDATE/DELETE/MERGE: the target's rows change; everything else in it is read.
  void modify(const ProtobufCMessage* m, const PgQuery__RangeVar* target, const PgQuery__WithClause* with) {
    modifies_ = true;
    add(out_.writes, target);
    with_scope(m, with);
  }

  // A statement with a WITH: each CTE's body sees the CTEs before it (all of them when
  // RECURSIVE), the statement's own clauses see all of them. Names go out of scope after.
  void with_scope(const ProtobufCMessage* m, const PgQuery__WithClause* with) {
    const size_t outer = scope_.size();
    if (with) {
      std::vector<std::string> names;
      for (size_t i = 0; i < with->n_ctes; ++i) {
        const auto* cte = with->ctes[i] && with->ctes[i]->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ? with->ctes[i]->common_table_expr : nullptr;
        names.emplace_back(cte ? text(cte->ctename) : std::string_view());
      }
      if (with->recursive) scope_.insert(scope_.end(), names.begin(), names.end());
      for (size_t i = 0; i < with->n_ctes; ++i) {
        const auto* cte = with->ctes[i] && with->ctes[i]->node_case == PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR ? with->ctes[i]->common_table_expr : nullptr;
        if (cte && cte->ctequery) {
          if (const ProtobufCMessage* body = as_message(cte->ctequery)) walk(body);
        }
        if (!with->recursive) scope_.push_back(names[i]);
      }
    }
    const ProtobufCMessage* skip = with ? &with->base : nullptr;
    for_each_child(m, [&](const ProtobufCMessage* c) {
      if (c != skip) walk(c);
    });
    scope_.resize(outer);
  }

  void operators(const PgQuery__AExpr* e) {
    switch (e->kind) {
      case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN:
      case PG_QUERY__A__EXPR__KIND__AEXPR_BETWEEN_SYM:
      case PG_QUERY__A__EXPR__KIND__AEXPR_NOT_BETWEEN_SYM:
        // The grammar names these "BETWEEN"...; the server compares with >= and <=.
        add_routine(RoutineName{"", ">=", RoutineKind::kOperator});
        add_routine(RoutineName{"", "<=", RoutineKind::kOperator});
        return;
      default:
        add_routine(qualified(e->name, e->n_name, RoutineKind::kOperator));
    }
  }

  AccessAnalysis& out_;
  std::vector<std::string> scope_;   // CTE names visible here
  bool locking_ = false, value_function_ = false, time_literal_ = false, sample_ = false;
  bool catalog_ = false, into_ = false, modifies_ = false;
};

Isolation isolation_named(std::string_view level) {
  if (iequals(level, "serializable")) return Isolation::kSerializable;
  if (iequals(level, "repeatable read")) return Isolation::kRepeatableRead;
  if (iequals(level, "read committed") || iequals(level, "read uncommitted")) return Isolation::kReadCommitted;
  return Isolation::kUnspecified;
}

// A string constant, or a bare word the grammar kept as a String (EXPLAIN (ANALYZE off)).
std::string_view string_const(const PgQuery__Node* n) {
  if (n && n->node_case == PG_QUERY__NODE__NODE_STRING) return text(n->string->sval);
  if (!n || n->node_case != PG_QUERY__NODE__NODE_A_CONST) return {};
  const auto* c = n->a_const;
  return c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval ? text(c->sval->sval) : std::string_view();
}

// BEGIN / START TRANSACTION / SET TRANSACTION / SET SESSION CHARACTERISTICS options.
void transaction_options(PgQuery__Node* const* options, size_t n, AccessAnalysis& out) {
  for (size_t i = 0; i < n; ++i) {
    if (!options[i] || options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const auto* opt = options[i]->def_elem;
    const std::string_view name = text(opt->defname);
    if (name == "transaction_isolation") {
      out.isolation = isolation_named(string_const(opt->arg));
    } else if (name == "transaction_read_only" && opt->arg && opt->arg->node_case == PG_QUERY__NODE__NODE_A_CONST) {
      const auto* c = opt->arg->a_const;
      out.read_only = c->val_case == PG_QUERY__A__CONST__VAL_IVAL && c->ival && c->ival->ival != 0;
    }
  }
}

void variable_set(const PgQuery__VariableSetStmt* set, AccessAnalysis& out) {
  const std::string_view name = text(set->name);
  if (set->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL || iequals(name, "search_path") || iequals(name, "role") ||
      iequals(name, "session_authorization")) {
    out.changes_name_resolution = true;
  }
  if (set->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI) {
    if (name == "TRANSACTION SNAPSHOT") {
      out.isolation = Isolation::kImportedSnapshot;
    } else if (name == "TRANSACTION" || name == "SESSION CHARACTERISTICS") {
      transaction_options(set->args, set->n_args, out);
      out.sets_default_isolation = name == "SESSION CHARACTERISTICS";
    }
    return;
  }
  if (iequals(name, "transaction_isolation") || iequals(name, "default_transaction_isolation")) {
    out.sets_default_isolation = iequals(name, "default_transaction_isolation");
    out.isolation = set->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE && set->n_args > 0
                        ? isolation_named(string_const(set->args[0]))
                        : Isolation::kUnspecified;
  }
}

bool temporary(const PgQuery__RangeVar* r) { return r && text(r->relpersistence) == "t"; }

bool explain_analyze(const PgQuery__ExplainStmt* e) {
  for (size_t i = 0; i < e->n_options; ++i) {
    if (e->options[i] && e->options[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM &&
        text(e->options[i]->def_elem->defname) == "analyze") {
      const PgQuery__Node* arg = e->options[i]->def_elem->arg;   // ANALYZE, ANALYZE true, ANALYZE off
      const std::string_view value = string_const(arg);
      const bool off = iequals(value, "off") || iequals(value, "false") ||
                       (arg && arg->node_case == PG_QUERY__NODE__NODE_BOOLEAN && !arg->boolean->boolval);
      return !off;
    }
  }
  return false;
}

// One statement of the text: its kind, and what it reads and writes into `out` via `w`.
StatementKind classify(const PgQuery__Node* stmt, Walker& w, AccessAnalysis& out) {
  switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      w.walk(&stmt->select_stmt->base);
      return w.into() || w.modifies() ? StatementKind::kWrite : StatementKind::kRead;
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
      w.walk(as_message(stmt));
      return StatementKind::kWrite;
    case PG_QUERY__NODE__NODE_TRUNCATE_STMT: {
      const auto* t = stmt->truncate_stmt;
      for (size_t i = 0; i < t->n_relations; ++i) {
        if (t->relations[i] && t->relations[i]->node_case == PG_QUERY__NODE__NODE_RANGE_VAR) {
          const auto* r = t->relations[i]->range_var;
          out.writes.push_back({std::string(text(r->schemaname)), std::string(text(r->relname))});
        }
      }
      // CASCADE empties the tables that reference these too, unnamed here.
      if (t->behavior == PG_QUERY__DROP_BEHAVIOR__DROP_CASCADE) out.writes_unknown = true;
      return StatementKind::kWrite;
    }
    case PG_QUERY__NODE__NODE_COPY_STMT: {
      const auto* c = stmt->copy_stmt;
      if (!c->is_from) return StatementKind::kUtility;   // COPY TO: read, never cached
      const auto* r = c->relation;
      if (r) out.writes.push_back({std::string(text(r->schemaname)), std::string(text(r->relname))});
      return StatementKind::kWrite;
    }
    case PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT: {
      const auto* r = stmt->refresh_mat_view_stmt->relation;
      if (r) out.writes.push_back({std::string(text(r->schemaname)), std::string(text(r->relname))});
      return StatementKind::kWrite;
    }
    case PG_QUERY__NODE__NODE_CALL_STMT:
    case PG_QUERY__NODE__NODE_DO_STMT:
      out.commits_inside = true;   // a procedure or DO block may COMMIT and run on
      [[fallthrough]];
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
      out.writes_unknown = true;
      out.schema_may_change = true;
      return StatementKind::kWrite;
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
      transaction_options(stmt->transaction_stmt->options, stmt->transaction_stmt->n_options, out);
      if (stmt->transaction_stmt->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT) out.commits = true;
      if (stmt->transaction_stmt->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED) {
        // Makes visible what a PREPARE TRANSACTION (of any session, any time before) wrote: unnamed here.
        out.writes_unknown = true;
        out.schema_may_change = true;
      }
      return StatementKind::kTransaction;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
      variable_set(stmt->variable_set_stmt, out);
      return StatementKind::kUtility;
    case PG_QUERY__NODE__NODE_EXPLAIN_STMT: {
      const auto* e = stmt->explain_stmt;
      if (!explain_analyze(e) || !e->query) return StatementKind::kUtility;
      const StatementKind inner = classify(e->query, w, out);   // EXPLAIN ANALYZE runs it
      return inner == StatementKind::kWrite ? inner : StatementKind::kUtility;
    }
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      out.changes_name_resolution = true;   // DISCARD ALL resets search_path and role (and TEMP drops shadows)
      return StatementKind::kUtility;
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
    case PG_QUERY__NODE__NODE_NOTIFY_STMT:
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
    case PG_QUERY__NODE__NODE_FETCH_STMT:
    case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
    case PG_QUERY__NODE__NODE_LOCK_STMT:
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
    case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
    case PG_QUERY__NODE__NODE_CLUSTER_STMT:
    case PG_QUERY__NODE__NODE_REINDEX_STMT:
    case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
      return StatementKind::kUtility;
    case PG_QUERY__NODE__NODE_CREATE_STMT:
      out.creates_temporary |= temporary(stmt->create_stmt->relation);
      break;
    case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT:
      out.creates_temporary |= stmt->create_table_as_stmt->into && temporary(stmt->create_table_as_stmt->into->rel);
      break;
    case PG_QUERY__NODE__NODE_VIEW_STMT:
      out.creates_temporary |= temporary(stmt->view_stmt->view);
      break;
    case PG_QUERY__NODE__NODE_CREATE_SEQ_STMT:
      out.creates_temporary |= temporary(stmt->create_seq_stmt->sequence);
      break;
    default:
      break;
  }
  // Everything else changes the schema, privileges or what a name resolves to.
  out.writes_unknown = true;
  out.schema_may_change = true;
  return StatementKind::kDdl;
}

// The kind of a text of several statements: a write if any writes, else the first's.
StatementKind combine(StatementKind a, StatementKind b) {
  if (a == StatementKind::kWrite || b == StatementKind::kWrite) return StatementKind::kWrite;
  if (a == StatementKind::kDdl || b == StatementKind::kDdl) return StatementKind::kDdl;
  return a;
}

std::string why_not(const AccessAnalysis& a, const Walker& w) {
  if (a.statements != 1) return a.statements == 0 ? "empty" : "several statements";
  if (a.kind != StatementKind::kRead) return "not a read";
  if (w.locking()) return "FOR UPDATE/SHARE";
  if (w.value_function()) return "SQL value function (CURRENT_TIMESTAMP, CURRENT_USER, ...)";
  if (w.time_literal()) return "time-dependent literal ('now', 'today', ...)";
  if (w.sample()) return "TABLESAMPLE";
  if (w.catalog()) return "system catalog";
  return {};
}

}  // namespace

AccessAnalysis analyze_access(std::string_view sql) {
  AccessAnalysis out;
  const std::string text_z(sql);   // libpg_query wants a NUL-terminated string
  PgQueryProtobufParseResult parsed = pg_query_parse_protobuf(text_z.c_str());
  PgQuery__ParseResult* tree = nullptr;
  if (!parsed.error) {
    tree = pg_query__parse_result__unpack(nullptr, parsed.parse_tree.len, reinterpret_cast<const uint8_t*>(parsed.parse_tree.data));
  }
  if (!tree) {
    out.writes_unknown = true;
    out.schema_may_change = true;
    out.not_cacheable = "syntax error";
    pg_query_free_protobuf_parse_result(parsed);
    return out;
  }
  Walker walker(out);
  for (size_t i = 0; i < tree->n_stmts; ++i) {
    const PgQuery__Node* stmt = tree->stmts[i] ? tree->stmts[i]->stmt : nullptr;
    if (!stmt) continue;
    const StatementKind kind = classify(stmt, walker, out);
    out.kind = out.statements == 0 ? kind : combine(out.kind, kind);
    ++out.statements;
  }
  for (const RoutineName& r : out.routines) {
    if (r.kind == RoutineKind::kFunction && iequals(r.name, "set_config")) out.changes_name_resolution = true;
  }
  out.locks_rows = walker.locking();
  out.not_cacheable = why_not(out, walker);
  out.cacheable_text = out.not_cacheable.empty();
  pg_query__parse_result__free_unpacked(tree, nullptr);
  pg_query_free_protobuf_parse_result(parsed);
  return out;
}

bool time_dependent_literal(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.remove_suffix(1);
  return iequals(value, "now") || iequals(value, "today") || iequals(value, "tomorrow") || iequals(value, "yesterday");
}

}  // namespace pgrelay::cache
