// A pool of server connections for one (database, user).
#include "proxy/pool/pool.h"

#include <algorithm>

#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/pool/primary_finder.h"

namespace pgrelay::proxy {

struct Pool::Waiter {
  explicit Waiter(asio::any_io_executor e) : ex(e), event(e) {}
  asio::any_io_executor ex;
  Event event;                                  // touched only on `ex`
  std::unique_ptr<ServerConnection> conn;       // handed over by release()
  bool slot = false;                            // allowed to open a new connection
  int passed_over = 0;                          // times a later waiter on the releasing worker went first
  ServerConnection::Clock::time_point since = ServerConnection::Clock::now();
  // From the waiter's own thread (a connection released on its worker) the event is notified at
  // once, saving a trip through the event loop; from elsewhere it is posted there.
  void wake(std::shared_ptr<Waiter> self) {
    if (const auto* own = ex.target<asio::io_context::executor_type>(); own && own->running_in_this_thread()) {
      event.notify();
      return;
    }
    asio::post(ex, [self] { self->event.notify(); });
  }
};

ServerConnection::Clock::time_point Pool::oldest_waiter_locked() const {
  return waiters_.empty() ? ServerConnection::Clock::now() : waiters_.front()->since;   // FIFO: the front waited longest
}

Pool::Pool(std::string name, PoolSettings settings, std::shared_ptr<ConnectionLimits> limits, ConnectionLimits::Key key,
           std::shared_ptr<PoolCounters> counters, const TlsContexts* tls)
    : name_(std::move(name)), settings_(std::move(settings)), limits_(std::move(limits)), key_(std::move(key)),
      counters_(counters ? std::move(counters) : std::make_shared<PoolCounters>(key_.database, key_.user)),
      tls_(tls) {}

Pool::~Pool() = default;

awaitable<Result<std::unique_ptr<ServerConnection>>> Pool::acquire(asio::any_io_executor ex, conf::Duration wait_timeout) {
  const auto start = asio::steady_timer::clock_type::now();
  auto deadline = wait_timeout.count() > 0 ? start + wait_timeout : asio::steady_timer::time_point::max();
  const auto retry_until = std::min(deadline, start + settings_.server_login_retry);
  auto backoff = std::chrono::milliseconds(100);
  for (;;) {
    std::unique_ptr<ServerConnection> conn;
    std::shared_ptr<Waiter> waiter;
    auto refusal = ConnectionLimits::Refusal::kNone;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        // Most recently used first (warm caches); one already on this worker saves a move.
        auto it = std::find_if(idle_.rbegin(), idle_.rend(),
                               [&](const auto& c) { return c->socket().get_executor() == ex; });
        auto pick = it != idle_.rend() ? std::prev(it.base()) : std::prev(idle_.end());
        conn = std::move(*pick);
        idle_.erase(pick);
      } else if (!take_slot_locked(settings_.pool_size)) {
        waiter = std::make_shared<Waiter>(ex);
        waiters_.push_back(waiter);
        note_waiters_locked();
      }   // else our slot: we open a new connection below
      refusal = refused_;
    }
    if (waiter && refusal != ConnectionLimits::Refusal::kNone && limits_) {
      // Held back by max_db_connections / max_user_connections: an idle connection of another
      // pool of the same database or user makes room (it wakes us through serve_waiters()).
      for (auto& rival : limits_->rivals(key_, refusal, this))
        if (rival->evict_one_idle()) break;
    }
    if (waiter) {
      // After reserve_pool_timeout a waiting client may open one of reserve_pool_size extra
      // connections: a burst gets served instead of queueing behind a full pool.
      auto reserve_at = settings_.reserve_pool_size > 0
                            ? std::min(deadline, asio::steady_timer::clock_type::now() + settings_.reserve_pool_timeout)
                            : deadline;
      for (;;) {
        co_await waiter->event.wait_until(reserve_at);
        std::lock_guard lock(mu_);
        if (waiter->conn) {
          conn = std::move(waiter->conn);
          break;
        }
        if (waiter->slot) break;   // a slot freed up: open a new connection below
        bool timed_out = asio::steady_timer::clock_type::now() >= deadline;
        if (!timed_out && take_slot_locked(settings_.max_pool_size + settings_.reserve_pool_size)) {
          waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), waiter), waiters_.end());
          note_waiters_locked();
          // An overflow (up to max_pool_size) or reserve slot: open a new connection below.
          log_info("pool ", name_, ": a client waited ", settings_.reserve_pool_timeout.count(), " ms, opening ",
                   open_ > settings_.max_pool_size ? "a reserve" : "an overflow", " connection (", open_,
                   " open, pool_size ", settings_.pool_size, ")");
          break;
        }
        if (timed_out) {
          waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), waiter), waiters_.end());
          note_waiters_locked();
          co_return Error{sqlstate::kTooManyConnections, wait_timeout_message(wait_timeout)};
        }
        reserve_at = deadline;   // the reserve is in use too: wait out the rest
      }
    }
    if (conn) {
      // One handed over by a releasing client is fresh; one taken from the idle list is checked.
      // (co_await kept out of a conditional expression: GCC 12 mishandles those too.)
      bool usable = false;
      if (waiter) {
        conn->attach(ex);
        usable = !conn->broken;
      } else {
        usable = co_await ready_for_use(*conn, ex);
      }
      if (!usable) {
        conn->broken = true;
        release(std::move(conn));
        continue;
      }
      scale_up_after_handout(ex);
      co_return std::move(conn);
    }
    auto opened = co_await open_in_slot(ex);
    if (opened.ok()) scale_up_after_handout(ex);
    if (opened.ok() || !is_transient_login_failure(opened.error()) ||
        asio::steady_timer::clock_type::now() + backoff >= retry_until)
      co_return opened;
    // The server is down or restarting: wait and try again, as long as this client may wait.
    asio::steady_timer pause(ex, backoff);
    error_code ec;
    co_await pause.async_wait(ec_awaitable(ec));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2'000));
  }
}

// Given back within this: handed out again without a peek at its socket (ready_for_use).
constexpr auto kNoPeekWithin = std::chrono::milliseconds(1);

awaitable<bool> Pool::ready_for_use(ServerConnection& conn, asio::any_io_executor ex) {
  // A connection given back moments ago is handed out again without asking its socket: when
  // clients outnumber connections that is every transaction, and the peek a system call each
  // time. What could have arrived in so short a while is as likely to arrive just after.
  const bool recently_used = ServerConnection::Clock::now() - conn.idle_since < kNoPeekWithin;
  if (!conn.idle_and_alive(/*peek=*/!recently_used)) {
    // Died or spoke while idle (pg_terminate_backend, server restart); over TLS the peek sees
    // the encrypted bytes, and idle_and_alive() also looks inside OpenSSL.
    log_info("pool ", name_, ": dropping dead idle server connection ", conn.target().describe());
    co_return false;
  }
  conn.attach(ex);
  if (conn.broken) co_return false;
  // Idle a long time: a firewall or a failover may have cut it silently, which the peek
  // cannot see. server_check_query proves it still answers.
  if (settings_.server_check_query.empty() ||
      ServerConnection::Clock::now() - conn.idle_since <= settings_.server_check_delay)
    co_return true;
  StreamSocket& sock = conn.socket();
  Watchdog check_timeout(ex, settings_.connect_timeout, [&sock] { error_code e; sock.close(e); });
  auto checked = co_await conn.run(settings_.server_check_query);
  if (checked.ok() && conn.tx_status == 'I') co_return true;
  log_info("pool ", name_, ": server_check_query failed, dropping the connection: ",
           checked.ok() ? "it left a transaction open" : checked.error().message);
  co_return false;
}

awaitable<Result<std::unique_ptr<ServerConnection>>> Pool::open_unpooled(asio::any_io_executor ex) {
  ServerTlsOptions tls{settings_.tls_mode, nullptr};
  if (tls.mode != conf::ServerTlsMode::kDisable && tls_) tls.ctx = tls_->server();
  const ServerTarget target = settings_.primary ? settings_.primary->target(settings_.target) : settings_.target;
  auto opened = co_await ServerConnection::open(ex, target, settings_.connect_timeout, settings_.max_message_size, tls,
                                                settings_.tcp);
  (opened.ok() ? counters_->servers_opened : counters_->servers_failed).fetch_add(1, std::memory_order_relaxed);
  co_return opened;
}

awaitable<Result<std::unique_ptr<ServerConnection>>> Pool::open_in_slot(asio::any_io_executor ex) {
  {
    std::lock_guard lock(mu_);
    ++logging_in_;
  }
  auto opened = co_await open_unpooled(ex);
  {
    std::lock_guard lock(mu_);
    --logging_in_;
  }
  if (!opened.ok()) {
    {
      std::lock_guard lock(mu_);
      drop_slot_locked(/*was_open=*/false);
      (void)give_slot_to_waiter_locked();
    }
    slots_freed();
    log_warning("pool ", name_, ": ", opened.error().message);
  } else {
    remember_server_parameters((*opened)->parameters());
    (*opened)->statements.set_capacity(size_t(std::max(1, settings_.max_prepared_statements)));
  }
  co_return opened;
}

// How often the longest-waiting client may see a later one go first because that one waits on
// the worker the connection is released on (no thread hand-off, no socket move). Bounds the
// unfairness to a few hand-offs while most hand-offs stay on one thread.
constexpr int kMaxPassOver = 2;

std::shared_ptr<Pool::Waiter> Pool::next_waiter_locked(const asio::any_io_executor& here) {
  auto pick = waiters_.begin();
  if ((*pick)->ex != here && (*pick)->passed_over < kMaxPassOver) {
    auto local = std::find_if(waiters_.begin(), waiters_.end(), [&](const auto& w) { return w->ex == here; });
    if (local != waiters_.end()) {
      for (auto it = waiters_.begin(); it != local; ++it) ++(*it)->passed_over;
      pick = local;
    }
  }
  auto w = std::move(*pick);
  waiters_.erase(pick);
  note_waiters_locked();
  return w;
}

bool Pool::has_idle_or_room() const {
  std::lock_guard lock(mu_);
  return !idle_.empty() || (open_ < settings_.pool_size && !retired_);
}

bool Pool::has_waiters() const { return waiting_.load(std::memory_order_relaxed) > 0; }

void Pool::release(std::unique_ptr<ServerConnection> conn) {
  if (!conn) return;
  std::unique_ptr<ServerConnection> to_close;
  std::shared_ptr<Waiter> woken;   // woken after the lock is released
  {
    std::lock_guard lock(mu_);
    if (!conn->at_rest() || past_lifetime(*conn)) {
      drop_slot_locked();
      to_close = std::move(conn);
      (void)give_slot_to_waiter_locked();
    } else if (!waiters_.empty()) {
      // Clients already waiting are served even by a retired pool: they asked under its config.
      // One on this connection's worker first, within kMaxPassOver.
      woken = next_waiter_locked(conn->socket().get_executor());
      woken->conn = std::move(conn);
    } else if (retired_ || open_ > settings_.max_pool_size) {
      // Retired, or a reserve connection no one is waiting for: close it (scale back down).
      drop_slot_locked();
      to_close = std::move(conn);
    } else {
      conn->idle_since = ServerConnection::Clock::now();
      idle_.push_back(std::move(conn));
    }
  }
  if (woken) {
    woken->wake(woken);
  } else if (to_close) {
    to_close->close();
    slots_freed();
  } else if (limits_ && limits_->rival_starving(key_, this)) {
    // Another pool of this database or user waits under the limits: idle here, it is theirs.
    (void)evict_one_idle();
  }
}

bool Pool::give_slot_to_waiter_locked() {
  if (waiters_.empty() || !take_slot_locked(settings_.pool_size)) return false;
  auto w = waiters_.front();
  waiters_.pop_front();
  note_waiters_locked();
  w->slot = true;
  w->wake(w);
  return true;
}

void Pool::close_idle_before(ServerConnection::Clock::time_point cutoff) {
  std::vector<std::unique_ptr<ServerConnection>> closing;
  {
    std::lock_guard lock(mu_);
    int keep_open = retired_ ? 0 : settings_.min_pool_size;
    // Oldest idle first (front); never below min_pool_size for idleness.
    while (!idle_.empty() && open_ > keep_open && idle_.front()->idle_since < cutoff) {
      closing.push_back(std::move(idle_.front()));
      idle_.erase(idle_.begin());
      drop_slot_locked();
    }
    // server_lifetime applies whatever min_pool_size says (keep_minimum opens fresh ones).
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (!past_lifetime(**it)) { ++it; continue; }
      closing.push_back(std::move(*it));
      it = idle_.erase(it);
      drop_slot_locked();
    }
  }
  for (auto& c : closing) c->close();
  if (!closing.empty()) slots_freed();
}

awaitable<void> Pool::keep_minimum(asio::any_io_executor ex) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (retired_ || open_ >= settings_.min_pool_size || !take_slot_locked(settings_.min_pool_size)) co_return;
    }
    auto opened = co_await open_in_slot(ex);
    if (!opened.ok()) co_return;
    release(std::move(*opened));
  }
}

void Pool::retire() {
  {
    std::lock_guard lock(mu_);
    retired_ = true;
  }
  close_idle_before(ServerConnection::Clock::time_point::max());
}

namespace {
constexpr size_t kMaxGreetings = 256;   // distinct startup-setting sets remembered per pool

std::string greeting_key(const std::vector<Setting>& startup) {
  std::string key;
  for (const auto& s : startup) key.append(s.name).append(1, '\0').append(s.value).append(1, '\0');
  return key;
}
}  // namespace

std::shared_ptr<const ParamMap> Pool::greeting_for(const std::vector<Setting>& startup) {
  std::lock_guard lock(mu_);
  if (!server_parameters_) return nullptr;
  if (startup.empty()) {
    // Nothing to validate: what a fresh server connection reported.
    auto [it, added] = greetings_.try_emplace(std::string());
    if (added) it->second = std::make_shared<const ParamMap>(*server_parameters_);
    return it->second;
  }
  auto it = greetings_.find(greeting_key(startup));
  return it == greetings_.end() ? nullptr : it->second;
}

void Pool::remember_greeting(const std::vector<Setting>& startup, const ParamMap& params) {
  std::lock_guard lock(mu_);
  if (greetings_.size() >= kMaxGreetings) return;
  greetings_.try_emplace(greeting_key(startup), std::make_shared<const ParamMap>(params));
}

bool Pool::greeting_pending(const std::vector<Setting>& startup, const asio::any_io_executor& ex,
                            std::shared_ptr<Event> done) {
  std::lock_guard lock(mu_);
  auto [it, first] = greeting_flights_.try_emplace(greeting_key(startup));
  if (first) {
    it->second = std::make_shared<Flight>();
    return false;
  }
  // Under mu_: greeting_asked() takes the flight out under mu_ before it lands it.
  return it->second->wait(ex, std::move(done));
}

void Pool::greeting_asked(const std::vector<Setting>& startup) {
  std::shared_ptr<Flight> flight;
  {
    std::lock_guard lock(mu_);
    auto it = greeting_flights_.find(greeting_key(startup));
    if (it == greeting_flights_.end()) return;
    flight = std::move(it->second);
    greeting_flights_.erase(it);
  }
  flight->land();
}

void Pool::remember_server_parameters(const ParamMap& params) {
  std::lock_guard lock(mu_);
  if (!server_parameters_) server_parameters_ = params;
}

bool Pool::past_lifetime(const ServerConnection& c) const {
  if (c.created_at <= reconnect_before_) return true;   // RECONNECT
  return settings_.server_lifetime.count() > 0 &&
         ServerConnection::Clock::now() - c.created_at > settings_.server_lifetime;
}

PoolStats Pool::stats() const {
  std::lock_guard lock(mu_);
  return {open_, int(idle_.size()), int(waiters_.size()), pinned_, pins_, pins_by_reason_, refusals_,
          scale_ups_, scale_downs_, last_scale_};
}

}  // namespace pgrelay::proxy
