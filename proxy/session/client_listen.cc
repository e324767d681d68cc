// LISTEN/NOTIFY in transaction and statement pooling: a client's LISTEN registers with its
// database's ListenHub instead of pinning it, and the hub's notifications are written to the
// client whenever it is between transactions, as PostgreSQL delivers them.
#include "proxy/base/log.h"
#include "proxy/session/client_session.h"

namespace pgrelay::proxy {
namespace {

using analyzer::EffectKind;

// Notifications waiting for a client that stays inside a transaction (or does not read): past
// this, the client is closed rather than pgrelay's memory growing without end.
constexpr size_t kMaxPendingNotifications = 64u << 20;

}  // namespace

std::optional<LocalAnswer> ClientSession::listen_locally(uint32_t at, const StatementAnalysis& a,
                                                                        char tx_status) {
  // A pinned client keeps its own connection: its LISTENs stay the server's, as before.
  if (mode_ == conf::PoolMode::kSession || tx_status != 'I' || session_state_->pinned()) return std::nullopt;
  if (a.statement_count() != 1 || a.effects.effects().size() != 1) return std::nullopt;
  const analyzer::Effect& e = a.effects.first();
  switch (e.kind) {
    case EffectKind::kListen:
      return LocalAnswer{.at = at, .tag = "LISTEN", .listen = e};
    case EffectKind::kUnlisten: case EffectKind::kUnlistenAll:
      return LocalAnswer{.at = at, .tag = "UNLISTEN", .listen = e};
    default:
      return std::nullopt;
  }
}

awaitable<std::optional<protocol::ErrorSpec>> ClientSession::apply_listen(const analyzer::Effect& e) {
  auto ex = co_await asio::this_coro::executor;
  if (e.kind != EffectKind::kListen) {
    if (exchange_->listen_hub && e.kind == EffectKind::kUnlisten) exchange_->listen_hub->unlisten(e.name, id_);
    if (exchange_->listen_hub && e.kind == EffectKind::kUnlistenAll) exchange_->listen_hub->unlisten_all(id_);
    co_return std::nullopt;
  }
  if (!exchange_->listen_hub) exchange_->listen_hub = services_.listen_hubs.hub_for(database_, pool_, ex);
  ListenHub::Subscriber s{id_, ex, [weak = weak_from_this()](ListenHub::Message m) {
                            if (auto self = weak.lock()) self->on_notification(*m);
                          }};
  auto listened = co_await exchange_->listen_hub->listen(e.name, std::move(s));
  if (listened.ok()) co_return std::nullopt;
  co_return protocol::ErrorSpec{"ERROR", listened.error().sqlstate, listened.error().message, {}, {}};
}

void ClientSession::unlisten_sent(const StatementAnalysis& a) {
  if (!exchange_->listen_hub) return;
  for (const auto& e : a.effects.effects()) {
    if (e.kind == EffectKind::kUnlisten) exchange_->listen_hub->unlisten(e.name, id_);
    if (e.kind == EffectKind::kUnlistenAll) exchange_->listen_hub->unlisten_all(id_);
  }
}

bool ClientSession::notifications_due() const {
  return !exchange_->notifications.empty() && writes_to_client_ == 0 && !exchange_->notifying && client_at_rest();
}

bool ClientSession::client_at_rest() const {
  return forwarding_ && !terminating_ &&
         (!server_ || (server_->in_flight == 0 && server_->tx_status == 'I' && !server_->unsynced));
}

void ClientSession::on_notification(const protocol::Buffer& message) {
  if (terminating_ || !forwarding_) return;
  if (exchange_->notifications.size() + message.size() > kMaxPendingNotifications) {
    log_warning("client ", id_, " ", peer_, ": ", exchange_->notifications.size(),
                " bytes of notifications wait for it (it stays in a transaction or does not read): closing it");
    terminate();
    return;
  }
  exchange_->notifications.insert(exchange_->notifications.end(), message.begin(), message.end());
  // Written now if nothing else is being written to the client; else whoever writes next does
  // it (the pump after a ReadyForQuery that leaves the client between transactions).
  if (!notifications_due()) return;
  auto self = shared_from_this();
  asio::co_spawn(client_.get_executor(), write_notifications(), [self](std::exception_ptr e, bool) {
    log_exception(e, "client " + std::to_string(self->id_) + ": writing notifications failed");
  });
}

awaitable<bool> ClientSession::write_notifications() {
  while (!exchange_->notifications.empty()) {
    protocol::Buffer out;
    out.swap(exchange_->notifications);
    auto done = std::make_shared<Event>(client_.get_executor());
    exchange_->notifying = done;
    error_code ec;
    co_await client_.async_write(asio::buffer(out.data(), out.size()), ec);
    exchange_->notifying.reset();
    done->notify();
    if (ec) co_return false;
  }
  co_return true;
}

awaitable<void> ClientSession::wait_notifications_written() {
  while (auto writing = exchange_.peek().notifying) co_await writing->wait();
}

}  // namespace pgrelay::proxy
