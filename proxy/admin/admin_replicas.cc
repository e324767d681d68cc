// Read replicas in the admin console: SHOW REPLICAS (docs/admin.md, docs/replicas.md).
#include <cstdio>

#include "proxy/admin/admin_console.h"

namespace pgrelay::proxy {

ResultSet AdminConsole::show_replicas() const {
  using T = ResultSet::Type;
  ResultSet rs({{"database", T::kText},   {"replica", T::kText},      {"state", T::kText},
                {"lag_bytes", T::kInt},   {"lag_seconds", T::kFloat}, {"replay_lsn", T::kText},
                {"reads", T::kInt},       {"outstanding", T::kInt},   {"rotation_exits", T::kInt},
                {"check_failures", T::kInt}, {"last_error", T::kText}});
  for (const auto& set : services_.pools.replica_sets()) {
    for (size_t i = 0; i < set->size(); ++i) {
      const ReplicaState& r = set->replica(i);
      const Lsn lsn = r.replay_lsn.load(std::memory_order_relaxed);
      char lsn_text[32];
      std::snprintf(lsn_text, sizeof lsn_text, "%X/%X", unsigned(lsn >> 32), unsigned(lsn & 0xffffffffu));
      rs.row()
          .text(set->database())
          .text(r.endpoint.host + ":" + std::to_string(r.endpoint.port))
          .text(r.state())
          .num(int64_t(r.lag_bytes.load(std::memory_order_relaxed)))
          .num(double(r.lag_ms.load(std::memory_order_relaxed)) / 1000.0)
          .text(lsn_text)
          .num(int64_t(r.reads.load(std::memory_order_relaxed)))
          .num(int64_t(r.outstanding.load(std::memory_order_relaxed)))
          .num(int64_t(r.rotation_exits.load(std::memory_order_relaxed)))
          .num(int64_t(r.check_failures.load(std::memory_order_relaxed)))
          .text(r.last_error());
    }
    // The primary's share of routed reads (no lag of its own).
    rs.row()
        .text(set->database())
        .text("primary")
        .text("primary")
        .num(int64_t(0))
        .num(0.0)
        .null()
        .num(int64_t(set->primary_reads().load(std::memory_order_relaxed)))
        .num(int64_t(set->primary_outstanding().load(std::memory_order_relaxed)))
        .num(int64_t(0))
        .num(int64_t(0))
        .text("");
  }
  return rs;
}

}  // namespace pgrelay::proxy
