// Starting and stopping redis-server for the integration tests.
#include "redis_server.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pgrelay::it {

// Once the delegated constructor returned, a throw from start() runs the destructor, which
// removes the directory.
RedisServer::RedisServer(std::vector<std::string> extra, bool tls) : RedisServer(std::move(extra), tls, true) { start(); }

RedisServer::~RedisServer() {
  kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<RedisServer> RedisServer::sentinel(const std::string& master_name, int master_port) {
  // Made stopped, so its config file is written (in its directory) before the first start().
  auto s = std::unique_ptr<RedisServer>(new RedisServer(std::vector<std::string>{"--sentinel"}, false, true));
  s->config_path_ = s->dir_ + "/sentinel.conf";
  std::ofstream conf(s->config_path_);
  conf << "sentinel monitor " << master_name << " 127.0.0.1 " << master_port << " 1\n"
       << "sentinel down-after-milliseconds " << master_name << " 1000\n"
       << "sentinel failover-timeout " << master_name << " 10000\n";
  conf.close();
  s->start();
  return s;
}

RedisServer::RedisServer(std::vector<std::string> extra, bool tls, bool /*deferred*/) : extra_(std::move(extra)), tls_(tls) {
  char tmpl[] = "/tmp/pgrelay-it-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_path_ = dir_ + "/redis.sock";
  log_path_ = dir_ + "/redis.log";
  port_ = free_port();
}

void RedisServer::start() {
  if (pid_ > 0) return;
  std::vector<std::string> args = {"redis-server"};
  if (!config_path_.empty()) args.push_back(config_path_);
  args.insert(args.end(), {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--unixsocket", socket_path_,
                           "--save", "", "--appendonly", "no", "--dir", dir_, "--logfile", log_path_,
                           "--daemonize", "no", "--enable-debug-command", "yes"});
  if (tls_) args.insert(args.end(), {"--port", "0", "--tls-port", std::to_string(port_)});
  args.insert(args.end(), extra_.begin(), extra_.end());
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp("redis-server", argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!port_accepts(port_)) {
    int status = 0;
    const bool exited = ::waitpid(pid_, &status, WNOHANG) == pid_;
    if (exited || std::chrono::steady_clock::now() > deadline) {
      if (!exited) kill();
      pid_ = -1;
      std::ifstream in(log_path_);
      std::stringstream log;
      log << in.rdbuf();
      throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) + "; log:\n" + log.str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  std::error_code ec;
  std::filesystem::remove(socket_path_, ec);
}

}  // namespace pgrelay::it
