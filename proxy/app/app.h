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
#include "proxy/app/service_notifier.h"
#include "proxy/app/worker.h"

namespace pgrelay::proxy {

class ClientSession;
class MetricsExporter;

class App : public Control {
 public:
  // `config_path` is what a reload reads again (nullopt: reload re-applies the environment
  // only).
  App(std::shared_ptr<const conf::Config> config, std::optional<std::string> config_path, conf::Environment env);
  ~App() override;

  // Listens, serves until a shutdown signal, then drains. Returns the process exit code.
  int run();

  // Control, for the admin console (app_control.cc).
  Result<void> reload() override;
  void request_shutdown() override;
  awaitable<std::vector<ClientInfo>> clients() override;
  awaitable<size_t> terminate_clients(std::function<bool(const ClientInfo&)> which) override;
  size_t client_session_size() const override;
  bool accepting() const override { return accepting_.load(); }

 private:
  awaitable<void> handle_signals(asio::signal_set& signals);
  awaitable<void> housekeeping();
  // WATCHDOG=1 every half WatchdogSec= while every worker's event loop answers a ping.
  awaitable<void> watchdog(std::chrono::microseconds interval);
  std::string serving_status() const;   // STATUS= for systemctl status
  // Runs `visit` for every session on its own worker thread; completes when all have.
  awaitable<void> visit_sessions(std::function<void(ClientSession&)> visit);
  awaitable<void> shutdown(const char* why);

  asio::io_context control_{1};       // the main thread: signals and timers, no client I/O
  Services services_;
  std::optional<std::string> config_path_;
  conf::Environment env_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<MetricsExporter> metrics_;   // on control_, when metrics_listen is set
  bool stopping_ = false;                      // control_'s thread only
  std::string unix_socket_path_;               // the Unix-domain socket file, removed at exit
  std::atomic<bool> accepting_{false};
  ServiceNotifier notifier_;                   // systemd: readiness, reload, stop, watchdog
  std::string listening_;                      // "127.0.0.1:6432 and /run/pgrelay/.s.PGSQL.6432"
};

}  // namespace pgrelay::proxy
