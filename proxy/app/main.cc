// pgrelay's entry point: command line, first config load, then the App.
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include "conf/loader.h"
#include "proxy/app/allocator.h"
#include "proxy/app/app.h"
#include "proxy/net/tls_context.h"

namespace {

constexpr const char* kUsage =
    "Usage: pgrelay [-c FILE]            run the proxy\n"
    "       pgrelay --takeover [-c FILE] take over from the pgrelay running with that\n"
    "                                    config (online restart: its listening sockets and\n"
    "                                    idle clients; it exits once its clients are gone)\n"
    "       pgrelay --check-config FILE  validate a config file and exit\n"
    "       pgrelay --help | --version\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   TOML configuration (default: $PGRELAY_CONFIG, else built-in defaults)\n"
    "\n"
    "Environment:\n"
    "  DATABASE_URL        postgresql://user:pass@host:port/db - a database to serve (plus a \"*\" fallback)\n"
    "  PGRELAY_LISTEN      host:port to listen on (overrides listen_addr/listen_port)\n"
    "  PGRELAY_CONFIG      config file when -c is not given\n"
    "\n"
    "Signals: SIGHUP reloads the configuration; SIGTERM and SIGINT shut down gracefully;\n"
    "SIGUSR2 starts the binary again with --takeover (online restart, docs/deployment.md).\n";

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> config_path;
  std::optional<std::string> check_path;
  bool takeover = false;
  std::vector<std::string> args;   // for the successor SIGUSR2 starts
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--takeover") != 0) args.emplace_back(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "pgrelay: %s needs a file name\n%s", name, kUsage);
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version" || arg == "-V") {
      std::printf("pgrelay %s (malloc: %s)\n", PGRELAY_VERSION, pgrelay::proxy::allocator_name().c_str());
      return 0;
    } else if (arg == "-c" || arg == "--config") {
      if (!(config_path = value("--config"))) return 2;
    } else if (arg == "--takeover") {
      takeover = true;
    } else if (arg == "--check-config") {
      if (!(check_path = value("--check-config"))) return 2;
    } else {
      std::fprintf(stderr, "pgrelay: unknown argument \"%s\"\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }

  auto env = pgrelay::conf::Environment::from_process();
  if (check_path) {
    auto checked = pgrelay::conf::load_config_file(*check_path);
    if (!checked.ok()) {
      std::fprintf(stderr, "pgrelay: %s\n", checked.error().message.c_str());
      return 1;
    }
    // The TLS files must load too, as they will at start-up.
    pgrelay::proxy::TlsContexts tls;
    if (auto loaded = tls.load(*checked); !loaded.ok()) {
      std::fprintf(stderr, "pgrelay: %s: %s\n", check_path->c_str(), loaded.error().message.c_str());
      return 1;
    }
    std::printf("%s: OK (%zu database%s)\n", check_path->c_str(), checked->databases.size(),
                checked->databases.size() == 1 ? "" : "s");
    return 0;
  }

  if (!config_path && env.config_path) config_path = env.config_path;
  auto config = pgrelay::conf::load_config(config_path, env);
  if (!config.ok()) {
    std::fprintf(stderr, "pgrelay: %s\n", config.error().message.c_str());
    return 1;
  }
  pgrelay::proxy::App app(std::make_shared<const pgrelay::conf::Config>(std::move(*config)), config_path, env);
  // The binary's path now: after a package upgrade it names the new binary, which SIGUSR2 starts.
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  app.set_command_line(n > 0 ? std::string(exe, size_t(n)) : std::string(), std::move(args));
  return app.run(takeover);
}
