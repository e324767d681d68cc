// A client session's timers: client_idle_timeout, idle_transaction_timeout and query_timeout.
#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_util.h"

namespace pgrelay::proxy {

void ClientSession::arm_idle_timer() {
  const bool in_transaction = server_ && server_->tx_status != 'I';
  const conf::Duration limit = in_transaction ? config_->idle_transaction_timeout : config_->client_idle_timeout;
  if (limit.count() <= 0) return;
  if (!idle_timer_) idle_timer_ = std::make_unique<asio::steady_timer>(client_.get_executor());
  const uint64_t generation = ++idle_generation_;
  idle_timer_->expires_after(limit);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  idle_timer_->async_wait([weak, generation, in_transaction, limit](const error_code& ec) {
    auto self = weak.lock();
    // A newer arm or a disarm since: the client spoke in time.
    if (ec || !self || self->idle_generation_ != generation) return;
    self->idle_error_ = std::make_unique<protocol::ErrorSpec>(in_transaction
        ? fatal(sqlstate::kIdleInTransactionTimeout, "idle_transaction_timeout: transaction left idle for " +
                                                         std::to_string(limit.count()) + " ms, rolled back")
        : fatal(sqlstate::kProtocolViolation, "client_idle_timeout: no query for " + std::to_string(limit.count()) + " ms"));
    error_code ignored;
    self->client_.cancel(ignored);   // ends the client's wait; forward() sends the error
  });
}

void ClientSession::disarm_idle_timer() {
  ++idle_generation_;
  if (idle_timer_) idle_timer_->cancel();
}

void ClientSession::arm_query_timeout() {
  if (config_->query_timeout.count() <= 0) return;
  if (!query_timer_) query_timer_ = std::make_unique<asio::steady_timer>(client_.get_executor());
  query_timer_->expires_after(config_->query_timeout);
  std::weak_ptr<ClientSession> weak = shared_from_this();
  query_timer_->async_wait([weak](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || !self->server_ || self->server_->in_flight == 0) return;
    // Like a client's own CancelRequest: the connection stays with this client until delivered.
    auto target = self->cancel_slot_->begin_cancel();
    if (!target) return;
    log_info("client ", self->id_, " ", self->peer_, ": query_timeout (", self->config_->query_timeout.count(),
             " ms), cancelling its query");
    auto ex = self->client_.get_executor();
    asio::co_spawn(ex, [self, target = *target, ex]() -> awaitable<void> {
      co_await send_cancel_request(ex, *target.server, target.key);
      self->cancel_slot_->end_cancel();
    }, [self](std::exception_ptr e) {
      log_exception(e, "client " + std::to_string(self->id_) + ": query_timeout cancel failed");
    });
  });
}

}  // namespace pgrelay::proxy
