// The running server: workers, signals (SIGTERM/SIGINT shut down, SIGHUP reloads), housekeeping.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "conf/loader.h"
#include <boost/asio/signal_set.hpp>

#include "proxy/net/asio.h"
#include "proxy/session/control.h"
#include "proxy/session/services.h"
#include "proxy/app/cache_warmer.h"
#include "proxy/app/service_notifier.h"
#include "proxy/app/takeover_channel.h"
#include "proxy/app/takeover_giver.h"
#include "proxy/app/worker.h"

namespace pgrelay::proxy {

class ClientSession;
class MetricsExporter;

class App : public Control, public CancelForwarder {
 public:
  // `config_path` is what a reload reads again (nullopt: reload re-applies the environment
  // only).
  App(std::shared_ptr<const conf::Config> config, std::optional<std::string> config_path, conf::Environment env);
  ~App() override;

  // Listens, serves until a shutdown signal, then drains. Returns the process exit code.
  // `takeover` (pgrelay --takeover): takes the listening sockets and the clients over from the
  // pgrelay running at takeover_socket instead of listening itself (app_takeover.cc).
  int run(bool takeover = false);
  // For the successor SIGUSR2 starts (online restart): the binary's path as it was at start (a
  // package upgrade puts the new one there) and the command-line arguments to start it with.
  void set_command_line(std::string exe, std::vector<std::string> args);

  // Control, for the admin console (app_control.cc).
  Result<void> reload() override;
  void request_shutdown() override;
  awaitable<ConnectionsSnapshot> connections() override;
  awaitable<size_t> terminate_clients(std::function<bool(const ClientInfo&)> which) override;
  size_t client_session_size() const override;
  bool accepting() const override { return accepting_.load(); }
  Result<size_t> warm_cache(const std::string& database) override;
  // CancelForwarder (online restart, the new process): to the old process over the channel.
  void forward_cancel(const protocol::BackendKeyData& key) override;

 private:
  awaitable<void> handle_signals(asio::signal_set& signals);
  awaitable<void> housekeeping();
  // WATCHDOG=1 every half WatchdogSec= while every worker's event loop answers a ping.
  awaitable<void> watchdog(std::chrono::microseconds interval);
  std::string serving_status() const;   // STATUS= for systemctl status
  // Runs `visit` for every session on its own worker thread (and `lanes` for each worker's
  // lanes); completes when all have.
  awaitable<void> visit_sessions(std::function<void(ClientSession&)> visit,
                                 std::function<void(const LaneSet&)> lanes = {});
  // Stops accepting, waits for the clients to leave until `until` (shutdown_timeout from now
  // when not given), closes those left, and stops.
  awaitable<void> shutdown(const char* why, std::optional<std::chrono::steady_clock::time_point> until = {});
  int remaining() const;   // client sessions, all workers
  // Stops and exits, but leaves the listening sockets' files to the process that took them over.
  void stop_all();

  // --- app_takeover.cc: online restart ---
  // New process: connects to the running pgrelay, takes its listening sockets into the workers
  // (more workers than sockets listen on their own). Error: why not (nothing was changed there).
  Result<void> take_listeners(const tcp::endpoint& endpoint);
  awaitable<void> receive_listeners(const tcp::endpoint& endpoint, Result<void>& out);
  // New process, once its workers accept: says so, then adopts the clients sent until the old
  // process has gone, then listens on takeover_socket itself.
  awaitable<void> adopt_clients();
  awaitable<void> answer_adoption(uint64_t seq, bool adopted);
  awaitable<void> send_cancel_key(protocol::BackendKeyData key);
  // Old process: a CancelRequest the new one passed on, for a client still here.
  awaitable<void> cancel_for_successor(protocol::BackendKeyData key);
  // Listens on takeover_socket for a new process and serves it (one at a time).
  void listen_for_takeover();
  awaitable<void> accept_takeovers();
  // Old process: hands the listening sockets and then the clients to the new process on
  // `channel`, and exits once no client is left; a failure before that leaves it serving.
  awaitable<void> give_over(takeover::Channel channel);
  // SIGUSR2: starts this binary again with --takeover (the same arguments otherwise).
  void spawn_successor();

  asio::io_context control_{1};       // the main thread: signals and timers, no client I/O
  Services services_;
  std::optional<std::string> config_path_;
  conf::Environment env_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<CacheWarmer> warmer_;         // on worker 0's loop, with the query cache (destroyed before the workers)
  std::unique_ptr<MetricsExporter> metrics_;   // on control_, when metrics_listen is set
  bool stopping_ = false;                      // control_'s thread only
  std::string unix_socket_path_;               // the Unix-domain socket file, removed at exit
  std::atomic<bool> accepting_{false};
  ServiceNotifier notifier_;                   // systemd: readiness, reload, stop, watchdog
  std::string listening_;                      // "127.0.0.1:6432 and /run/pgrelay/.s.PGSQL.6432"
  // Online restart (app_takeover.cc).
  std::string takeover_path_;                  // takeover_socket, while this process listens there
  std::optional<asio::posix::stream_descriptor> takeover_listener_;
  std::optional<takeover::Channel> predecessor_;   // new process: the channel to the old one
  std::unique_ptr<TakeoverGiver> giver_;       // old process: clients on their way to the new one
  bool handed_over_ = false;                   // the listening sockets belong to the new process now
  bool taking_over_ = false;                   // a new process is being served (one at a time)
  std::string exe_;
  std::vector<std::string> args_;
};

}  // namespace pgrelay::proxy
