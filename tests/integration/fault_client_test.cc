// Fault injection on the client side: slow and hostile clients. Slowloris startups are cut off by
// client_login_timeout; a client that never reads its results holds pgrelay's memory flat; ten
// thousand connections at once; messages at and over max_message_size in both directions; a
// large COPY in. Ledger writers run beside each as bystanders: none of their transactions may
// fail, and the ledger must add up afterwards.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "harness.h"
#include "ledger.h"
#include "rss_sampler.h"

using namespace pgrelay::it;

namespace {

using Clock = std::chrono::steady_clock;

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Bystanders: ledger writers through `relay` for the duration of a scenario.
struct Bystanders {
  Ledger ledger;
  explicit Bystanders(const PgrelayProcess& relay, int clients = 2) : ledger(direct_conninfo(), "fault_client_ledger") {
    ledger.start(relay.conninfo(), clients, 20s);
  }
  void check() {
    ledger.stop();
    LedgerCheck c = ledger.check();
    MESSAGE("bystanders' ledger: " << c.describe());
    CHECK_MESSAGE(c.ok(), c.describe());
    CHECK(c.committed > 0);
    auto errors = ledger.errors();
    CHECK_MESSAGE(errors.empty(), first_error(errors));
  }
};

int open_fds(pid_t pid) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

// True once the peer has closed `fd` (EOF or reset); reads and drops whatever came first.
bool peer_closed(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }
}

// raw_login with room for a loaded machine (its 5 s is for an idle one).
void login(RawClient& c) {
  REQUIRE(c.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}})));
  auto greeting = c.read_messages_until('Z', 30s);
  REQUIRE_FALSE(first_error(greeting));
  REQUIRE((!greeting.empty() && greeting.back().type == 'Z'));
}

}  // namespace

TEST_CASE("slowloris: startup packets trickled a byte at a time are cut off at client_login_timeout") {
  RelayConfig cfg;
  cfg.set("client_login_timeout", "\"2s\"").set("max_client_conn", "500");
  PgrelayProcess relay(cfg);
  Bystanders others(relay);
  const int kSlow = 100;
  const std::string packet = startup_packet({{"user", "postgres"}, {"database", "postgres"}});
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(std::make_unique<RawClient>(relay.port()));
  auto began = Clock::now();
  std::vector<Clock::duration> cut(kSlow, Clock::duration::zero());
  int open = kSlow;
  // One byte every 100 ms each: the whole packet would take 4 s, twice the timeout.
  for (size_t sent = 0; open > 0 && Clock::now() - began < 10s; ++sent) {
    for (int i = 0; i < kSlow; ++i) {
      if (cut[i] != Clock::duration::zero()) continue;
      if (peer_closed(slow[i]->fd())) {
        cut[i] = Clock::now() - began;
        --open;
      } else if (sent < packet.size()) {
        slow[i]->send(packet.substr(sent, 1));
      }
    }
    // A normal client logs in meanwhile, not queued behind them: done before they are cut off.
    if (sent == 1) {
      auto t = Clock::now();
      Conn c = connect_ok(relay.conninfo());
      CHECK(scalar(c.get(), "select 1") == "1");
      CHECK(Clock::now() - t < 1800ms);
    }
    std::this_thread::sleep_for(100ms);
  }
  CHECK(open == 0);
  auto longest = *std::max_element(cut.begin(), cut.end());
  auto shortest = *std::min_element(cut.begin(), cut.end());
  MESSAGE("slow startups cut off after " << std::chrono::duration_cast<Millis>(shortest).count() << "-"
                                         << std::chrono::duration_cast<Millis>(longest).count() << " ms");
  CHECK(shortest >= 1800ms);
  CHECK(longest <= 3500ms);
  others.check();
  CHECK(relay.running());
}

TEST_CASE("a client that sends queries and never reads the results: pgrelay's memory stays flat, others go on") {
  RelayConfig cfg;
  cfg.pool("transaction", 4);
  PgrelayProcess relay(cfg);
  {
    Conn warm = connect_ok(relay.conninfo());
    REQUIRE(exec(warm.get(), "select repeat('x', 100000) from generate_series(1, 20)").ok());
  }
  std::this_thread::sleep_for(200ms);
  const long baseline = relay.rss_kib();
  Bystanders others(relay);
  RssSampler rss(relay);

  RawClient hog(relay.port());
  login(hog);
  // 64 KiB answers, asked for as fast as pgrelay takes the questions, never read.
  int flags = ::fcntl(hog.fd(), F_GETFL);
  ::fcntl(hog.fd(), F_SETFL, flags | O_NONBLOCK);
  const std::string q = query_message("select repeat('h', 65536)");
  std::string batch;
  for (int i = 0; i < 256; ++i) batch += q;
  long long sent = 0;
  auto began = Clock::now();
  auto last_progress = began;
  while (Clock::now() - began < 8s && Clock::now() - last_progress < 2s) {
    ssize_t n = ::send(hog.fd(), batch.data(), batch.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
      last_progress = Clock::now();
    } else {
      std::this_thread::sleep_for(10ms);
    }
  }
  const long long queries = sent / static_cast<long long>(q.size());
  MESSAGE("the hog sent " << queries << " queries (" << sent / 1024 << " KiB) before pgrelay stopped reading it");
  CHECK(Clock::now() - last_progress >= 2s);   // backpressure: pgrelay stopped taking its bytes
  // Others are unaffected meanwhile: a new client too.
  Conn fresh = connect_ok(relay.conninfo());
  CHECK(scalar(fresh.get(), "select 'not blocked'") == "not blocked");
  const long peak = rss.stop();
  MESSAGE("VmRSS baseline " << baseline << " KiB, peak with the hog " << peak << " KiB");
#ifndef PGRELAY_IT_SANITIZED
  CHECK(peak - baseline < 32 * 1024);
#endif   // under ASan, freed memory stays resident in its quarantine: the backpressure check above stands
  others.check();
  CHECK(relay.running());
}

TEST_CASE("ten thousand connections opened at once (2,000 when CI=true)") {
  int wanted = in_ci() ? 2000 : 10000;
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  // Both this process and pgrelay (which inherits the limit) hold one descriptor per client.
  const int n = std::min<int>(wanted, int(lim.rlim_cur) - 300);
  if (n < wanted) MESSAGE("RLIMIT_NOFILE " << lim.rlim_cur << ": " << n << " connections instead of " << wanted);
  RelayConfig cfg;
  cfg.pool("transaction", 10).set("max_client_conn", std::to_string(n + 100)).set("client_login_timeout", "\"60s\"");
  PgrelayProcess relay(cfg);
  Bystanders others(relay);
  const int fds_before = open_fds(relay.pid());
  const long rss_before = relay.rss_kib();

  auto began = Clock::now();
  std::vector<std::unique_ptr<RawClient>> clients(n);
  const std::string packet = startup_packet({{"user", "postgres"}, {"database", "postgres"}});
  {
    std::vector<std::thread> openers;
    std::atomic<int> failed{0};
    for (int t = 0; t < 8; ++t) {
      openers.emplace_back([&, t] {
        for (int i = t; i < n; i += 8) {
          try {
            clients[i] = std::make_unique<RawClient>(relay.port());
            if (!clients[i]->send(packet)) ++failed;
          } catch (const std::exception&) {
            ++failed;
          }
        }
      });
    }
    for (auto& t : openers) t.join();
    CHECK(failed == 0);
  }
  auto opened = Clock::now() - began;
  // Every one greeted with ReadyForQuery, then every one answers a query.
  auto round = [&](const std::string& send, char until) {
    int done = 0;
    for (auto& c : clients) {
      if (!c) continue;
      if (!send.empty()) c->send(send);
    }
    for (auto& c : clients) {
      if (!c) continue;
      auto got = c->read_messages_until(until, 30s);
      if (!got.empty() && got.back().type == until && !first_error(got)) ++done;
    }
    return done;
  };
  int logged_in = round("", 'Z');
  auto greeted = Clock::now() - began;
  const int fds_busy = open_fds(relay.pid());
  const long rss_busy = relay.rss_kib();
  int answered = round(query_message("select 1"), 'Z');
  auto queried = Clock::now() - began;
  MESSAGE(n << " connections: opened in " << std::chrono::duration_cast<Millis>(opened).count() << " ms, all logged in at "
            << std::chrono::duration_cast<Millis>(greeted).count() << " ms, all answered at "
            << std::chrono::duration_cast<Millis>(queried).count() << " ms; pgrelay fds " << fds_before << " -> "
            << fds_busy << ", VmRSS " << rss_before << " -> " << rss_busy << " KiB ("
            << (rss_busy - rss_before) * 1024 / std::max(1, n) << " bytes per client)");
  CHECK(logged_in == n);
  CHECK(answered == n);
#ifndef PGRELAY_IT_SANITIZED
  // Logged in and idle, each parked on a plain readiness handler: about 1 KiB (bench/README, "Idle
  // clients"). One left in forward() with its frames, reader and observers costs 4.7 KiB.
  CHECK((rss_busy - rss_before) * 1024 / std::max(1, n) < 2048);
#endif
  clients.clear();
  // Every client's descriptor given back once they have gone; the pool may have grown to its
  // pool_size (10) server connections meanwhile, which stay until server_idle_timeout.
  bool released = false;
  for (auto until = Clock::now() + 10s; Clock::now() < until && !released;) {
    released = open_fds(relay.pid()) <= fds_before + 10 + 5;
    std::this_thread::sleep_for(100ms);
  }
  CHECK_MESSAGE(released, "pgrelay holds " << open_fds(relay.pid()) << " descriptors, " << fds_before << " before");
  others.check();
  CHECK(relay.running());
}

TEST_CASE("messages at and over max_message_size, from the client and from the server") {
  const uint32_t kMax = 1 << 20;
  RelayConfig cfg;
  cfg.set("max_message_size", std::to_string(kMax));
  PgrelayProcess relay(cfg);
  Bystanders others(relay);
  // A Query's length field counts itself: this one is exactly max_message_size long.
  auto query_of_length = [](uint32_t length) {
    const std::string head = "select length('";
    const std::string tail = "')";
    std::string sql = head + std::string(length - 4 - 1 - head.size() - tail.size(), 'm') + tail;
    return query_message(sql);
  };
  SUBCASE("at max_message_size: answered") {
    RawClient c(relay.port());
    login(c);
    std::string msg = query_of_length(kMax);
    REQUIRE(load_be32(msg.data() + 1) == kMax);
    REQUIRE(c.send(msg));
    auto got = c.read_messages_until('Z', 30s);
    CHECK_FALSE(first_error(got));
    REQUIRE(got.size() >= 3);
    CHECK(got.back().type == 'Z');
  }
  SUBCASE("one byte over from the client: 54000, and the connection closes") {
    RawClient c(relay.port());
    login(c);
    c.send(query_of_length(kMax + 1));
    bool eof = false;
    std::string bytes = c.read_until_eof(5s, &eof);
    CHECK(eof);
    auto err = first_error(bytes);
    REQUIRE(err.has_value());
    CHECK(err->sqlstate == "54000");
  }
  SUBCASE("a row over max_message_size from the server: an error, not a crash") {
    Conn c = connect_ok(relay.conninfo());
    bool hung = false;
    auto r = exec_deadline(c.get(), "select repeat('r', " + std::to_string(kMax) + ")", 30s, hung);
    CHECK_FALSE(hung);
    // pgrelay cannot frame what follows, so the connection ends, with the reason (the client
    // is between messages: the row's header is the first thing it cannot pass on).
    CHECK_FALSE(r.ok());
    CHECK(r.sqlstate == "54000");
    CHECK_MESSAGE(r.message.find("invalid data from server") != std::string::npos, r.message);
    CHECK(PQstatus(c.get()) == CONNECTION_BAD);
    CHECK(relay.log().find("invalid data from server") != std::string::npos);
    Conn again = connect_ok(relay.conninfo());
    CHECK(scalar(again.get(), "select length(repeat('r', " + std::to_string(kMax - 100) + "))") ==
          std::to_string(kMax - 100));
  }
  others.check();
  CHECK(relay.running());
}

TEST_CASE("a large COPY in (64 MiB; PGRELAY_FAULT_COPY_MB for more): every row arrives, memory stays flat") {
  long mib = 64;
  if (const char* v = std::getenv("PGRELAY_FAULT_COPY_MB")) mib = std::atol(v);
  PgrelayProcess relay;
  {
    Conn d = connect_ok(direct_conninfo());
    REQUIRE(exec(d.get(), "drop table if exists fault_copy_in; create unlogged table fault_copy_in (id bigint, body text)").ok());
  }
  const long baseline = relay.rss_kib();
  Bystanders others(relay);
  RssSampler rss(relay);
  Conn c = connect_ok(relay.conninfo());
  REQUIRE(exec(c.get(), "copy fault_copy_in from stdin").status == PGRES_COPY_IN);
  const std::string body(1024, 'c');
  const long rows = mib * 1024 * 1024 / 1024;   // 1 KiB lines
  std::string chunk;
  auto began = Clock::now();
  for (long id = 1; id <= rows; ++id) {
    chunk += std::to_string(id);
    chunk += '\t';
    chunk.append(body, 0, 1024 - 2 - std::to_string(id).size());
    chunk += '\n';
    if (chunk.size() >= 256 * 1024 || id == rows) {
      REQUIRE(PQputCopyData(c.get(), chunk.data(), int(chunk.size())) == 1);
      chunk.clear();
    }
  }
  REQUIRE(PQputCopyEnd(c.get(), nullptr) == 1);
  Result r(PQgetResult(c.get()));
  auto q = to_query_result(c.get(), r.get());
  REQUIRE_MESSAGE(q.ok(), q.message);
  CHECK(q.command_tuples == std::to_string(rows));
  while (PGresult* rest = PQgetResult(c.get())) PQclear(rest);
  auto took = Clock::now() - began;
  const long peak = rss.stop();
  Conn d = connect_ok(direct_conninfo());
  CHECK(scalar(d.get(), "select count(*) from fault_copy_in") == std::to_string(rows));
  CHECK(scalar(d.get(), "select sum(id) from fault_copy_in") == std::to_string(rows * (rows + 1) / 2));
  CHECK(scalar(d.get(), "select sum(length(body) + length(id::text) + 2) from fault_copy_in") ==
        std::to_string(rows * 1024));
  MESSAGE(mib << " MiB COPY in through pgrelay in " << std::chrono::duration_cast<Millis>(took).count()
              << " ms; VmRSS baseline " << baseline << " KiB, peak " << peak << " KiB");
  CHECK(peak - baseline < 32 * 1024);
  exec(d.get(), "drop table fault_copy_in");
  others.check();
}
