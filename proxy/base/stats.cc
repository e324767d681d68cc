// Counters and histograms: observing, snapshots, per-period totals, and the per-session meter.
#include "proxy/base/stats.h"

#include <algorithm>

namespace pgrelay::proxy {

namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;

uint64_t micros(uint64_t ns) { return ns / 1000; }
}  // namespace

void LatencyHistogram::observe(std::chrono::nanoseconds d) {
  const int64_t ns = std::max<int64_t>(0, d.count());
  const double seconds = double(ns) / 1e9;
  const auto it = std::lower_bound(bounds_->begin(), bounds_->end(), seconds);   // le: bound >= value
  counts_[size_t(it - bounds_->begin())].fetch_add(1, kRelaxed);
  sum_ns_.fetch_add(uint64_t(ns), kRelaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  for (size_t i = 0; i < kBuckets; ++i) {
    s.counts[i] = counts_[i].load(kRelaxed);
    s.count += s.counts[i];
  }
  s.sum_ns = sum_ns_.load(kRelaxed);
  return s;
}

double LatencyHistogram::Snapshot::quantile(double q) const {
  if (count == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * double(count);
  uint64_t below = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    const uint64_t in = counts[i];
    if (in > 0 && double(below + in) >= rank) {
      if (i == bounds->size()) return bounds->back();   // +Inf: the highest finite bound
      const double lower = i == 0 ? 0.0 : (*bounds)[i - 1];
      const double upper = (*bounds)[i];
      return lower + (upper - lower) * (rank - double(below)) / double(in);
    }
    below += in;
  }
  return bounds->back();
}

PoolTotals PoolCounters::totals() const {
  const auto q = query_seconds.snapshot();
  const auto x = transaction_seconds.snapshot();
  const auto w = wait_seconds.snapshot();
  PoolTotals t;
  t.transactions = x.count;
  t.queries = q.count;
  t.received = bytes_received.load(kRelaxed);
  t.sent = bytes_sent.load(kRelaxed);
  t.xact_us = micros(x.sum_ns);
  t.query_us = micros(q.sum_ns);
  t.wait_us = micros(w.sum_ns);
  t.waits = w.count;
  return t;
}

std::shared_ptr<PoolCounters> PoolCountersRegistry::get(const std::string& database, const std::string& user) {
  std::lock_guard lock(mu_);
  Entry& e = pools_[{database, user}];
  if (!e.counters) e.counters = std::make_shared<PoolCounters>(database, user);
  return e.counters;
}

std::vector<std::shared_ptr<PoolCounters>> PoolCountersRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<PoolCounters>> out;
  out.reserve(pools_.size());
  for (const auto& [key, e] : pools_) out.push_back(e.counters);
  return out;
}

void PoolCountersRegistry::roll_period(std::chrono::steady_clock::time_point now, std::chrono::seconds period) {
  std::lock_guard lock(mu_);
  if (now - period_start_ < period) return;
  last_seconds_ = std::chrono::duration<double>(now - period_start_).count();
  period_start_ = now;
  for (auto& [key, e] : pools_) {
    e.start = e.end;
    e.end = e.counters->totals();
  }
}

PoolCountersRegistry::Period PoolCountersRegistry::last_period(const PoolCounters& pool) const {
  std::lock_guard lock(mu_);
  auto it = pools_.find({pool.database, pool.user});
  if (it == pools_.end()) return {};
  return {it->second.start, it->second.end, last_seconds_};
}

const char* to_string(RejectReason r) {
  switch (r) {
    case RejectReason::kTooManyConnections: return "too_many_connections";
    case RejectReason::kUnknownDatabase: return "unknown_database";
    case RejectReason::kAuthFailed: return "auth_failed";
    case RejectReason::kAuthRejected: return "auth_rejected";
    case RejectReason::kNotAdmin: return "not_admin";
    case RejectReason::kDisabled: return "database_disabled";
    case RejectReason::kProtocol: return "protocol_violation";
    case RejectReason::kUnsupported: return "unsupported";
    case RejectReason::kServerUnavailable: return "server_unavailable";
    case RejectReason::kOther: case RejectReason::kCount: break;
  }
  return "other";
}

RejectReason reject_reason_for(std::string_view sqlstate) {
  if (sqlstate == "53300") return RejectReason::kTooManyConnections;
  if (sqlstate == "3D000") return RejectReason::kUnknownDatabase;
  if (sqlstate == "28P01") return RejectReason::kAuthFailed;
  if (sqlstate == "28000") return RejectReason::kAuthRejected;
  if (sqlstate == "42501") return RejectReason::kNotAdmin;
  if (sqlstate == "55000") return RejectReason::kDisabled;
  if (sqlstate == "08P01") return RejectReason::kProtocol;
  if (sqlstate == "0A000") return RejectReason::kUnsupported;
  if (sqlstate.starts_with("08") || sqlstate == "57P03") return RejectReason::kServerUnavailable;
  return RejectReason::kOther;
}

SessionMeter::~SessionMeter() {
  if (pool_) pool_->clients.fetch_sub(1, kRelaxed);
}

void SessionMeter::bind(std::shared_ptr<PoolCounters> pool) {
  if (pool_) pool_->clients.fetch_sub(1, kRelaxed);
  pool_ = std::move(pool);
  if (pool_) pool_->clients.fetch_add(1, kRelaxed);
}

void SessionMeter::on_request(size_t bytes, int requests) {
  if (!pool_) return;
  pool_->bytes_received.fetch_add(bytes, kRelaxed);
  if (requests <= 0) return;
  const auto now = Clock::now();
  request_time_ = std::chrono::system_clock::now();
  if (pending_ == 0) query_start_ = now;
  if (!in_transaction_) {
    in_transaction_ = true;
    xact_start_ = now;
  }
  pending_ += requests;
}

void SessionMeter::on_ready_for_query(char tx_status) {
  if (!pool_ || pending_ == 0) return;   // not an answer to a client's request
  const auto now = Clock::now();
  --pending_;
  pool_->query_seconds.observe(now - query_start_);
  query_start_ = now;   // a pipelined request's time starts when the previous one is answered
  if (tx_status == 'I') {
    if (in_transaction_) pool_->transaction_seconds.observe(now - xact_start_);
    in_transaction_ = pending_ > 0;   // pipelined requests start the next one now
    xact_start_ = now;
  }
}

void SessionMeter::on_reply(size_t bytes) {
  if (pool_) pool_->bytes_sent.fetch_add(bytes, kRelaxed);
}

}  // namespace pgrelay::proxy
