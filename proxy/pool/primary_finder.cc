// A multi-host primary: which host is the primary now, asked of each by pg_is_in_recovery().
#include "proxy/pool/primary_finder.h"

#include <algorithm>

#include "proxy/base/log.h"

namespace pgrelay::proxy {

namespace {

std::string name_of(const conf::ReplicaEndpoint& e) { return e.host + ":" + std::to_string(e.port); }

}  // namespace

// What the check holds between rounds: how to log in and a connection per host.
struct PrimaryFinder::Checker {
  asio::any_io_executor ex;
  Login login;
  std::function<void(const std::string&)> moved;
  std::vector<std::unique_ptr<ServerConnection>> conns;
  bool none_logged = false;   // "no host is the primary" said once per outage
};

PrimaryFinder::PrimaryFinder(std::string database, std::vector<conf::ReplicaEndpoint> hosts, conf::Duration interval)
    : database_(std::move(database)), hosts_(std::move(hosts)), interval_(interval) {}

PrimaryFinder::~PrimaryFinder() = default;

std::string PrimaryFinder::current_name() const { return name_of(hosts_[current()]); }

ServerTarget PrimaryFinder::target(const ServerTarget& base) const {
  ServerTarget t = base;
  const conf::ReplicaEndpoint& e = hosts_[current()];
  t.host = e.host;
  t.port = e.port;
  return t;
}

void PrimaryFinder::start(const asio::any_io_executor& ex, Login login,
                          std::function<void(const std::string& now)> moved) {
  if (started_.exchange(true) || hosts_.empty()) return;
  auto c = std::make_shared<Checker>();
  c->ex = ex;
  c->login = std::move(login);
  c->moved = std::move(moved);
  c->conns.resize(hosts_.size());
  asio::co_spawn(ex, run(shared_from_this(), c), [db = database_](std::exception_ptr e) {
    log_exception(e, "primary of " + db + ": the check failed");
  });
}

void PrimaryFinder::stop() { stopped_.store(true); }

awaitable<void> PrimaryFinder::run(std::shared_ptr<PrimaryFinder> self, std::shared_ptr<Checker> c) {
  asio::steady_timer timer(c->ex);
  while (!stopped_.load()) {
    const auto began = std::chrono::steady_clock::now();
    const size_t was = current();
    const std::optional<bool> standby = co_await in_recovery(*c, was);
    if (standby != false) {
      // The primary went away or became a standby: the first other host that is not in recovery
      // is the primary now. None: keep the current one (a promotion may be under way).
      std::optional<size_t> found;
      for (size_t k = 1; k < hosts_.size() && !found && !stopped_.load(); ++k) {
        const size_t i = (was + k) % hosts_.size();
        const std::optional<bool> other = co_await in_recovery(*c, i);
        if (other == false) found = i;
      }
      if (found) {
        current_.store(*found, std::memory_order_release);
        moves_.fetch_add(1, std::memory_order_relaxed);
        c->none_logged = false;
        log_warning("primary of ", database_, " moved from ", name_of(hosts_[was]), " to ", name_of(hosts_[*found]),
                    " (", standby.has_value() ? "it is in recovery" : "it does not answer", ")");
        c->moved(name_of(hosts_[*found]));
      } else if (!c->none_logged) {
        c->none_logged = true;
        log_warning("primary of ", database_, ": ", name_of(hosts_[was]),
                    standby.has_value() ? " is in recovery" : " does not answer", " and no other host is a primary; keeping it");
      }
    } else {
      c->none_logged = false;
    }
    timer.expires_at(began + interval_);
    error_code ec;
    co_await timer.async_wait(ec_awaitable(ec));
  }
}

awaitable<std::optional<bool>> PrimaryFinder::in_recovery(Checker& c, size_t i) {
  auto& conn = c.conns[i];
  // A host that stalls fails its check rather than holding up the others for long.
  const auto deadline = std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), 4 * interval_);
  if (!conn) {
    ServerTlsOptions tls{c.login.tls_mode, nullptr};
    if (tls.mode != conf::ServerTlsMode::kDisable && c.login.tls) tls.ctx = c.login.tls->server();
    const ServerTarget target{.host = hosts_[i].host,
                              .port = hosts_[i].port,
                              .dbname = c.login.base.dbname,
                              .user = c.login.base.user,
                              .password = c.login.base.password};
    const auto timeout = std::min<conf::Duration>(c.login.connect_timeout,
                                                  std::chrono::duration_cast<conf::Duration>(deadline));
    auto opened = co_await ServerConnection::open(c.ex, target, timeout, c.login.max_message_size, tls, c.login.tcp);
    if (!opened.ok()) {
      failed_checks_.fetch_add(1, std::memory_order_relaxed);
      co_return std::nullopt;
    }
    conn = std::move(*opened);
  }
  ServerConnection* raw = conn.get();
  Watchdog watchdog(c.ex, deadline, [raw] { raw->close(); });
  auto rows = co_await raw->query_rows("select pg_is_in_recovery()::text", {});
  watchdog.disarm();
  if (!rows.ok() || rows->size() != 1 || rows->front().size() != 1 || !rows->front()[0]) {
    failed_checks_.fetch_add(1, std::memory_order_relaxed);
    conn.reset();
    co_return std::nullopt;
  }
  co_return *rows->front()[0] == "true";
}

}  // namespace pgrelay::proxy
