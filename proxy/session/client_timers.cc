// A client session's timers: client_idle_timeout, idle_transaction_timeout and query_timeout.
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/lane.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {

void ClientSession::arm_idle_timer() {
  const bool in_transaction = server_ && server_->tx_status != 'I';
  const conf::Duration limit = in_transaction ? config_->idle_transaction_timeout : config_->client_idle_timeout;
  if (limit.count() <= 0) return;
  ClientTimers& t = *timers_;
  if (!t.idle) t.idle = std::make_unique<asio::steady_timer>(client_.get_executor());
  const uint64_t generation = ++t.idle_generation;
  t.idle->expires_after(limit);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  t.idle->async_wait([weak, generation, in_transaction, limit](const error_code& ec) {
    auto self = weak.lock();
    // A newer arm or a disarm since: the client spoke in time.
    if (ec || !self || self->timers_->idle_generation != generation) return;
    self->timers_->idle_error = std::make_unique<protocol::ErrorSpec>(in_transaction
        ? fatal(sqlstate::kIdleInTransactionTimeout, "idle_transaction_timeout: transaction left idle for " +
                                                         std::to_string(limit.count()) + " ms, rolled back")
        : fatal(sqlstate::kProtocolViolation, "client_idle_timeout: no query for " + std::to_string(limit.count()) + " ms"));
    error_code ignored;
    self->client_.cancel(ignored);   // ends the client's wait; forward() sends the error
  });
}

void ClientSession::disarm_idle_timer() {
  if (!timers_.made()) return;   // never armed
  ++timers_->idle_generation;
  if (timers_->idle) timers_->idle->cancel();
}

void ClientSession::arm_query_timeout(std::chrono::steady_clock::time_point at) {
  if (config_->query_timeout.count() <= 0) return;
  ClientTimers& t = *timers_;
  if (!t.query) t.query = std::make_unique<asio::steady_timer>(client_.get_executor());
  if (at == std::chrono::steady_clock::time_point{}) t.query->expires_after(config_->query_timeout);
  else t.query->expires_at(at);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  t.query->async_wait([weak](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    const auto now = std::chrono::steady_clock::now();
    // Re-armed after this wait had completed (its handler already queued): not yet.
    if (self->timers_->query->expiry() > now) return;
    // A pipelined statement (client_lane.cc): its time counts from when it came to the head of
    // its lane connection (waiting behind another client's statement is like waiting for the
    // pool). Then cancelled in its lane and answered here at once, as PostgreSQL answers a
    // cancelled statement; the lane cancels it on the server and retires the connection.
    if (self->exchange_.made() && self->exchange_->lane_entry) {
      const LaneEntry& entry = *self->exchange_->lane_entry;
      const auto started = entry.state == LaneEntry::State::kRetry ? std::chrono::steady_clock::time_point{} : entry.started;
      const auto limit = self->config_->query_timeout;
      if (started == std::chrono::steady_clock::time_point{}) self->arm_query_timeout(now + limit);   // look again
      else if (now - started < limit) self->arm_query_timeout(started + limit);
      else self->cancel_in_lane(true);
      return;
    }
    if (!self->server_ || self->server_->in_flight == 0) return;
    // Like a client's own CancelRequest: the connection stays with this client until delivered.
    auto slot = self->cancel_slot_;   // made when the server connection was attached
    auto target = slot ? slot->begin_cancel() : std::nullopt;
    if (!target) return;
    log_info("client ", self->id_, " ", self->peer_, ": query_timeout (", self->config_->query_timeout.count(),
             " ms), cancelling its query");
    auto ex = self->client_.get_executor();
    asio::co_spawn(ex, [slot, target = *target, ex]() -> awaitable<void> {
      co_await send_cancel_request(ex, *target.server, target.key);
      slot->end_cancel();
    }, [self](std::exception_ptr e) {
      log_exception(e, "client " + std::to_string(self->id_) + ": query_timeout cancel failed");
    });
    self->arm_silent_server_timeout();
  });
}

void ClientSession::arm_silent_server_timeout() {
  // The same timer: a ReadyForQuery (requests_done) or the next arm_query_timeout() cancels it.
  ClientTimers& t = *timers_;
  t.query->expires_after(config_->query_timeout);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  t.query->async_wait([weak](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || !self->server_ || self->server_->in_flight == 0) return;
    // A server that answers neither the query nor its cancel has stopped answering altogether
    // (a partition, a hung host): the TCP connection may stay up for hours. Shutting the socket
    // down ends the pump's wait: the client gets 08006 and the connection never goes back.
    log_warning("client ", self->id_, " ", self->peer_, ": server ", self->server_->target().describe(),
                " answered neither the query nor its cancel within query_timeout (",
                self->config_->query_timeout.count(), " ms each): closing the connection");
    self->exchange_->server_silent = true;
    self->server_->broken = true;
    error_code ignored;
    self->server_->socket().shutdown(asio::socket_base::shutdown_both, ignored);
  });
}

}  // namespace pgrelay::proxy
