// The query analyzer in the admin console: SHOW QUERIES, SHOW SLOW, SHOW N_PLUS_ONE, RESET QUERIES
// (docs/admin.md).

#include "analyzer/fingerprint.h"
#include "proxy/admin/admin_console.h"
#include "proxy/session/slow_query_log.h"

namespace pgrelay::proxy {
namespace {

using T = ResultSet::Type;

double ms(uint64_t micros) { return double(micros) / 1000.0; }

// The console's time format with milliseconds, or "" for none.
std::string timestamp(int64_t unix_micros) {
  if (unix_micros <= 0) return "";
  return format_utc(unix_micros / 1'000'000, int(unix_micros % 1'000'000 / 1000));
}

// "23:2 40:1": errors by SQLSTATE class.
std::string error_classes(const analyzer::QueryStats& s) {
  std::string out;
  for (const auto& e : s.errors_by_class) {
    if (!out.empty()) out += ' ';
    out += std::string(e.sqlstate_class.data(), 2) + ":" + std::to_string(e.count);
  }
  return out;
}

}  // namespace

ResultSet AdminConsole::show_queries() const {
  ResultSet rs({{"database", T::kText},      {"user", T::kText},         {"fingerprint", T::kText},
                {"calls", T::kInt},          {"rows", T::kInt},          {"errors", T::kInt},
                {"error_classes", T::kText}, {"total_ms", T::kFloat},    {"mean_ms", T::kFloat},
                {"min_ms", T::kFloat},       {"max_ms", T::kFloat},      {"p50_ms", T::kFloat},
                {"p95_ms", T::kFloat},       {"p99_ms", T::kFloat},      {"wait_ms", T::kFloat},
                {"first_seen", T::kText},    {"last_seen", T::kText},    {"query", T::kText}});
  const analyzer::QueryStatsSnapshot snapshot = services_.query_stats.snapshot();
  for (const auto& [key, s] : snapshot.entries) {
    rs.row()
        .text(key.database)
        .text(key.user)
        .text(analyzer::fingerprint_hex(key.fingerprint))
        .num(int64_t(s.calls))
        .num(int64_t(s.rows))
        .num(int64_t(s.errors))
        .text(error_classes(s))
        .num(ms(s.total_micros))
        .num(ms(s.mean_micros()))
        .num(ms(s.min_micros))
        .num(ms(s.max_micros))
        .num(ms(s.quantile_micros(0.5)))
        .num(ms(s.quantile_micros(0.95)))
        .num(ms(s.quantile_micros(0.99)))
        .num(ms(s.wait_micros))
        .text(timestamp(s.first_seen_unix_micros))
        .text(timestamp(s.last_seen_unix_micros))
        .text(s.normalized);
  }
  return rs;
}

ResultSet AdminConsole::show_slow() const {
  ResultSet rs({{"time", T::kText},     {"database", T::kText},         {"user", T::kText},
                {"client", T::kText},   {"application_name", T::kText}, {"fingerprint", T::kText},
                {"duration_ms", T::kFloat}, {"wait_ms", T::kFloat},     {"rows", T::kInt},
                {"sqlstate", T::kText}, {"query", T::kText}});
  if (!services_.slow_queries) return rs;
  for (const SlowQuery& q : services_.slow_queries->recent()) {
    rs.row()
        .text(timestamp(q.unix_micros))
        .text(q.database)
        .text(q.user)
        .text(q.client)
        .text(q.application_name)
        .text(analyzer::fingerprint_hex(q.fingerprint))
        .num(ms(q.duration_micros))
        .num(ms(q.wait_micros))
        .num(int64_t(q.rows))
        .text(q.sqlstate)
        .text(q.query);
  }
  return rs;
}

ResultSet AdminConsole::show_n_plus_one() const {
  ResultSet rs({{"database", T::kText},        {"user", T::kText},          {"fingerprint", T::kText},
                {"detections", T::kInt},       {"executions", T::kInt},     {"source_fingerprint", T::kText},
                {"source_column", T::kText},   {"first_seen", T::kText},    {"last_seen", T::kText},
                {"query", T::kText},           {"source_query", T::kText},  {"suggestion", T::kText}});
  for (const analyzer::NPlusOnePattern& p : services_.n_plus_one.snapshot()) {
    auto& row = rs.row()
                    .text(p.database)
                    .text(p.user)
                    .text(analyzer::fingerprint_hex(p.fingerprint))
                    .num(int64_t(p.detections))
                    .num(int64_t(p.max_executions));
    if (p.source_fingerprint) {
      row.text(analyzer::fingerprint_hex(*p.source_fingerprint)).text(p.source_column);
    } else {
      row.null().null();
    }
    row.text(timestamp(p.first_seen_unix_micros))
        .text(timestamp(p.last_seen_unix_micros))
        .text(p.normalized)
        .text(p.source_normalized)
        .text(p.suggestion);
  }
  return rs;
}

void AdminConsole::reset_queries() {
  services_.query_stats.reset();
  services_.n_plus_one.reset();
  if (services_.slow_queries) services_.slow_queries->reset();
}

}  // namespace pgrelay::proxy
