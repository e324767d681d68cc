// The running server: start-up, signals, reload, housekeeping and graceful shutdown.
#include "proxy/app/app.h"

#include <unistd.h>

#include <csignal>
#include <mutex>

#include "proxy/admin/admin_console.h"
#include "proxy/app/fd_limit.h"
#include "proxy/base/log.h"
#include "proxy/metrics/metrics_exporter.h"
#include "proxy/session/client_session.h"
#include "proxy/session/lane.h"
#include "proxy/session/replication_listener.h"
#include "proxy/session/slow_query_log.h"
#include "proxy/session/statement_event_log.h"

namespace pgrelay::proxy {
namespace {

Result<tcp::endpoint> listen_endpoint(const conf::Config& c) {
  std::string host = c.listen_addr;
  if (host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error{"", "listen_addr \"" + c.listen_addr + "\" is not an IP address (or * or localhost)"};
  return tcp::endpoint(addr, uint16_t(c.listen_port));
}

}  // namespace

App::App(std::shared_ptr<const conf::Config> config, std::optional<std::string> config_path, conf::Environment env)
    : services_(std::move(config)), config_path_(std::move(config_path)), env_(std::move(env)) {
  services_.control = this;
  services_.serve_console = &serve_console_or_refuse;
}

App::~App() {
  metrics_.reset();
  // What lives on a worker's event loop goes before the loop does (workers_.clear() destroys
  // the loops): the warmer's Redis connection is on worker 0's, and closing its socket on a
  // destroyed loop is a use after free (a SIGSEGV at exit, now and then).
  warmer_.reset();
  // The replication listeners' sockets and timers are on one of them too.
  // A listener that did not stop still has a coroutine there, which owns it from now on.
  if (services_.replication && !services_.replication->stopped()) new std::shared_ptr(services_.replication);   // NOLINT: kept on purpose
  services_.replication.reset();
  workers_.clear();
  services_.control = nullptr;
}

void App::set_command_line(std::string exe, std::vector<std::string> args) {
  exe_ = std::move(exe);
  args_ = std::move(args);
}

int App::run(bool takeover) {
  auto config = services_.config.get();
  set_log_level(config->log_level);
  std::signal(SIGPIPE, SIG_IGN);
  raise_file_descriptor_limit(*config);

  // Handlers first: a supervisor may signal the moment the port accepts, and the default
  // action of SIGHUP and SIGTERM is to kill the process.
  asio::signal_set signals(control_, SIGINT, SIGTERM, SIGHUP);
  signals.add(SIGUSR2);
  auto endpoint = listen_endpoint(*config);
  if (!endpoint.ok()) { log_error(endpoint.error().message); return 1; }
  // Certificates and keys are read now: a bad one stops pgrelay before it listens.
  if (auto tls = services_.tls.load(*config); !tls.ok()) { log_error(tls.error().message); return 1; }
  if (auto tls = services_.tls.client())
    log_info("TLS for clients: client_tls_sslmode \"", conf::to_string(config->client_tls.sslmode), "\", certificate ",
             tls->subject);
  if (!config->statement_event_log.empty()) {
    auto log = StatementEventLog::open(config->statement_event_log);
    if (!log.ok()) { log_error(log.error().message); return 1; }
    services_.statement_log = std::move(*log);
    log_info("statement events are written to ", config->statement_event_log, " (statement_event_log)");
  }
  auto slow = SlowQueryLog::open(config->slow_query_log, config->slow_query_log_rate);
  if (!slow.ok()) { log_error(slow.error().message); return 1; }
  services_.slow_queries = std::move(*slow);
  int n = config->effective_workers();
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(i, services_));
  if (takeover) {
    notifier_.inherit_watchdog();
    if (auto r = take_listeners(*endpoint); !r.ok()) {
      log_error("takeover: ", r.error().message);
      return 1;
    }
  } else {
    for (auto& w : workers_)
      if (auto r = w->listen(*endpoint); !r.ok()) { log_error(r.error().message); return 1; }
  }
  if (!config->unix_socket_dir.empty() && unix_socket_path_.empty()) {
    unix_socket_path_ = config->unix_socket_dir + "/.s.PGSQL." + std::to_string(config->listen_port);
    if (auto r = workers_.front()->listen_unix(unix_socket_path_); !r.ok()) {
      log_error(r.error().message, " (unix_socket_dir)");
      unix_socket_path_.clear();
      return 1;
    }
  }
  if (config->metrics_port > 0) {
    metrics_ = std::make_unique<MetricsExporter>(control_.get_executor(), services_);
    // An optional tier: without its port pgrelay still serves clients (and Prometheus' `up`
    // says the endpoint is gone).
    if (auto r = metrics_->listen(config->metrics_addr, config->metrics_port); !r.ok()) {
      log_error(r.error().message, "; serving clients without the metrics endpoint");
      metrics_.reset();
    }
  }
  if (config->databases.empty())
    log_warning("no databases configured: set DATABASE_URL or add a [databases.NAME] table; every client will be refused");
  for (auto& w : workers_) w->start();
  if (services_.cache) {
    auto listeners = std::make_shared<ReplicationListeners>(workers_.front()->executor(), *config, *services_.cache, services_.tls.server());
    if (!listeners->empty()) services_.replication = std::move(listeners);
    std::vector<Worker*> workers;
    for (auto& w : workers_) workers.push_back(w.get());
    warmer_ = std::make_unique<CacheWarmer>(workers_.front()->executor(), services_, std::move(workers));
    warmer_->start();
  }
  accepting_ = true;
  if (metrics_) metrics_->start();
  listening_ = endpoint->address().to_string() + ":" + std::to_string(endpoint->port()) +
               (unix_socket_path_.empty() ? std::string() : " and " + unix_socket_path_);
  log_info("pgrelay ", PGRELAY_VERSION, " listening on ", listening_, " with ", n, " worker", n == 1 ? "" : "s",
           config->source.empty() ? "" : ", config " + config->source);

  auto on_error = [](std::exception_ptr e) { log_exception(e, "control loop"); };
  asio::co_spawn(control_, handle_signals(signals), on_error);
  services_.pools.run_checks_on(control_.get_executor());   // a multi-host primary's checks
  asio::co_spawn(control_, housekeeping(), on_error);
  if (takeover)
    asio::co_spawn(control_, adopt_clients(), on_error);   // then listens on takeover_socket
  else
    listen_for_takeover();
  // Ready: every listener accepts (pools open on a client's first login, min_pool_size's soon after).
  notifier_.ready(serving_status());
  if (auto interval = notifier_.watchdog_interval(); interval.count() > 0)
    asio::co_spawn(control_, watchdog(interval), on_error);
  control_.run();
  // Handed over: the socket files are the new process' now.
  if (!handed_over_ && !unix_socket_path_.empty()) ::unlink(unix_socket_path_.c_str());
  if (!handed_over_ && !takeover_path_.empty()) ::unlink(takeover_path_.c_str());
  log_info(handed_over_ ? "pgrelay handed over and stopped" : "pgrelay stopped");
  return 0;
}

awaitable<void> App::handle_signals(asio::signal_set& signals) {
  for (;;) {
    error_code ec;
    int sig = co_await signals.async_wait(ec_awaitable(ec));
    if (ec) co_return;
    if (sig == SIGHUP) {
      (void)reload();   // a failure is logged; the running configuration stays
      continue;
    }
    if (sig == SIGUSR2) {
      if (!stopping_) spawn_successor();   // online restart (app_takeover.cc)
      continue;
    }
    co_await shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
    co_return;
  }
}

Result<void> App::reload() {
  notifier_.reloading("Reloading the configuration");
  auto fresh = conf::load_config(config_path_, env_);
  if (!fresh.ok()) {
    log_error("reload failed, keeping the running configuration: ", fresh.error().message);
    notifier_.ready("Reload failed, running the previous configuration: " + fresh.error().message);
    return fresh.error();
  }
  auto old = services_.config.get();
  if (fresh->listen_addr != old->listen_addr || fresh->listen_port != old->listen_port ||
      fresh->effective_workers() != old->effective_workers() || fresh->busy_poll_us != old->busy_poll_us ||
      fresh->metrics_listen != old->metrics_listen)
    log_warning("reload: listen_addr, listen_port, workers, busy_poll_us and metrics_listen take effect only after a restart");
  set_log_level(fresh->log_level);
  // New certificates and keys for connections made from now on; a file that does not load keeps
  // the previous context (logged), the rest of the configuration still applies.
  services_.tls.reload(*fresh);
  raise_file_descriptor_limit(*fresh);
  services_.config.set(std::make_shared<const conf::Config>(std::move(*fresh)));
  log_info("configuration reloaded", config_path_ ? " from " + *config_path_ : std::string());
  notifier_.ready(serving_status());
  return {};
}

void App::request_shutdown() {
  asio::post(control_, [this] {
    if (stopping_) return;
    asio::co_spawn(control_, shutdown("SHUTDOWN command"),
                   [](std::exception_ptr e) { log_exception(e, "shutdown"); });
  });
}

awaitable<void> App::visit_sessions(std::function<void(ClientSession&)> visit,
                                    std::function<void(const LaneSet&)> lanes) {
  if (workers_.empty()) co_return;
  auto ex = co_await asio::this_coro::executor;
  auto done = std::make_shared<Event>(ex);
  auto remaining = std::make_shared<std::atomic<int>>(int(workers_.size()));
  for (auto& w : workers_) {
    w->visit_sessions(visit, [ex, done, remaining] {
      if (remaining->fetch_sub(1) == 1) asio::post(ex, [done] { done->notify(); });
    }, lanes);
  }
  // A worker that has stopped (shutdown) never answers: give up on it after a while.
  co_await done->wait_until(asio::steady_timer::clock_type::now() + std::chrono::seconds(5));
}

awaitable<ConnectionsSnapshot> App::connections() {
  struct Shared {
    std::mutex mu;
    ConnectionsSnapshot snap;
  };
  auto shared = std::make_shared<Shared>();
  // Named visitors: GCC 12 mishandles temporaries in a co_await'ed call's arguments.
  std::function<void(ClientSession&)> visit = [shared](ClientSession& s) {
    ClientInfo info = s.info();
    std::lock_guard lock(shared->mu);
    shared->snap.clients.push_back(std::move(info));
  };
  // On the same turn of each worker's loop as its sessions: a connection moving between a
  // session and a lane is listed once.
  std::function<void(const LaneSet&)> lanes = [shared](const LaneSet& set) {
    std::vector<ServerInfo> rows;
    set.describe(rows);
    std::lock_guard lock(shared->mu);
    for (ServerInfo& s : rows) shared->snap.servers.push_back(std::move(s));
  };
  co_await visit_sessions(visit, lanes);
  std::lock_guard lock(shared->mu);   // a worker that answered late may still be adding
  co_return shared->snap;
}

awaitable<size_t> App::terminate_clients(std::function<bool(const ClientInfo&)> which) {
  auto ended = std::make_shared<std::atomic<size_t>>(0);
  std::function<void(ClientSession&)> visit = [which = std::move(which), ended](ClientSession& s) {
    if (!which(s.info())) return;
    ended->fetch_add(1);
    s.terminate();
  };
  co_await visit_sessions(visit);
  co_return ended->load();
}

size_t App::client_session_size() const { return sizeof(ClientSession); }

Result<size_t> App::warm_cache(const std::string& database) {
  if (!warmer_) return Error{"55000", "the query cache is not running"};
  return warmer_->warm_now(database);
}

std::string App::serving_status() const {
  int clients = services_.clients.load();
  return "Listening on " + listening_ + "; " + std::to_string(clients) + " client" + (clients == 1 ? "" : "s");
}

awaitable<void> App::watchdog(std::chrono::microseconds interval) {
  // Workers that have not answered the last ping. The control thread reads it; workers count down.
  auto pending = std::make_shared<std::atomic<int>>(0);
  bool warned = false;
  asio::steady_timer tick(control_);
  for (;;) {   // through the shutdown too: the unit's watchdog runs until the process exits
    if (pending->load() == 0) {
      notifier_.watchdog_ping();
      warned = false;
      pending->store(int(workers_.size()));
      for (auto& w : workers_) w->ping([pending] { pending->fetch_sub(1); });
    } else if (!warned && !stopping_) {
      warned = true;
      log_warning("watchdog: ", pending->load(), " worker event loop(s) did not answer within ",
                  interval.count() / 2000, " ms; holding back the systemd watchdog ping");
    }
    tick.expires_after(interval / 2);
    error_code ec;
    co_await tick.async_wait(ec_awaitable(ec));
    if (ec) co_return;
  }
}

awaitable<void> App::housekeeping() {
  asio::steady_timer tick(control_);
  std::string last_status;
  for (int second = 1; !stopping_; ++second) {
    tick.expires_after(std::chrono::seconds(1));
    error_code ec;
    co_await tick.async_wait(ec_awaitable(ec));
    if (second % 10 == 0 && notifier_.active()) {   // systemctl status: the client count, now and then
      if (auto status = serving_status(); status != last_status) notifier_.status(last_status = status);
    }
    services_.pools.housekeep(services_.config.get()->server_idle_timeout);   // lifetime, scale-down
    services_.pools.counters().roll_period(std::chrono::steady_clock::now());   // SHOW STATS averages
    for (auto& pool : services_.pools.pools()) {
      if (services_.gate.paused(pool->key().database)) continue;   // PAUSE closed them on purpose
      co_await pool->keep_minimum(control_.get_executor());
    }
  }
}

int App::remaining() const {
  int total = 0;
  for (auto& w : workers_) total += w->sessions();
  return total;
}

awaitable<void> App::shutdown(const char* why, std::optional<std::chrono::steady_clock::time_point> until) {
  stopping_ = true;
  accepting_ = false;
  if (warmer_) warmer_->stop();   // its sessions end; warm_file is written
  auto timeout = services_.config.get()->shutdown_timeout;
  auto deadline = until.value_or(std::chrono::steady_clock::now() + timeout);
  if (until) timeout = std::chrono::duration_cast<conf::Duration>(std::max(*until - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration{}));
  int sessions = 0;
  for (auto& w : workers_) { w->stop_accepting(); sessions += w->sessions(); }
  log_info(why, ": shutting down; no new connections, waiting up to ", timeout.count(), " ms for ", sessions,
           " client", sessions == 1 ? "" : "s");
  notifier_.stopping("Shutting down (" + std::string(why) + "): waiting up to " + std::to_string(timeout.count()) +
                     " ms for " + std::to_string(sessions) + " client" + (sessions == 1 ? "" : "s"));
  // pgrelay is gone by the deadline (an orchestrator's kill grace is set from it): the clients
  // still there are disconnected in its last tenth, at most 1 s and at least 100 ms.
  using std::chrono::milliseconds;
  const auto closing = std::clamp<std::chrono::steady_clock::duration>((deadline - std::chrono::steady_clock::now()) / 10,
                                                                       milliseconds(100), milliseconds(1000));
  asio::steady_timer tick(control_);
  while (remaining() > 0 && std::chrono::steady_clock::now() < deadline - closing) {
    tick.expires_after(milliseconds(50));
    error_code ec;
    co_await tick.async_wait(ec_awaitable(ec));
  }
  if (int left = remaining(); left > 0) {
    log_info("shutdown_timeout reached, closing ", left, " client connection", left == 1 ? "" : "s");
    for (auto& w : workers_) w->terminate_sessions();
    const auto hard = std::max(deadline, std::chrono::steady_clock::now() + milliseconds(100));
    while (remaining() > 0 && std::chrono::steady_clock::now() < hard) {
      tick.expires_after(std::chrono::milliseconds(20));
      error_code ec;
      co_await tick.async_wait(ec_awaitable(ec));
    }
  }
  stop_all();
}

void App::stop_all() {
  // The takeover listener first: the new process listens there once the channel closes.
  if (takeover_listener_) {
    error_code ec;
    takeover_listener_->close(ec);
  }
  if (giver_) giver_->close();
  if (predecessor_) predecessor_->close();
  services_.pools.retire_all();
  if (metrics_) metrics_->stop();
  // Their connections close: a temporary slot is dropped by the server with its connection.
  if (services_.replication) services_.replication->stop(std::chrono::seconds(3));
  for (auto& w : workers_) w->stop_and_join();
  control_.stop();
}

}  // namespace pgrelay::proxy
