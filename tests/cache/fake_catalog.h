// An in-memory CatalogView for the cache's judgement tests.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "cache/catalog.h"

namespace pgrelay::cache {

class FakeCatalog : public CatalogView {
 public:
  RelationInfo& table(const std::string& name, Oid oid, char kind = 'r') {
    RelationInfo& info = relations_[{"", name}];
    info.found = true;
    info.oid = oid;
    info.kind = kind;
    info.family = {oid};
    return info;
  }
  void absent(const std::string& name) { relations_[{"", name}] = RelationInfo{}; }
  RoutineInfo& routine(const std::string& name, bool cacheable, bool may_write = false, RoutineKind kind = RoutineKind::kFunction) {
    RoutineInfo& info = routines_[{"", name, kind}];
    info = RoutineInfo{true, cacheable, may_write};
    return info;
  }
  const RelationInfo* relation(const RelationName& name) const override {
    auto it = relations_.find({name.schema, name.name});
    return it == relations_.end() ? nullptr : &it->second;
  }
  const RoutineInfo* routine(const RoutineName& name) const override {
    auto it = routines_.find({name.schema, name.name, name.kind});
    return it == routines_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::pair<std::string, std::string>, RelationInfo> relations_;
  std::map<std::tuple<std::string, std::string, RoutineKind>, RoutineInfo> routines_;
};

}  // namespace pgrelay::cache
