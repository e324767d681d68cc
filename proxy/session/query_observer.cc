// QueryObserver: per-fingerprint statistics and the slow-query check for one session.
#include "proxy/session/query_observer.h"

#include <chrono>
#include <ctime>

#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

uint64_t micros(EventClock::duration d) {
  return uint64_t(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

bool ran(StatementOutcome o) {
  return o == StatementOutcome::kCompleted || o == StatementOutcome::kFailed || o == StatementOutcome::kSuspended;
}

}  // namespace

int64_t unix_micros(bool coarse) {
  timespec ts{};
  clock_gettime(coarse ? CLOCK_REALTIME_COARSE : CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

void QueryObserver::on_start(const StatementStart& s) {
  if (!config_.log_parameters || config_.slow_query_threshold.count() == 0) return;
  Sent sent;
  sent.text = cut_utf8(s.text, SlowQueryLog::kMaxLoggedText);
  if (!s.bind.empty()) {
    if (auto b = protocol::decode_bind(s.bind); b.ok()) {
      for (size_t i = 0; i < b->params.size(); ++i) {
        const auto& v = b->params[i];
        if (!v) {
          sent.parameters.emplace_back();
          continue;
        }
        // One format code applies to all; none means text (protocol.html, Bind).
        const int16_t format = b->param_formats.empty() ? 0
                               : b->param_formats.size() == 1 ? b->param_formats[0]
                               : i < b->param_formats.size() ? b->param_formats[i] : 0;
        const std::string_view bytes(reinterpret_cast<const char*>(v->data()), v->size());
        sent.parameters.emplace_back(SlowQueryLog::parameter_text(bytes, format == 1));
      }
    }
  }
  sent_[s.seq] = std::move(sent);
}

void QueryObserver::on_end(const StatementEnd& e) {
  std::optional<Sent> sent;
  if (!sent_.empty()) {
    if (auto it = sent_.find(e.seq); it != sent_.end()) {
      sent = std::move(it->second);
      sent_.erase(it);
    }
  }
  if (!ran(e.outcome) || !e.analysis) return;
  const analyzer::Fingerprint* fp = e.analysis->fingerprint(e.index);
  if (!fp) return;   // not fingerprinted: the analyzer was off when its text was analyzed
  const uint64_t duration = micros(e.duration);
  shard_.record({.fingerprint = fp->hash,
                 .database = origin_.database,
                 .user = origin_.user,
                 .normalized = fp->normalized,
                 .rows = e.rows,
                 .sqlstate = e.outcome == StatementOutcome::kFailed ? e.sqlstate : std::string_view(),
                 .duration_micros = duration,
                 .wait_micros = micros(e.wait),
                 .now_unix_micros = unix_micros(/*coarse=*/true)});
  const auto threshold = config_.slow_query_threshold;
  if (threshold.count() == 0 || e.duration < threshold) return;
  SlowQuery q = slow_query(e, *fp, unix_micros(/*coarse=*/false));
  if (sent) {
    q.text = std::move(sent->text);
    q.parameters = std::move(sent->parameters);
  }
  slow_.record(std::move(q));
}

SlowQuery QueryObserver::slow_query(const StatementEnd& e, const analyzer::Fingerprint& fp, int64_t now_micros) {
  SlowQuery q;
  q.unix_micros = now_micros;
  q.fingerprint = fp.hash;
  q.query = fp.normalized;
  q.duration_micros = micros(e.duration);
  q.wait_micros = micros(e.wait);
  q.rows = e.rows;
  q.database = origin_.database;
  q.user = origin_.user;
  q.client = origin_.client;
  if (origin_.parameters) {
    if (auto it = origin_.parameters->find("application_name"); it != origin_.parameters->end())
      q.application_name = it->second;
  }
  if (e.outcome == StatementOutcome::kFailed) q.sqlstate = e.sqlstate;
  return q;
}

}  // namespace pgrelay::proxy
