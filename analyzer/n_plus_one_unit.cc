// NPlusOneUnit: one unit of work's tracked fingerprints, sources and values, recycled per thread.
#include "analyzer/n_plus_one_unit.h"

#include <utility>

namespace pgrelay::analyzer {
namespace {

constexpr size_t kMaxSpares = 64;        // a worker's units in use at once beyond these are freed at their end
constexpr size_t kInitialSlots = 16;

std::vector<std::unique_ptr<NPlusOneUnit>>& spares() {
  thread_local std::vector<std::unique_ptr<NPlusOneUnit>> units;
  return units;
}

}  // namespace

NPlusOneUnit::Tracked* NPlusOneUnit::find_tracked(uint64_t fingerprint) {
  for (size_t i = 0; i < tracked_used_; ++i) {
    if (tracked_[i].fingerprint == fingerprint) return &tracked_[i];
  }
  return nullptr;
}

NPlusOneUnit::Tracked* NPlusOneUnit::add_tracked(uint64_t fingerprint) {
  if (tracked_used_ >= kMaxTracked) return nullptr;
  if (tracked_used_ == tracked_.size()) tracked_.emplace_back();
  Tracked& t = tracked_[tracked_used_++];
  t.fingerprint = fingerprint;
  t.tuples.clear();
  t.candidates.clear();
  t.reported = false;
  return &t;
}

uint32_t NPlusOneUnit::source_for(uint64_t fingerprint, std::string_view column) {
  for (size_t i = 0; i < sources_used_; ++i) {
    if (sources_[i].fingerprint == fingerprint && sources_[i].column == column) return uint32_t(i);
  }
  if (sources_used_ >= kMaxSources) return kNoSource;
  if (sources_used_ == sources_.size()) sources_.emplace_back();
  Source& s = sources_[sources_used_];
  s.fingerprint = fingerprint;
  s.column.assign(column);
  return uint32_t(sources_used_++);
}

const NPlusOneUnit::ValueOrigin* NPlusOneUnit::find_origin(uint64_t h, uint32_t source) const {
  const ValueOrigin* found = nullptr;
  for_each_origin(h, [&](const ValueOrigin& o) {
    if (o.source == source) found = &o;
    return found == nullptr;
  });
  return found;
}

void NPlusOneUnit::add_value(uint64_t h, ValueOrigin origin) {
  // At most half full, so a probe always ends at an empty slot.
  if ((values_.size() + 1) * 2 > slots_.size()) grow_slots();
  values_.push_back({.hash = h, .origin = origin});
  const size_t mask = slots_.size() - 1;
  size_t i = size_t(h) & mask;
  while (slots_[i] != 0) i = (i + 1) & mask;
  slots_[i] = uint32_t(values_.size());
}

void NPlusOneUnit::grow_slots() {
  slots_.assign(slots_.empty() ? kInitialSlots : slots_.size() * 2, 0);
  const size_t mask = slots_.size() - 1;
  // Re-inserted in order: values of one hash keep their insertion order along the probe.
  for (size_t v = 0; v < values_.size(); ++v) {
    size_t i = size_t(values_[v].hash) & mask;
    while (slots_[i] != 0) i = (i + 1) & mask;
    slots_[i] = uint32_t(v + 1);
  }
}

void NPlusOneUnit::clear() {
  tracked_used_ = 0;
  sources_used_ = 0;
  // Only the slots in use: most units remember a few values in a table of kInitialSlots or more.
  if (!values_.empty()) {
    const size_t mask = slots_.size() - 1;
    for (const Value& v : values_) {
      for (size_t i = size_t(v.hash) & mask; slots_[i] != 0; i = (i + 1) & mask) slots_[i] = 0;
    }
    values_.clear();
  }
  columns.clear();
  row_sequence = 0;
}

std::unique_ptr<NPlusOneUnit> take_n_plus_one_unit() {
  auto& units = spares();
  if (units.empty()) return std::make_unique<NPlusOneUnit>();
  std::unique_ptr<NPlusOneUnit> unit = std::move(units.back());
  units.pop_back();
  return unit;
}

void give_back_n_plus_one_unit(std::unique_ptr<NPlusOneUnit> unit) {
  if (!unit) return;
  auto& units = spares();
  if (!unit->worth_keeping() || units.size() >= kMaxSpares) return;   // freed here
  unit->clear();
  units.push_back(std::move(unit));
}

}  // namespace pgrelay::analyzer
