// One listening server connection per database, shared by every client that LISTENs.
#include "proxy/pool/listen_hub.h"


#include "protocol/error_fields.h"
#include "protocol/framer.h"
#include "protocol/messages.h"
#include "proxy/base/log.h"
#include "proxy/pool/pool.h"
#include "proxy/server/server_connection.h"

namespace pgrelay::proxy {
namespace {

namespace be = protocol::backend;

// A channel name as an SQL identifier: LISTEN "name", whatever it holds.
std::string quote_ident(const std::string& name) {
  std::string q = "\"";
  for (char c : name) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + '"';
}

constexpr auto kReconnectDelay = std::chrono::seconds(1);

}  // namespace

// A listen() call waiting for the server's LISTEN: completed on the caller's executor.
struct ListenHub::Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : executor(ex), done(ex) {}
  asio::any_io_executor executor;
  Event done;
  std::optional<Error> error;
};

ListenHub::ListenHub(std::string database, std::shared_ptr<Pool> pool, asio::any_io_executor ex)
    : database_(std::move(database)), pool_(std::move(pool)), ex_(std::move(ex)) {}

ListenHub::~ListenHub() = default;

awaitable<Result<void>> ListenHub::listen(const std::string& channel, Subscriber s) {
  auto waiter = std::make_shared<Waiter>(s.executor);
  {
    std::lock_guard lock(mu_);
    Channel& ch = channels_[channel];
    ch.subscribers[s.id] = std::move(s);
    if (ch.listening) co_return Result<void>();
    ch.waiters.push_back(waiter);
    if (ch.waiters.size() == 1) {
      // The first to ask: the connection LISTENs. Posted under the lock, so commands reach the
      // connection in the order the channel changed (an UNLISTEN before a new LISTEN).
      asio::post(ex_, [self = shared_from_this(), sql = "LISTEN " + quote_ident(channel), channel] {
        self->enqueue({sql, channel});
      });
    }
  }
  co_await waiter->done.wait();
  if (waiter->error) co_return *waiter->error;
  co_return Result<void>();
}

void ListenHub::unlisten(const std::string& channel, uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = channels_.find(channel);
  if (it == channels_.end() || it->second.subscribers.erase(id) == 0) return;
  if (!it->second.subscribers.empty() || !it->second.waiters.empty()) return;
  const bool listening = it->second.listening;
  channels_.erase(it);
  if (listening)
    asio::post(ex_, [self = shared_from_this(), sql = "UNLISTEN " + quote_ident(channel)] { self->enqueue({sql, {}}); });
}

void ListenHub::unlisten_all(uint64_t id) {
  std::vector<std::string> mine;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, ch] : channels_)
      if (ch.subscribers.count(id)) mine.push_back(name);
  }
  for (const auto& name : mine) unlisten(name, id);
}

std::vector<std::pair<std::string, size_t>> ListenHub::channels() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, size_t>> out;
  for (const auto& [name, ch] : channels_) out.emplace_back(name, ch.subscribers.size());
  return out;
}

void ListenHub::enqueue(Command c) {
  queue_.push_back(std::move(c));
  if (!running_) {
    running_ = true;
    asio::co_spawn(ex_, run(), [self = shared_from_this()](std::exception_ptr e) {
      log_exception(e, "LISTEN connection for database " + self->database_ + " failed");
      self->running_ = false;
    });
  } else if (conn_ && !in_flight_) {
    error_code ec;
    conn_->socket().cancel(ec);   // wakes run() from its read: a command to send
  }
}

awaitable<bool> ListenHub::connect() {
  auto opened = co_await pool_->open_unpooled(ex_);
  if (!opened.ok()) {
    log_warning("LISTEN connection for database ", database_, ": ", opened.error().message);
    co_return false;
  }
  conn_ = std::move(*opened);
  // After a loss: LISTEN again on every channel that still has subscribers, ahead of the rest.
  std::vector<std::string> again;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, ch] : channels_)
      if (ch.listening) again.push_back(name);
  }
  for (auto it = again.rbegin(); it != again.rend(); ++it) queue_.push_front({"LISTEN " + quote_ident(*it), {}});
  co_return true;
}

awaitable<bool> ListenHub::send_next() {
  in_flight_ = std::move(queue_.front());
  queue_.pop_front();
  in_flight_error_.reset();
  protocol::Buffer out;
  protocol::encode(protocol::Query{in_flight_->sql}, out);
  error_code ec;
  co_await conn_->transport().async_write(asio::buffer(out.data(), out.size()), ec);
  co_return !ec;
}

awaitable<void> ListenHub::run() {
  auto self = shared_from_this();
  protocol::Framer framer;
  framer.inspect_all();
  protocol::Buffer whole;
  asio::steady_timer pause(ex_);
  for (;;) {
    if (!conn_) {
      framer = protocol::Framer();
      framer.inspect_all();
      if (!co_await connect()) {
        const Error failed{"08006", "could not open the LISTEN connection for database " + database_};
        finish_command(failed);
        while (!queue_.empty()) {
          in_flight_ = std::move(queue_.front());
          queue_.pop_front();
          finish_command(failed);
        }
        bool wanted = false;
        {
          std::lock_guard lock(mu_);
          wanted = !channels_.empty();
        }
        if (!wanted) break;
        pause.expires_after(kReconnectDelay);
        error_code ec;
        co_await pause.async_wait(ec_awaitable(ec));
        continue;
      }
    }
    if (!in_flight_ && !queue_.empty()) {
      const bool sent = co_await send_next();
      if (!sent) {
        lost("write failed");
        continue;
      }
    }
    if (!in_flight_ && queue_.empty()) {
      std::lock_guard lock(mu_);
      if (channels_.empty()) break;   // nobody listens: the connection goes
    }
    protocol::Buffer& buf = conn_->read_buffer();
    size_t n = conn_->take_unread();   // what login read past its ReadyForQuery
    if (n == 0) {
      error_code ec;
      n = co_await conn_->transport().async_read_some(asio::buffer(buf.data(), buf.size()), ec);
      if (ec == asio::error::operation_aborted && conn_ && !conn_->broken) continue;   // a command came
      if (ec) {
        lost(ec.message());
        continue;
      }
    }
    auto fed = framer.feed(protocol::Bytes(buf.data(), n), [&](const protocol::Frame& f, size_t) {
      whole.clear();
      protocol::Writer w(whole);
      const size_t mark = w.begin(f.type);
      w.bytes(f.body);
      w.end(mark);
      on_message(f.type, f.body, whole);
      // A FATAL: stop reading `buf` (the connection's own buffer) before it goes.
      return conn_->broken ? protocol::FrameAction::kStop : protocol::FrameAction::kContinue;
    });
    if (!fed.ok()) lost(fed.error().message);
    else if (conn_ && conn_->broken) lost("the server ended the connection");
  }
  if (conn_) conn_->close();
  conn_.reset();
  running_ = false;   // the next command starts a new run
}

void ListenHub::on_message(char type, protocol::Bytes body, protocol::Bytes whole) {
  switch (type) {
    case be::kNotificationResponse: {
      auto n = protocol::decode_notification_response(body);
      if (!n.ok()) return;
      auto message = std::make_shared<const protocol::Buffer>(whole.begin(), whole.end());
      std::lock_guard lock(mu_);
      auto it = channels_.find(std::string(n->channel));
      if (it == channels_.end()) return;
      for (const auto& [id, s] : it->second.subscribers)
        asio::post(s.executor, [deliver = s.deliver, message] { deliver(message); });
      return;
    }
    case be::kErrorResponse: {
      auto e = protocol::decode_error_notice(body);
      Error what{e.ok() ? std::string(e->sqlstate) : "XX000", e.ok() ? std::string(e->message) : "error"};
      if (e.ok() && e->is_fatal()) {
        log_warning("LISTEN connection for database ", database_, ": ", what.message);
        conn_->broken = true;   // run() gives it up after this message
        return;
      }
      in_flight_error_ = std::move(what);
      return;
    }
    case be::kReadyForQuery:
      finish_command(in_flight_error_);
      return;
    default:
      return;   // CommandComplete, notices, ParameterStatus
  }
}

void ListenHub::finish_command(const std::optional<Error>& error) {
  if (!in_flight_) return;
  Command done = std::move(*in_flight_);
  in_flight_.reset();
  in_flight_error_.reset();
  if (done.channel.empty()) {
    if (error) log_warning("LISTEN connection for database ", database_, ": ", done.sql, ": ", error->message);
    return;
  }
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard lock(mu_);
    auto it = channels_.find(done.channel);
    if (it == channels_.end()) return;
    waiters = std::move(it->second.waiters);
    it->second.waiters.clear();
    if (!error) {
      it->second.listening = true;
    } else {
      // Nobody is registered on a LISTEN that failed.
      channels_.erase(it);
    }
  }
  for (auto& w : waiters) {
    w->error = error;
    asio::post(w->executor, [w] { w->done.notify(); });
  }
}

void ListenHub::lost(const std::string& why) {
  if (!conn_) return;
  log_warning("LISTEN connection for database ", database_, " lost (", why,
              "): reconnecting; notifications sent meanwhile are not delivered");
  conn_->close();
  conn_.reset();
  // The command in flight is sent again on the new connection.
  if (in_flight_) {
    queue_.push_front(std::move(*in_flight_));
    in_flight_.reset();
  }
}

std::shared_ptr<ListenHub> ListenHubs::hub_for(const std::string& database, const std::shared_ptr<Pool>& pool,
                                               const asio::any_io_executor& ex) {
  std::lock_guard lock(mu_);
  auto& hub = hubs_[database];
  if (!hub) hub = std::make_shared<ListenHub>(database, pool, ex);
  return hub;
}

std::vector<std::shared_ptr<ListenHub>> ListenHubs::hubs() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<ListenHub>> out;
  for (const auto& [name, hub] : hubs_) out.push_back(hub);
  return out;
}

}  // namespace pgrelay::proxy
