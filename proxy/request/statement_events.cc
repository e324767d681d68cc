// Statement events: matching backend messages to the statements they answer.
#include "proxy/request/statement_events.h"

#include <charconv>
#include <optional>

#include "protocol/error_fields.h"
#include "protocol/messages.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

// The row count a CommandComplete tag carries (its last word), for the commands that have one.
std::optional<uint64_t> tag_rows(std::string_view tag) {
  static constexpr std::string_view kCounted[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE",
                                                   "COPY",   "FETCH",  "MOVE"};
  const size_t space = tag.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  bool counted = false;
  for (auto c : kCounted) counted = counted || tag.substr(0, space) == c;
  if (!counted) return std::nullopt;
  const std::string_view last = tag.substr(tag.rfind(' ') + 1);
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(last.data(), last.data() + last.size(), n);
  if (ec != std::errc() || p != last.data() + last.size()) return std::nullopt;
  return n;
}

}  // namespace

std::string_view outcome_name(StatementOutcome o) {
  switch (o) {
    case StatementOutcome::kCompleted: return "completed";
    case StatementOutcome::kEmpty: return "empty";
    case StatementOutcome::kSuspended: return "suspended";
    case StatementOutcome::kFailed: return "failed";
    case StatementOutcome::kSkipped: return "skipped";
    case StatementOutcome::kAbandoned: return "abandoned";
  }
  return "?";
}

void StatementEvents::statement_sent(StatementStart s, EventClock::time_point now) {
  if (!active()) return;
  s.seq = next_seq_++;
  s.sent = now;
  for (auto* o : observers_) o->on_start(s);
  Pending p;
  p.seq = s.seq;
  p.index = s.index;
  p.extended = s.extended;
  p.analysis = std::move(s.analysis);
  p.sent = now;
  p.wait = s.wait;
  pending_.push_back(std::move(p));
}

void StatementEvents::request_end_sent() {
  if (!active()) return;
  Pending p;
  p.request_end = true;
  pending_.push_back(std::move(p));
}

StatementEvents::Pending* StatementEvents::head() {
  if (pending_.empty() || pending_.front().request_end) return nullptr;
  return &pending_.front();
}

size_t StatementEvents::open_statements() const {
  size_t n = 0;
  for (const auto& p : pending_) n += p.request_end ? 0 : 1;
  return n;
}

void StatementEvents::end_head(StatementOutcome o, std::string_view tag, std::string_view sqlstate,
                               EventClock::time_point now) {
  Pending& p = pending_.front();
  Ended e;
  e.seq = p.seq;
  e.tag = tag;
  e.sqlstate = sqlstate;
  e.end.seq = p.seq;
  e.end.analysis = std::move(p.analysis);
  e.end.index = p.index;
  e.end.outcome = o;
  e.end.rows = p.rows;
  if (auto n = o == StatementOutcome::kCompleted ? tag_rows(tag) : std::nullopt) e.end.rows = *n;
  const EventClock::time_point began = p.sent > last_end_ ? p.sent : last_end_;
  e.end.duration = now > began ? now - began : EventClock::duration::zero();
  e.end.wait = p.wait;
  e.end.ended = now;
  if (o != StatementOutcome::kSkipped) last_end_ = now;
  ended_.push_back(std::move(e));
  pending_.pop_front();
}

void StatementEvents::message(char type, protocol::Bytes body, EventClock::time_point now, uint32_t skipped_requests) {
  if (!active()) return;
  message_seq_ = 0;
  if (type == be::kReadyForQuery) {
    // The request is over; a statement still open was never answered (the server and pgrelay
    // disagree on how many statements a Query held).
    while (!pending_.empty() && !pending_.front().request_end) end_head(StatementOutcome::kSkipped, {}, {}, now);
    if (!pending_.empty()) pending_.pop_front();
    last_end_ = now;
    // Told after the ends of its statements, at end_chunk(), as they are.
    Ended ready;
    ready.ready = body.empty() ? 'I' : char(body[0]);
    ended_.push_back(std::move(ready));
    return;
  }
  if (type == be::kNoticeResponse || type == be::kNotificationResponse || type == be::kParameterStatus) {
    if (Pending* p = head()) message_seq_ = p->seq;   // bytes in its stream, but no answer of its own
    return;
  }
  Pending* p = head();
  if (!p) {   // answers to Parse/Bind/Describe of a request without Execute, and the like
    if (type == be::kErrorResponse && skipped_requests > 0) {
      auto e = protocol::decode_error_notice(body);
      skip_requests(skipped_requests, e.ok() ? e->sqlstate : std::string_view(), now);
    }
    return;
  }
  message_seq_ = p->seq;
  if (messages_wanted_) {
    if (!p->responded) {
      p->responded = true;
      for (auto* o : observers_) o->on_first_response(p->seq);
    }
    for (auto* o : observers_) o->on_message(p->seq, type, body);
  }
  switch (type) {
    case be::kDataRow: ++p->rows; break;
    case be::kCommandComplete: {
      auto cc = protocol::decode_command_complete(body);
      end_head(StatementOutcome::kCompleted, cc.ok() ? cc->tag : std::string_view(), {}, now);
      break;
    }
    case be::kEmptyQueryResponse: end_head(StatementOutcome::kEmpty, {}, {}, now); break;
    case be::kPortalSuspended: end_head(StatementOutcome::kSuspended, {}, {}, now); break;
    case be::kErrorResponse: {
      auto e = protocol::decode_error_notice(body);
      const std::string sqlstate = e.ok() ? std::string(e->sqlstate) : std::string();
      // A Query's statement at the head when Queries are skipped: the error is an extended-protocol
      // message's ahead of it (a Parse or Bind), and the Query never ran.
      const bool query_skipped = skipped_requests > 0 && !p->extended;
      end_head(query_skipped ? StatementOutcome::kSkipped : StatementOutcome::kFailed, {}, sqlstate, now);
      // The server skips the rest of the request: a Query's later statements, a batch's up to Sync,
      // and Queries sent before that Sync, whose ends come no more.
      while (head()) end_head(StatementOutcome::kSkipped, {}, sqlstate, now);
      skip_requests(skipped_requests, sqlstate, now);
      break;
    }
    default: break;
  }
}

void StatementEvents::skip_requests(uint32_t n, std::string_view sqlstate, EventClock::time_point now) {
  for (uint32_t k = 0; k < n && !pending_.empty(); ++k) {
    pending_.pop_front();   // a skipped Query's end: no ReadyForQuery comes for it
    while (head()) end_head(StatementOutcome::kSkipped, {}, sqlstate, now);
  }
}

void StatementEvents::emitted(size_t out_end) {
  if (!bytes_wanted_) return;
  if (message_seq_ != segment_seq_) {
    if (segment_seq_ != 0 && last_out_end_ > segment_from_) segments_.push_back({segment_seq_, segment_from_, last_out_end_});
    segment_seq_ = message_seq_;
    segment_from_ = last_out_end_;
  }
  last_out_end_ = out_end;
}

void StatementEvents::end_chunk(protocol::Bytes sent) {
  if (!active()) return;
  if (!bytes_wanted_) {
    flush_ended();
    return;
  }
  if (segment_seq_ != 0 && last_out_end_ > segment_from_) segments_.push_back({segment_seq_, segment_from_, last_out_end_});
  // Bytes past the last whole message are the start of one that streams on: the statement being
  // answered now receives it.
  const Pending* p = head();
  const uint64_t streaming = p ? p->seq : 0;
  if (streaming != 0 && sent.size() > last_out_end_) segments_.push_back({streaming, last_out_end_, sent.size()});
  for (const Segment& s : segments_)
    for (auto* o : observers_) o->on_response_bytes(s.seq, sent.subspan(s.from, s.to - s.from));
  segments_.clear();
  segment_seq_ = streaming;
  segment_from_ = 0;
  last_out_end_ = 0;
  flush_ended();
}

void StatementEvents::flush_ended() {
  for (Ended& e : ended_) {
    if (e.ready) {
      for (auto* o : observers_) o->on_ready(e.ready);
      continue;
    }
    e.end.tag = e.tag;
    e.end.sqlstate = e.sqlstate;
    for (auto* o : observers_) o->on_end(e.end);
  }
  ended_.clear();
}

void StatementEvents::abandon_all(EventClock::time_point now) {
  if (!active()) return;
  while (!pending_.empty()) {
    if (pending_.front().request_end) {
      pending_.pop_front();
      continue;
    }
    end_head(StatementOutcome::kAbandoned, {}, {}, now);
  }
  flush_ended();
}

}  // namespace pgrelay::proxy
