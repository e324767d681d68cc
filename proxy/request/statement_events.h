// Statement events: what each statement a client sent did, told to the observers that listen.
//
// In the spirit of Envoy's postgres_proxy decoder callbacks. The client direction tells
// StatementEvents what it sends (each statement of a Query, each Execute, each request's end);
// the server direction feeds it every backend message and the bytes that went to the client.
// From those it reports, per statement, in order: started (text, prepared statement, portal,
// Bind parameters, transaction status, time waited for a server), the first response, each
// backend message, the bytes of the outgoing buffer that answer it (concatenated over its life,
// exactly what the client received for it: what a cache fill copies), and its end: completed
// (CommandComplete tag, rows), empty query, suspended (Execute row limit reached), failed
// (SQLSTATE), skipped (an earlier error in its request meant the server never ran it) or
// abandoned (the session or its server connection ended first). Every started statement ends
// exactly once. A statement's duration runs from when it could start (sent, and the statement
// before it on the session finished) to its end.
//
// Pure: no I/O; the caller passes the time. Used from the session's own thread only. With no
// observer it does nothing at all, so a session without listeners pays one branch per call.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "protocol/bytes.h"
#include "proxy/base/lazy_fifo.h"
#include "proxy/request/statement_analysis.h"

namespace pgrelay::proxy {

using EventClock = std::chrono::steady_clock;

enum class StatementOutcome : uint8_t { kCompleted, kEmpty, kSuspended, kFailed, kSkipped, kAbandoned };
// "completed", "empty", "suspended", "failed", "skipped", "abandoned".
std::string_view outcome_name(StatementOutcome o);

// Views are valid during the callback only; the analysis may be kept (it is shared).
struct StatementStart {
  uint64_t seq = 0;                      // per session, from 1, in the order the server runs them
  AnalysisPtr analysis;                  // null when unknown (an Execute of a portal pgrelay never saw bound)
  uint32_t index = 0;                    // which statement of a multi-statement Query; 0 for an Execute
  std::string_view text;                 // this statement's text, "" when unknown
  bool extended = false;                 // an Execute (else a simple Query's statement)
  std::string_view statement_name;       // Execute: the client's prepared statement ("" = unnamed)
  std::string_view portal;               // Execute: the portal ("" = unnamed)
  protocol::Bytes bind;                  // Execute: its portal's Bind body when sent with it (protocol::decode_bind)
  char tx_status = 0;                    // 'I', 'T', 'E' its request started in; 0 when requests were ahead of it
  EventClock::duration wait{};           // its request's wait for a server connection
  EventClock::time_point sent{};         // when it went to the server (filled in by StatementEvents)
};

struct StatementEnd {
  uint64_t seq = 0;
  AnalysisPtr analysis;
  uint32_t index = 0;
  StatementOutcome outcome = StatementOutcome::kCompleted;
  std::string_view tag;                  // kCompleted: the CommandComplete tag
  std::string_view sqlstate;             // kFailed, kSkipped: the error's SQLSTATE
  uint64_t rows = 0;                     // rows returned, affected or copied (from the tag when it counts them)
  EventClock::duration duration{};
  EventClock::duration wait{};
  EventClock::time_point ended{};        // when its end was seen
};

class StatementObserver {
 public:
  virtual ~StatementObserver() = default;
  virtual void on_start(const StatementStart&) {}
  virtual void on_first_response(uint64_t /*seq*/) {}
  // A backend message answering statement `seq`; `body` only for the types the pump inspects
  // (RowDescription is not among them: empty, as DataRow and CopyData).
  virtual void on_message(uint64_t /*seq*/, char /*type*/, protocol::Bytes /*body*/) {}
  virtual void on_response_bytes(uint64_t /*seq*/, protocol::Bytes /*bytes*/) {}
  virtual void on_end(const StatementEnd&) {}
  // A request's ReadyForQuery, with the transaction status it reports ('I', 'T', 'E').
  virtual void on_ready(char /*tx_status*/) {}

  // What it listens to beyond starts, ends and ReadyForQuery: the work for first responses and
  // messages, or for response bytes, is skipped when no observer wants it.
  virtual bool wants_messages() const { return true; }
  virtual bool wants_response_bytes() const { return true; }
};

class StatementEvents {
 public:
  // `observer` is not owned and must outlive this object.
  void add_observer(StatementObserver* observer) {
    observers_.push_back(observer);
    messages_wanted_ = messages_wanted_ || observer->wants_messages();
    bytes_wanted_ = bytes_wanted_ || observer->wants_response_bytes();
  }
  bool active() const { return !observers_.empty(); }

  // --- the client direction, as it sends ---
  // A statement goes to the server: each of a Query's (index 0..n-1, `s.index` set by the
  // caller) or an Execute. Fills in seq.
  void statement_sent(StatementStart s, EventClock::time_point now);
  // A request's last message went (Query, Sync, FunctionCall): its ReadyForQuery ends it.
  void request_end_sent();

  // --- the server direction, for each chunk it forwards ---
  // Every message of the chunk in order, then where its output ends in the outgoing bytes,
  // then end_chunk() with the bytes that went to the client. `skipped_requests`: for an
  // ErrorResponse that answered an extended-protocol message, the Queries (and FunctionCalls)
  // sent before the next Sync, which the server skips (ReplyFailures::skipped_requests).
  void message(char type, protocol::Bytes body, EventClock::time_point now, uint32_t skipped_requests = 0);
  void emitted(size_t out_end);
  void end_chunk(protocol::Bytes sent);

  // The server connection or the session ended: every statement still open is abandoned.
  void abandon_all(EventClock::time_point now);

  size_t open_statements() const;

 private:
  struct Pending {
    bool request_end = false;            // a request's boundary rather than a statement
    bool responded = false;
    bool extended = false;               // an Execute (else a Query's statement)
    uint32_t index = 0;
    uint64_t seq = 0;
    uint64_t rows = 0;
    AnalysisPtr analysis;
    EventClock::time_point sent{};
    EventClock::duration wait{};
  };
  struct Ended {
    uint64_t seq = 0;
    StatementEnd end{};
    std::string tag{}, sqlstate{};       // owned: the message bodies are gone by end_chunk()
    char ready = 0;                      // not a statement: a ReadyForQuery with this status
  };

  Pending* head();                       // the statement now answered, if any
  void end_head(StatementOutcome o, std::string_view tag, std::string_view sqlstate, EventClock::time_point now);
  void flush_ended();
  // After an extended-protocol error: the next `n` request ends are Queries the server skips.
  void skip_requests(uint32_t n, std::string_view sqlstate, EventClock::time_point now);

  std::vector<StatementObserver*> observers_;
  bool messages_wanted_ = false;
  bool bytes_wanted_ = false;
  LazyFifo<Pending> pending_;   // nothing allocated for a client that sends nothing
  std::vector<Ended> ended_;             // reported at end_chunk(), after their bytes
  uint64_t next_seq_ = 1;
  EventClock::time_point last_end_{};
  // Byte attribution within the current chunk.
  uint64_t message_seq_ = 0;             // the statement the last message answered (0: none)
  uint64_t segment_seq_ = 0;
  size_t segment_from_ = 0;
  size_t last_out_end_ = 0;
  struct Segment { uint64_t seq; size_t from, to; };
  std::vector<Segment> segments_;
};

}  // namespace pgrelay::proxy
