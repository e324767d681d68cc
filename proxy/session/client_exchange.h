// The state of one client session's requests in flight (ClientSession::Exchange), and its timers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/error_fields.h"
#include "proxy/base/startup_params.h"
#include "proxy/net/asio.h"
#include "proxy/net/flight.h"
#include "proxy/request/request_reader.h"
#include "proxy/request/statement_events.h"
#include "proxy/request/statement_retry.h"
#include "proxy/session/shared_tier.h"

namespace pgrelay::proxy {

class Lane;
class ListenHub;
struct LaneEntry;

// The state of a client that has sent something: what the client direction (forward) and the
// server direction (the pump) share about the requests in flight, and what follows from
// them (observers, LISTEN, the cache's lookups). Made with the client's first request (or a
// server connection at login): an idle client that never sent one holds none of it. Session
// thread only; the pump runs while a server connection is attached.
struct ClientExchange {
  // Requests (Query, Sync, FunctionCall) a client may have unanswered on its server connection
  // before forward() stops reading it. Each costs pgrelay ~200 bytes of bookkeeping while the
  // request's own bytes cost nothing here (they wait in the kernel's socket buffers), so a client
  // that pipelines tiny requests and never reads the answers would otherwise grow it by tens of
  // MB (fault_client_test). Far above what pipelining clients and drivers keep in flight.
  static constexpr int kMaxRequestsInFlight = 16384;

  // Pipelining (client_lane.cc): the lane its last pipelined statement used, and the settings
  // objects it was found for (held, so an address is never mistaken for a freed one's); the
  // statement it has in that lane, while it waits there.
  std::shared_ptr<Lane> lane;
  std::shared_ptr<const std::vector<Setting>> lane_startup;
  std::shared_ptr<const ParamMap> lane_params;
  std::shared_ptr<const SessionSets> lane_sets;
  std::shared_ptr<LaneEntry> lane_entry;
  bool lane_cancels = false;   // its cancel slot sends cancels here (set_pipeline_handler)
  std::shared_ptr<Event> pump_done;   // set while a pump runs; notified when it has stopped
  bool stop_pump = false;             // the pump must not start another read
  // forward() has a request for the attached connection in hand, from finding or attaching the
  // connection until the request is written (RequestPending): the pump, finishing what went
  // before, neither gives the connection back nor starts a query of its own on it meanwhile.
  bool request_pending = false;
  bool server_fatal = false;          // the server sent a FATAL error (already forwarded)
  bool server_silent = false;         // shut down after answering neither a query nor its cancel
  // Set while forward() waits for the server to answer a backlog of kMaxRequestsInFlight
  // requests; notified by the pump when half are answered, or when it stops.
  std::shared_ptr<Event> backlog;
  bool ddl_sent = false;              // DDL went out in the current transaction
  bool audit_settings = false;        // a DO or CALL went out: audit_settings() before moving on
  bool tx_advanced_sequences = false; // the current transaction may have called nextval()
  bool sequences_on_pin = false;      // the last such transaction ran on the client's pinned connection
  EventClock::duration last_wait{};   // the last wait for a server connection (for events)
  StatementEvents events;             // sent statements matched with the server's answers
  // Its observers: statement_event_log when configured; with query_stats, made with the first
  // request, the query observer and, with n_plus_one_threshold > 0, the N+1 observer (the
  // pump lets it see rows).
  std::unique_ptr<StatementObserver> event_log;
  std::unique_ptr<StatementObserver> query_observer;
  std::unique_ptr<StatementObserver> n_plus_one_observer;
  // session_state = "reject" inside a transaction: refused statements in flight, by the marker
  // text the server's error will quote, and pgrelay's error to show in its place.
  std::vector<std::pair<std::string, protocol::ErrorSpec>> rejections;
  uint64_t rejections_made = 0;
  // The request in flight that may be sent again if a shared statement turns out stale, and
  // while a retry is under way, what new requests wait for before they are sent.
  StatementRetry retry;
  std::shared_ptr<Event> retrying;
  // Set while the pump runs a query of pgrelay's own on the connection between transactions
  // (audit_settings, the cache's catalog facts): the client's next request waits for it, and
  // stopping the pump lets it finish rather than cut it off.
  std::shared_ptr<Event> own_query;
  // LISTEN through the ListenHub: its database's hub once it LISTENed there, the
  // NotificationResponses waiting for the client, and a notification write in progress,
  // which other writes to the client wait for.
  std::shared_ptr<ListenHub> listen_hub;
  protocol::Buffer notifications;
  std::shared_ptr<Event> notifying;
  // The query cache (client_cache.cc): the request of this scan last looked up and what was
  // found, and the key fields that say who the client is and every setting it has.
  struct CacheProbe {
    const Request* request = nullptr;                  // the request of this scan last looked up
    std::shared_ptr<const std::vector<std::byte>> hit;
    std::shared_ptr<Flight> in_flight;                 // a miss another session is filling
    std::optional<SharedAsk> shared;                   // to ask the Redis tier before hit or miss
  } cache_probe;
  struct CacheKeyPrefix {
    const void* params = nullptr;                      // the client_params_ and SETs it was built from
    const void* sets = nullptr;
    std::vector<std::byte> prefix;                     // who and every setting, as key fields
  } cache_key;
};

// Holds ClientExchange::request_pending for a scope of forward().
class RequestPending {
 public:
  explicit RequestPending(ClientExchange& x) : x_(x) { x_.request_pending = true; }
  ~RequestPending() { x_.request_pending = false; }
  RequestPending(const RequestPending&) = delete;
  RequestPending& operator=(const RequestPending&) = delete;

 private:
  ClientExchange& x_;
};

// A client session's timers (client_timers.cc); made with the first one armed (most clients
// never arm one). Session thread only.
struct ClientTimers {
  std::unique_ptr<asio::steady_timer> query;          // query_timeout, when set
  std::unique_ptr<asio::steady_timer> idle;           // client_idle_timeout / idle_transaction_timeout
  uint64_t idle_generation = 0;                       // bumped by every arm and disarm
  std::unique_ptr<protocol::ErrorSpec> idle_error;    // the idle timer fired: what to tell the client
};

}  // namespace pgrelay::proxy
