// Fuzz target: the cacheability analysis of a statement text (libpg_query's parse tree read by
// cache/access_analysis), then the read and write judgements over a made-up catalog.
//
// Input: a statement text, as a simple Query or a Parse carries it. Every name resolves in the
// made-up catalog (its kind chosen by the name's length), so the judgements run to the end.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "cache/access_analysis.h"
#include "cache/catalog.h"
#include "fuzz/fuzz_util.h"

namespace ca = pgrelay::cache;
using pgrelay::fuzz::check;

namespace {

class EveryName : public ca::CatalogView {
 public:
  const ca::RelationInfo* relation(const ca::RelationName& name) const override {
    auto [it, fresh] = relations_.try_emplace(name);
    if (fresh) {
      ca::RelationInfo& r = it->second;
      const size_t n = name.schema.size() + name.name.size();
      r.found = n % 7 != 0;
      r.oid = ca::Oid(16384 + relations_.size());
      r.kind = "rpmvfS"[n % 6];
      r.persistence = n % 5 == 0 ? 't' : 'p';
      r.row_security = n % 11 == 0;
      r.system = name.schema == "pg_catalog";
      r.writes_beyond = n % 3 == 0;
      r.family = {r.oid};
      if (r.kind == 'v') r.view_definition = " SELECT a FROM base_table;";
    }
    return &it->second;
  }
  const ca::RoutineInfo* routine(const ca::RoutineName& name) const override {
    auto [it, fresh] = routines_.try_emplace(name);
    if (fresh) {
      const size_t n = name.name.size();
      it->second = ca::RoutineInfo{n % 5 != 0, n % 2 == 0, n % 3 == 0};
    }
    return &it->second;
  }

 private:
  mutable std::map<ca::RelationName, ca::RelationInfo> relations_;
  mutable std::map<ca::RoutineName, ca::RoutineInfo> routines_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view sql(reinterpret_cast<const char*>(data), size);
  ca::AccessAnalysis a = ca::analyze_access(sql);
  if (a.cacheable_text) check(a.kind == ca::StatementKind::kRead && a.statements == 1);
  if (a.kind == ca::StatementKind::kUnknown && a.statements > 0) check(a.writes_unknown);
  (void)ca::time_dependent_literal(sql);

  EveryName catalog;
  ca::ReadJudgement read = ca::judge_read(a, catalog);
  if (read.verdict == ca::Verdict::kCacheable) check(a.cacheable_text);
  (void)ca::judge_write(a, catalog);
  return 0;
}
