// The cache's two judgements over catalog facts: may a read be cached, what does a write change.
#include "cache/catalog.h"

#include <algorithm>

namespace pgrelay::cache {
namespace {

// Views inside views inside views: beyond this, not cached (a cycle cannot exist, but a deep
// stack of views is not worth the walk).
constexpr int kMaxViewDepth = 8;

std::string display(const RelationName& r) { return r.schema.empty() ? r.name : r.schema + "." + r.name; }
std::string display(const RoutineName& r) { return r.schema.empty() ? r.name : r.schema + "." + r.name; }

void sort_unique(std::vector<Oid>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

class ReadJudge {
 public:
  explicit ReadJudge(const CatalogView& catalog) : catalog_(catalog) {}

  // Fills `out`; returns false at the first reason not to cache (pending names are all collected).
  bool judge(const AccessAnalysis& a, int depth, ReadJudgement& out) {
    if (!a.cacheable_text) return refuse(out, depth == 0 ? a.not_cacheable : "view: " + a.not_cacheable);
    for (const RelationName& name : a.reads) {
      if (!relation(name, depth, out)) return false;
    }
    for (const RoutineName& name : a.routines) {
      const RoutineInfo* info = catalog_.routine(name);
      if (!info) {
        out.missing_routines.push_back(name);
      } else if (!info->found) {
        return refuse(out, "unknown function, operator or type: " + display(name));
      } else if (!info->cacheable) {
        return refuse(out, (name.kind == RoutineKind::kCast ? "cast to a type with non-immutable input: " : "not immutable: ") + display(name));
      }
    }
    return true;
  }

 private:
  bool relation(const RelationName& name, int depth, ReadJudgement& out) {
    const RelationInfo* info = catalog_.relation(name);
    if (!info) {
      out.missing_relations.push_back(name);
      return true;
    }
    if (!info->found) return refuse(out, "unknown relation: " + display(name));
    if (info->system) return refuse(out, "system catalog");
    if (info->persistence == 't') return refuse(out, "temporary table: " + display(name));
    if (info->persistence == 'u') return refuse(out, "unlogged table: " + display(name));   // emptied by crash recovery, which no write announces
    if (info->row_security) return refuse(out, "row-level security: " + display(name));
    switch (info->kind) {
      case 'r':
      case 'p':
      case 'm':
        out.depends_on.push_back(info->oid);
        return true;
      case 'v': {
        if (depth + 1 >= kMaxViewDepth) return refuse(out, "views nested too deep");
        const AccessAnalysis def = analyze_access(info->view_definition);
        if (def.kind != StatementKind::kRead) return refuse(out, "view definition not understood: " + display(name));
        return judge(def, depth + 1, out);
      }
      case 'f':
        return refuse(out, "foreign table: " + display(name));
      case 'S':
        return refuse(out, "sequence: " + display(name));
      default:
        return refuse(out, "not a table or view: " + display(name));
    }
  }

  static bool refuse(ReadJudgement& out, std::string reason) {
    out.verdict = Verdict::kNotCacheable;
    out.reason = std::move(reason);
    return false;
  }

  const CatalogView& catalog_;
};

}  // namespace

ReadJudgement judge_read(const AccessAnalysis& analysis, const CatalogView& catalog) {
  ReadJudgement out;
  ReadJudge judge(catalog);
  if (!judge.judge(analysis, 0, out)) {
    out.depends_on.clear();
    out.missing_relations.clear();
    out.missing_routines.clear();
    return out;
  }
  if (!out.missing_relations.empty() || !out.missing_routines.empty()) {
    out.verdict = Verdict::kPending;
    out.reason = "catalog facts pending";
    out.depends_on.clear();
    return out;
  }
  out.verdict = Verdict::kCacheable;
  sort_unique(out.depends_on);
  return out;
}

namespace {

// What judge_write adds up, statement by statement and through views.
class WriteJudge {
 public:
  WriteJudge(const CatalogView& catalog, WriteJudgement& out) : catalog_(catalog), out_(out) {}

  // False once the judgement widened to the whole database.
  bool judge(const AccessAnalysis& a, int depth) {
    if (a.writes_unknown) return widen("statement may write unnamed tables");
    for (const RelationName& name : a.writes) {
      const RelationInfo* info = catalog_.relation(name);
      if (!info) return widen("catalog facts pending: " + display(name));
      // Not found: created earlier in this transaction (DDL widens anyway) or an error; either way unsure.
      if (!info->found) return widen("unknown relation: " + display(name));
      if (info->kind != 'r' && info->kind != 'p' && info->kind != 'm') return widen("write through a view or other relation: " + display(name));
      if (info->writes_beyond) return widen("triggers, rules, cascading foreign keys or volatile defaults: " + display(name));
      out_.tables.insert(out_.tables.end(), info->family.begin(), info->family.end());
      out_.tables.push_back(info->oid);
    }
    // A view read may call a volatile function that writes (its definition is judged like a text).
    for (const RelationName& name : a.reads) {
      const RelationInfo* info = catalog_.relation(name);
      if (!info) return widen("catalog facts pending: " + display(name));
      if (!info->found || info->kind != 'v') continue;
      if (depth + 1 >= kMaxViewDepth) return widen("views nested too deep: " + display(name));
      const AccessAnalysis def = analyze_access(info->view_definition);
      if (def.kind != StatementKind::kRead) return widen("view definition not understood: " + display(name));
      if (!judge(def, depth + 1)) return false;
    }
    // A function, an operator's function or a cast's that is volatile and not built in may write anything.
    for (const RoutineName& name : a.routines) {
      const RoutineInfo* info = catalog_.routine(name);
      if (!info) return widen("catalog facts pending: " + display(name));
      if (info->may_write) return widen("volatile function: " + display(name));
    }
    return true;
  }

 private:
  bool widen(std::string reason) {
    out_.whole_database = true;
    out_.reason = std::move(reason);
    out_.tables.clear();
    return false;
  }

  const CatalogView& catalog_;
  WriteJudgement& out_;
};

}  // namespace

WriteJudgement judge_write(const AccessAnalysis& analysis, const CatalogView& catalog) {
  WriteJudgement out;
  out.schema_may_change = analysis.schema_may_change;
  WriteJudge judge(catalog, out);
  if (judge.judge(analysis, 0)) sort_unique(out.tables);
  return out;
}

}  // namespace pgrelay::cache
