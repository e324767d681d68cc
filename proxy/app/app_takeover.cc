// Online restart: a new pgrelay process takes over the listening sockets and the idle clients of
// the running one, which finishes the clients that cannot move and exits (docs/deployment.md).
//
//   new (--takeover)                          old (listening on takeover_socket)
//   connect, kHello(version, pid)      ->
//                                      <-     kListeners(kinds; the listening sockets attached)
//   accept on them, kReady             ->     pause accepting; hand clients over as each is idle:
//                                      <-     kClient(seq, HandoffState; its socket attached)
//   adopt it, kAdopted(seq, ok)        ->     ... until no client is left (or shutdown_timeout)
//   (channel closed: listen on takeover_socket)  exit
//
// Until kReady the old process has changed nothing; if the channel fails after it, the old one
// accepts again and serves the clients it still has.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "proxy/app/app.h"
#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

constexpr auto kHelloTimeout = std::chrono::seconds(10);
constexpr auto kReadyTimeout = std::chrono::seconds(60);
constexpr auto kOfferInterval = std::chrono::milliseconds(50);

void log_failure(std::exception_ptr e) { log_exception(e, "takeover"); }

// The path of a listening Unix-domain socket, "" when it is not one.
std::string unix_path(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || addr.sun_family != AF_UNIX) return "";
  return std::string(addr.sun_path, strnlen(addr.sun_path, sizeof addr.sun_path));
}

}  // namespace

Result<void> App::take_listeners(const tcp::endpoint& endpoint) {
  Result<void> out = Error{"", "no answer"};
  bool finished = false;
  asio::co_spawn(control_, receive_listeners(endpoint, out), [&finished, &out](std::exception_ptr e) {
    if (e) out = Error{"", "unexpected error"};
    log_exception(e, "takeover");
    finished = true;
  });
  while (!finished && control_.run_one() > 0) {
  }
  control_.restart();
  return out;
}

awaitable<void> App::receive_listeners(const tcp::endpoint& endpoint, Result<void>& out) {
  auto config = services_.config.get();
  const std::string path = config->effective_takeover_socket();
  if (path.empty()) {
    out = Error{"", "no takeover_socket to reach the running pgrelay at (set takeover_socket or unix_socket_dir)"};
    co_return;
  }
  auto channel = takeover::Channel::connect(control_.get_executor(), path);
  if (!channel.ok()) {
    out = channel.error();
    co_return;
  }
  Watchdog deadline(control_.get_executor(), kHelloTimeout, [&channel] { channel->close(); });
  protocol::Buffer hello{std::byte(takeover::kVersion)};
  takeover::put_u64(hello, uint64_t(::getpid()));
  auto sent = co_await channel->send(takeover::kHello, protocol::Bytes(hello));
  if (!sent.ok()) {
    out = sent.error();
    co_return;
  }
  auto m = co_await channel->receive();
  deadline.disarm();
  if (!m.ok() || m->type != takeover::kListeners || m->body.size() != m->fds.size()) {
    out = Error{"", "the pgrelay at " + path + " did not pass its listening sockets (" +
                        (m.ok() ? std::string("unexpected answer") : m.error().message) +
                        "; a pgrelay of another version, or one already being replaced?)"};
    co_return;
  }
  // Every socket is adopted: one left unadopted would drop the connections in its accept queue
  // when the old process exits. Spread over the workers; workers left over listen themselves.
  size_t tcp_count = 0;
  for (size_t i = 0; i < m->fds.size(); ++i) {
    const bool is_unix = char(m->body[i]) == takeover::kListenerUnix;
    const std::string where = is_unix ? unix_path(m->fds[i].get()) : std::string();
    Worker& w = is_unix ? *workers_.front() : *workers_[tcp_count++ % workers_.size()];
    if (auto r = w.adopt_listener(m->fds[i].release()); !r.ok()) {
      out = r.error();
      co_return;
    }
    if (is_unix) unix_socket_path_ = where;
  }
  if (tcp_count == 0) {
    out = Error{"", "the pgrelay at " + path + " passed no TCP listening socket"};
    co_return;
  }
  for (size_t i = tcp_count; i < workers_.size(); ++i) {
    if (auto r = workers_[i]->listen(endpoint); !r.ok()) {
      out = r.error();
      co_return;
    }
  }
  log_info("takeover: took ", m->fds.size(), " listening socket", m->fds.size() == 1 ? "" : "s", " from the pgrelay at ",
           path, " (listen_addr, listen_port and unix_socket_dir stay as that process had them)");
  predecessor_.emplace(std::move(*channel));
  out = Result<void>{};
}

awaitable<void> App::adopt_clients() {
  takeover::Channel& channel = *predecessor_;
  services_.cancel_forward.store(this);   // clients not handed over yet are the old process
  auto sent = co_await channel.send(takeover::kReady, {});
  if (!sent.ok()) log_error("takeover: ", sent.error().message);
  uint64_t received = 0;
  for (size_t next = 0; sent.ok();) {
    auto m = co_await channel.receive();
    if (!m.ok()) break;   // "closed": the old process has exited
    protocol::Reader r{protocol::Bytes(m->body)};
    uint64_t seq = 0;
    if (m->type != takeover::kClient || m->fds.size() != 1 || !takeover::get_u64(r, seq)) {
      log_error("takeover: unexpected message from the previous process; no more clients are taken from it");
      break;
    }
    ++received;
    auto state = decode_handoff(r.rest());
    if (!state.ok()) {   // its descriptor closes with `m`: the old process serves it on
      log_error("takeover: ", state.error().message);
      asio::co_spawn(control_, answer_adoption(seq, false), log_failure);
      continue;
    }
    workers_[next++ % workers_.size()]->adopt_session(
        m->fds[0].release(), std::move(*state), [this, seq](std::string refused) {
          if (!refused.empty()) log_info("takeover: a client stays with the previous process: ", refused);
          asio::post(control_, [this, seq, ok = refused.empty()] {
            asio::co_spawn(control_, answer_adoption(seq, ok), log_failure);
          });
        });
  }
  services_.cancel_forward.store(nullptr);
  log_info("takeover complete: the previous process has exited; ", received, " client", received == 1 ? "" : "s",
           " handed over");
  channel.close();
  notifier_.ready(serving_status());   // the service's main process now (MAINPID from the old one)
  if (!stopping_) listen_for_takeover();
}

awaitable<void> App::answer_adoption(uint64_t seq, bool adopted) {
  if (!predecessor_ || !predecessor_->is_open()) co_return;
  protocol::Buffer body;
  takeover::put_u64(body, seq);
  body.push_back(std::byte(adopted ? 1 : 0));
  auto sent = co_await predecessor_->send(takeover::kAdopted, protocol::Bytes(body));
  if (!sent.ok()) log_error("takeover: ", sent.error().message);
}

void App::forward_cancel(const protocol::BackendKeyData& key) {
  asio::post(control_, [this, key] {
    asio::co_spawn(control_, send_cancel_key(key), log_failure);
  });
}

awaitable<void> App::send_cancel_key(protocol::BackendKeyData key) {
  if (!predecessor_ || !predecessor_->is_open()) co_return;
  protocol::Buffer body;
  protocol::Writer w(body);
  w.i32(key.pid);
  w.i32(key.secret);
  auto sent = co_await predecessor_->send(takeover::kCancel, protocol::Bytes(body));
  if (!sent.ok()) log_error("takeover: ", sent.error().message);
}

awaitable<void> App::cancel_for_successor(protocol::BackendKeyData key) {
  auto slot = services_.cancels.find(key);
  auto target = slot ? slot->begin_cancel() : std::nullopt;
  if (!target) co_return;   // unknown here too, or the client is between queries
  log_info("takeover: forwarding a cancel request the new process received to ", target->server->describe());
  co_await send_cancel_request(control_.get_executor(), *target->server, target->key);
  slot->end_cancel();
}

void App::listen_for_takeover() {
  const std::string path = services_.config.get()->effective_takeover_socket();
  if (path.empty()) return;
  auto fd = takeover::listen(path);
  if (!fd.ok()) {
    log_warning(fd.error().message, "; online restart (--takeover) is not available");
    return;
  }
  takeover_path_ = path;
  takeover_listener_.emplace(control_, fd->release());
  asio::co_spawn(control_, accept_takeovers(), log_failure);
}

awaitable<void> App::accept_takeovers() {
  for (;;) {
    auto channel = co_await takeover::accept(*takeover_listener_);
    if (!channel.ok()) co_return;   // closed at shutdown
    if (taking_over_ || stopping_) {   // one at a time, and not while stopping
      channel->close();
      continue;
    }
    taking_over_ = true;
    co_await give_over(std::move(*channel));
    taking_over_ = false;
  }
}

awaitable<void> App::give_over(takeover::Channel channel) {
  auto ex = control_.get_executor();
  std::optional<Watchdog> deadline;
  deadline.emplace(ex, kHelloTimeout, [&channel] { channel.close(); });
  auto hello = co_await channel.receive();
  protocol::Reader r{hello.ok() ? protocol::Bytes(hello->body) : protocol::Bytes()};
  uint8_t version = 0;
  uint64_t pid = 0;
  if (!hello.ok() || hello->type != takeover::kHello || !r.u8(version) || version != takeover::kVersion ||
      !takeover::get_u64(r, pid)) {
    log_error("takeover: a process connected to ", takeover_path_, " but did not ask in this version's words; ignored");
    co_return;
  }
  log_info("takeover: pgrelay pid ", pid, " is taking over; passing it the listening sockets");
  if (warmer_) warmer_->save_now();   // the new process warms from what this one found hot
  protocol::Buffer kinds;
  std::vector<int> fds;
  for (auto& w : workers_) {
    for (int fd : w->listener_fds()) {
      kinds.push_back(std::byte(unix_path(fd).empty() ? takeover::kListenerTcp : takeover::kListenerUnix));
      fds.push_back(fd);
    }
  }
  auto sent = co_await channel.send(takeover::kListeners, protocol::Bytes(kinds), fds);
  deadline.reset();
  deadline.emplace(ex, kReadyTimeout, [&channel] { channel.close(); });
  auto ready = co_await channel.receive();
  deadline.reset();
  if (!sent.ok() || !ready.ok() || ready->type != takeover::kReady) {
    const std::string why = !sent.ok() ? sent.error().message : !ready.ok() ? ready.error().message : "unexpected answer";
    log_error("takeover by pid ", pid, " failed before it accepted (", why, "); this process serves on");
    co_return;
  }

  // The new process accepts on the same sockets: this one stops, and sends its clients over as
  // each comes to rest between transactions.
  for (auto& w : workers_) w->pause_accepting();
  accepting_ = false;
  if (warmer_) warmer_->stop();   // a warm run's sessions cannot be handed over: they end here
  notifier_.main_pid(int(pid));
  giver_ = std::make_unique<TakeoverGiver>(ex, std::move(channel), [this](protocol::BackendKeyData key) {
    asio::co_spawn(control_, cancel_for_successor(key), log_failure);
  });
  giver_->start();
  services_.handoff.store(giver_.get());
  handed_over_ = true;
  const auto until = std::chrono::steady_clock::now() + services_.config.get()->shutdown_timeout;
  log_info("takeover: pid ", pid, " accepts now; handing over ", remaining(), " client", remaining() == 1 ? "" : "s",
           " as each is between transactions (up to shutdown_timeout)");
  asio::steady_timer tick(control_);
  while (remaining() > 0 && !giver_->ended() && std::chrono::steady_clock::now() < until) {
    for (auto& w : workers_) w->offer_handoff();
    tick.expires_after(kOfferInterval);
    error_code ec;
    co_await tick.async_wait(ec_awaitable(ec));
  }
  if (giver_->ended() && remaining() > 0) {
    // The new process went away: this one is the server again. (giver_ stays: a session may
    // still hold the pointer it read; it answers false to everything now.)
    services_.handoff.store(nullptr);
    handed_over_ = false;
    for (auto& w : workers_) w->resume_accepting();
    accepting_ = true;
    notifier_.main_pid(int(::getpid()));
    log_error("takeover: the new process went away after adopting ", giver_->adopted(), " client(s); this process ",
              "accepts again and serves its ", remaining(), " client(s)");
    co_return;
  }
  log_info("takeover: ", giver_->adopted(), " client(s) handed over, ", giver_->refused(), " refused; ", remaining(),
           " left to finish here");
  co_await shutdown("takeover", until);
}

void App::spawn_successor() {
  if (taking_over_ || exe_.empty()) {
    log_warning("SIGUSR2: ", exe_.empty() ? "no binary path known" : "a takeover is already under way", "; ignored");
    return;
  }
  // Everything is built before fork(): the child of a threaded process may only exec.
  std::vector<std::string> args{exe_, "--takeover"};
  args.insert(args.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::signal(SIGCHLD, SIG_IGN);   // a successor that fails to take over is reaped by the kernel
  pid_t child = ::fork();
  if (child == 0) {
    ::close_range(3, ~0U, 0);   // no client or server connection may stay open in the successor
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (child < 0) {
    log_error("SIGUSR2: cannot start ", exe_, ": ", std::strerror(errno));
    return;
  }
  log_info("SIGUSR2: started ", exe_, " --takeover (pid ", child, ") to take over");
}

}  // namespace pgrelay::proxy
