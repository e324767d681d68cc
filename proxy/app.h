// The running server: workers, signals (SIGTERM/SIGINT shut down, SIGHUP reloads), housekeeping.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "conf/loader.h"
#include <boost/asio/signal_set.hpp>

#include "proxy/asio.h"
#include "proxy/services.h"
#include "proxy/worker.h"

namespace pgrelay::proxy {

class App {
 public:
  // `config_path` is what a reload reads again (nullopt: reload re-applies the environment
  // only).
  App(std::shared_ptr<const conf::Config> config, std::optional<std::string> config_path, conf::Environment env);
  ~App();

  // Listens, serves until a shutdown signal, then drains. Returns the process exit code.
  int run();

 private:
  awaitable<void> handle_signals(asio::signal_set& signals);
  awaitable<void> housekeeping();
  void reload();
  awaitable<void> shutdown(const char* why);

  asio::io_context control_{1};       // the main thread: signals and timers, no client I/O
  Services services_;
  std::optional<std::string> config_path_;
  conf::Environment env_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool stopping_ = false;
};

}  // namespace pgrelay::proxy
