// Opens N idle, logged-in PostgreSQL client connections and holds them, for bench/run's idle-clients workload.
//
// Usage: idle_clients HOST PORT USER DBNAME N [LOGIN_TIMEOUT_S [HOLD_S]]
//
// Speaks just enough of the v3 protocol (StartupMessage, then read until ReadyForQuery) to get
// each connection past login with trust authentication; no libpq, so the tool itself costs a
// few hundred bytes per connection. At most kInFlight TCP connects run at once, so a pooler's
// accept queue is never the bottleneck being measured; a connection that has sent its startup
// packet no longer counts, so logins a pooler makes wait (a session pool that is full) do not stop
// the rest from connecting. When every connection has logged in or failed, LOGIN_TIMEOUT_S has
// passed, or every connection is open and no login has finished for kStallMs, it prints one line
//   connected=C logged_in=L failed=F elapsed_ms=T
// to stdout (flushed) and then holds the sockets, without reading or writing, until SIGTERM,
// SIGINT or HOLD_S seconds (default 300) pass.
// Connections still waiting for login at the timeout are counted in `connected`, not `logged_in`.
#include <arpa/inet.h>
#include <csignal>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr int kInFlight = 128;
constexpr long long kStallMs = 5000;

enum class State : uint8_t { kConnecting, kReading, kIdle, kFailed };

struct Conn {
  int fd = -1;
  State state = State::kConnecting;
  std::string in;     // bytes received during login, parsed as whole messages
};

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

long long now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void put_u32(std::string& s, uint32_t v) {
  s.push_back(char(v >> 24)); s.push_back(char(v >> 16)); s.push_back(char(v >> 8)); s.push_back(char(v));
}

std::string startup_message(const char* user, const char* db) {
  std::string body;
  put_u32(body, 196608);  // protocol 3.0
  for (const char* kv : {"user", user, "database", db, "application_name", "idle_clients"}) {
    body += kv;
    body.push_back('\0');
  }
  body.push_back('\0');
  std::string msg;
  put_u32(msg, uint32_t(body.size() + 4));
  return msg + body;
}

uint32_t get_u32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

// Consumes whole messages from c.in. Returns the new state: kIdle on ReadyForQuery, kFailed on
// ErrorResponse or an authentication request other than AuthenticationOk.
State parse_login(Conn& c) {
  size_t pos = 0;
  State st = State::kReading;
  while (c.in.size() - pos >= 5) {
    char type = c.in[pos];
    uint32_t len = get_u32(c.in, pos + 1);
    if (len < 4 || len > (1u << 20)) return State::kFailed;
    if (c.in.size() - pos < 1 + size_t(len)) break;
    if (type == 'E') return State::kFailed;
    if (type == 'R' && (len < 8 || get_u32(c.in, pos + 5) != 0)) return State::kFailed;
    if (type == 'Z') st = State::kIdle;
    pos += 1 + len;
  }
  c.in.erase(0, pos);
  return st;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s HOST PORT USER DBNAME N [LOGIN_TIMEOUT_S [HOLD_S]]\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  const std::string startup = startup_message(argv[3], argv[4]);
  const int n = std::atoi(argv[5]);
  const int login_timeout_s = argc > 6 ? std::atoi(argv[6]) : 60;
  const int hold_s = argc > 7 ? std::atoi(argv[7]) : 300;

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "idle_clients: HOST must be an IPv4 address, got %s\n", host);
    return 2;
  }

  int ep = epoll_create1(0);
  std::vector<Conn> conns(size_t(n > 0 ? n : 0));
  int next = 0, in_flight = 0, connected = 0, logged_in = 0, failed = 0;
  const long long start = now_ms();
  const long long deadline = start + login_timeout_s * 1000LL;

  auto finish = [&](int i, State st) {
    Conn& c = conns[size_t(i)];
    if (c.state == State::kConnecting) --in_flight;
    c.state = st;
    c.in.clear();
    c.in.shrink_to_fit();
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    if (st == State::kIdle) {
      ++logged_in;
    } else {
      ++failed;
      close(c.fd);
      c.fd = -1;
    }
  };

  std::vector<epoll_event> events(256);
  long long last_progress = start;
  int done_before = 0;
  while (!g_stop && logged_in + failed < n && now_ms() < deadline) {
    if (logged_in + failed != done_before) { done_before = logged_in + failed; last_progress = now_ms(); }
    if (next == n && in_flight == 0 && now_ms() - last_progress > kStallMs) break;
    while (next < n && in_flight < kInFlight) {
      Conn& c = conns[size_t(next)];
      c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.fd < 0) { ++failed; c.state = State::kFailed; ++next; continue; }
      int one = 1;
      setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      int rc = connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      if (rc < 0 && errno != EINPROGRESS) {
        close(c.fd); c.fd = -1; c.state = State::kFailed; ++failed; ++next; continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u32 = uint32_t(next);
      epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
      ++in_flight;
      ++next;
    }
    int k = epoll_wait(ep, events.data(), int(events.size()), 200);
    for (int e = 0; e < k; ++e) {
      int i = int(events[size_t(e)].data.u32);
      Conn& c = conns[size_t(i)];
      if (c.state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) { finish(i, State::kFailed); continue; }
        ++connected;
        --in_flight;
        c.state = State::kReading;
        // The startup packet is tiny: one write on a fresh socket always takes it whole.
        if (write(c.fd, startup.data(), startup.size()) != ssize_t(startup.size())) {
          finish(i, State::kFailed);
          continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = uint32_t(i);
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        continue;
      }
      if (c.state != State::kReading) continue;
      char buf[4096];
      ssize_t r = read(c.fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) { finish(i, State::kFailed); continue; }
      if (r < 0) continue;
      c.in.append(buf, size_t(r));
      State st = parse_login(c);
      if (st != State::kReading) finish(i, st);
    }
  }
  std::printf("connected=%d logged_in=%d failed=%d elapsed_ms=%lld\n", connected, logged_in, failed,
              now_ms() - start);
  std::fflush(stdout);

  const long long hold_until = now_ms() + hold_s * 1000LL;
  while (!g_stop && now_ms() < hold_until) poll(nullptr, 0, 200);
  for (auto& c : conns)
    if (c.fd >= 0) close(c.fd);
  return 0;
}
