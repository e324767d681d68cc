// The query cache's replication listeners in the admin console: SHOW REPLICATION (docs/admin.md,
// docs/cache.md).
#include <cstdio>

#include "proxy/admin/admin_console.h"
#include "proxy/session/replication_listener.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

int64_t load(const std::atomic<uint64_t>& v) { return int64_t(v.load(std::memory_order_relaxed)); }

// As PostgreSQL prints an LSN: two hex halves.
std::string lsn_text(uint64_t lsn) {
  char text[24];
  std::snprintf(text, sizeof text, "%X/%X", unsigned(lsn >> 32), unsigned(lsn & 0xFFFFFFFFu));
  return text;
}

}  // namespace

ResultSet AdminConsole::show_replication() const {
  ResultSet rs({{"database", T::kText},       {"slot", T::kText},          {"publication", T::kText},
                {"persistent", T::kText},     {"state", T::kText},         {"lag_bytes", T::kInt},
                {"confirmed_lsn", T::kText},  {"server_wal_end", T::kText}, {"commits", T::kInt},
                {"table_bumps", T::kInt},     {"truncates", T::kInt},      {"apply_lag_ms", T::kFloat},
                {"apply_lag_p99_ms", T::kFloat}, {"stream_losses", T::kInt}, {"connect_failures", T::kInt},
                {"last_error", T::kText}});
  if (!services_.replication) return rs;
  for (const auto& s : services_.replication->statuses()) {
    rs.row()
        .text(s->database)
        .text(s->slot)
        .text(s->publication)
        .text(s->persistent ? "yes" : "no")
        .text(s->state())
        .num(int64_t(s->lag_bytes()))
        .text(lsn_text(s->confirmed_lsn.load(std::memory_order_relaxed)))
        .text(lsn_text(s->server_wal_end.load(std::memory_order_relaxed)))
        .num(load(s->commits))
        .num(load(s->table_bumps))
        .num(load(s->truncates))
        .num(double(s->last_apply_lag_us.load(std::memory_order_relaxed)) / 1000.0)
        .num(s->apply_lag_seconds.snapshot().quantile(0.99) * 1000.0)
        .num(load(s->stream_losses))
        .num(load(s->connect_failures))
        .text(s->last_error());
  }
  return rs;
}

}  // namespace pgrelay::proxy
