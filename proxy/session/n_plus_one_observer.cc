// NPlusOneObserver: statements, their parameter values and their rows, fed to the N+1 detector.
#include "proxy/session/n_plus_one_observer.h"

#include <charconv>
#include <chrono>

#include "analyzer/fingerprint.h"
#include "protocol/bytes.h"
#include "protocol/messages.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

uint64_t micros(EventClock::time_point t) {
  return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count());
}

std::string_view as_view(protocol::Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A DataRow's values as views into its body, without allocating; false when it is malformed.
bool data_row_values(protocol::Bytes body, std::vector<std::optional<std::string_view>>& out) {
  out.clear();
  if (body.size() < 2) return false;
  const size_t count = (size_t(uint8_t(body[0])) << 8) | size_t(uint8_t(body[1]));
  size_t at = 2;
  for (size_t i = 0; i < count; ++i) {
    if (body.size() - at < 4) return false;
    const int32_t length = int32_t(protocol::load_u32(&body[at]));
    at += 4;
    if (length < 0) {
      out.emplace_back(std::nullopt);
      continue;
    }
    if (body.size() - at < size_t(length)) return false;
    out.emplace_back(as_view(body.subspan(at, size_t(length))));
    at += size_t(length);
  }
  return true;
}

// What one call decodes into: scratch of the thread's (capacity kept), not of each session's
// observer. Nothing keeps a view into it past the call that filled it.
struct Scratch {
  std::vector<std::string> owned;
  std::vector<std::string_view> params, names;
  std::vector<std::optional<std::string_view>> row;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

analyzer::NPlusOneOptions options_from(const conf::Config& c) {
  analyzer::NPlusOneOptions o;
  o.threshold = size_t(c.n_plus_one_threshold);
  o.window_micros = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(c.n_plus_one_window).count());
  return o;
}

}  // namespace

NPlusOneObserver::NPlusOneObserver(analyzer::NPlusOneRegistry& registry, const analyzer::QueryStatsShard& texts,
                                   QueryOrigin origin, const conf::Config& config)
    : registry_(registry), texts_(texts), origin_(origin), config_(config), detector_(options_from(config)) {}

void NPlusOneObserver::parameters(const StatementAnalysis& a, uint32_t index, protocol::Bytes bind,
                                  std::vector<std::string>& owned, std::vector<std::string_view>& out) {
  owned.clear();
  out.clear();
  const analyzer::Fingerprint* fp = a.fingerprint(index);
  if (!fp || fp->constants.empty() || a.text_truncated) return;
  const std::string_view text = a.statement_text(index);
  std::optional<protocol::Bind> b;
  owned.reserve(fp->constants.size());   // views into these strings must not move
  for (const analyzer::ConstantSpan& c : fp->constants) {
    if (c.kind != analyzer::ConstantKind::kParameter) {
      out.emplace_back(owned.emplace_back(analyzer::constant_value(text, c)));
      continue;
    }
    // $n: the Bind's n-th value (NULL, or one it does not have: empty, never looked up).
    if (!b && !bind.empty()) {
      if (auto decoded = protocol::decode_bind(bind); decoded.ok()) b = std::move(*decoded);
    }
    const std::string_view ref = text.substr(c.offset, c.length);
    size_t n = 0;
    std::from_chars(ref.data() + std::min<size_t>(1, ref.size()), ref.data() + ref.size(), n);
    if (b && n >= 1 && n <= b->params.size() && b->params[n - 1]) {
      out.emplace_back(as_view(*b->params[n - 1]));
    } else {
      out.emplace_back();
    }
  }
}

void NPlusOneObserver::on_start(const StatementStart& s) {
  // Pipelined behind an unanswered statement, or not fingerprinted: not fed.
  if (current_ != 0 || !s.analysis || s.analysis->fingerprint_length == 0) return;
  // Only what is cheap now: the statement is on its way to the server, and its fingerprint (a
  // lexing pass) waits until its answer is in (feed_start).
  const StatementAnalysis& a = *s.analysis;
  current_ = s.seq;
  current_read_ = s.index < a.statement_count() && a.effects.statement_class(s.index) == analyzer::StatementClass::kRead;
  current_started_ = false;
  current_analysis_ = s.analysis;
  current_index_ = s.index;
  current_tx_ = s.tx_status ? s.tx_status : tx_status_;
  current_sent_ = s.sent;
  // The Bind is gone after this call; only a read's values are looked at.
  current_bind_.clear();
  if (current_read_) current_bind_.assign(reinterpret_cast<const char*>(s.bind.data()), s.bind.size());
}

void NPlusOneObserver::feed_start() {
  if (current_started_) return;
  current_started_ = true;
  const StatementAnalysis& a = *current_analysis_;
  const analyzer::Fingerprint* fp = a.fingerprint(current_index_);
  analyzer::NPlusOneStatement statement{.fingerprint = fp ? fp->hash : 0,
                                        .read = current_read_ && fp != nullptr,
                                        .in_transaction = current_tx_ == 'T' || current_tx_ == 'E',
                                        .now_micros = micros(current_sent_),
                                        .parameters = {}};
  // A read repeated after its pattern was reported (a loop's 6th turn on) needs no values.
  Scratch& sc = scratch();
  if (detector_.wants_parameters(statement)) {
    parameters(a, current_index_, protocol::as_bytes(current_bind_), sc.owned, sc.params);
    statement.parameters = sc.params;
  }
  detector_.statement_start(statement);
}

void NPlusOneObserver::on_message(uint64_t seq, char type, protocol::Bytes body) {
  if (seq != current_ || !current_read_ || body.empty()) return;
  feed_start();   // a read's rows need its start first
  // Decoded only while the detector still remembers values (a unit holds a few thousand).
  Scratch& sc = scratch();
  if (type == be::kRowDescription) {
    if (detector_.wants_columns() && protocol::row_description_names(body, sc.names)) detector_.columns(sc.names);
  } else if (type == be::kDataRow && detector_.wants_rows()) {
    if (data_row_values(body, sc.row)) detector_.row(sc.row);
  }
}

void NPlusOneObserver::on_end(const StatementEnd& e) {
  if (e.seq != current_) return;
  feed_start();
  current_ = 0;
  current_analysis_.reset();
  if (auto d = detector_.statement_end(micros(e.ended))) report(*d, e);
}

void NPlusOneObserver::on_ready(char tx_status) {
  if (tx_status == 'I' && tx_status_ != 'I') detector_.transaction_end();
  tx_status_ = tx_status;
}

void NPlusOneObserver::report(const analyzer::NPlusOneDetection& d, const StatementEnd& e) {
  const analyzer::Fingerprint* fp = e.analysis ? e.analysis->fingerprint(e.index) : nullptr;
  analyzer::NPlusOneReport r{.database = origin_.database,
                             .user = origin_.user,
                             .fingerprint = d.fingerprint,
                             .normalized = fp ? std::string_view(fp->normalized) : std::string_view()};
  r.executions = d.executions;
  r.now_unix_micros = unix_micros(/*coarse=*/true);
  // The source ran earlier in this session, so on this worker: its text is in this worker's shard
  // (unless evicted since, and then the report names its fingerprint alone).
  std::string source_text;
  if (d.source) {
    r.source_fingerprint = d.source->fingerprint;
    r.source_column = d.source->column;
    source_text = texts_.normalized({d.source->fingerprint, origin_.database, origin_.user});
    r.source_normalized = source_text;
  }
  if (!registry_.report(r)) return;
  std::string where = " with values from no earlier result seen";
  if (r.source_fingerprint) {
    where = " with values from column \"" + std::string(r.source_column) + "\" of";
    where += r.source_normalized.empty() ? " the statement with fingerprint " + analyzer::fingerprint_hex(*r.source_fingerprint)
                                         : ": " + std::string(r.source_normalized);
  }
  log_warning("N+1 query pattern in ", origin_.database, "/", origin_.user, " from ", origin_.client, ": ",
              r.normalized, " ran ", d.executions, "+ times in one unit of work", where, ". ",
              analyzer::n_plus_one_suggestion(d.executions, r.source_column));
}

}  // namespace pgrelay::proxy
