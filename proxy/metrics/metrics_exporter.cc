// The metrics endpoint's HTTP server: accept, read one request, answer /metrics, /healthz, /readyz.
#include "proxy/metrics/metrics_exporter.h"

#include <sys/socket.h>

#include <cerrno>

#include <set>
#include <sstream>

#include <prometheus/text_serializer.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>

#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

constexpr size_t kMaxRequestHead = 8 * 1024;
constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr auto kProbeTimeout = std::chrono::seconds(1);

std::string response(int status, const char* reason, const std::string& content_type, const std::string& body,
                     bool head) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + content_type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (!head) out += body;
  return out;
}

// Whether something accepts TCP connections at host:port within kProbeTimeout. Host names are
// not resolved (the pools do that when they connect); Unix socket directories are tried as
// "<dir>/.s.PGSQL.<port>".
awaitable<bool> reachable(asio::any_io_executor ex, const std::string& host, int port) {
  error_code ec;
  if (!host.empty() && host.front() == '/') {
    asio::local::stream_protocol::socket s(ex);
    Watchdog timeout(ex, kProbeTimeout, [&s] { error_code e; s.close(e); });
    co_await s.async_connect(asio::local::stream_protocol::endpoint(host + "/.s.PGSQL." + std::to_string(port)),
                             ec_awaitable(ec));
    co_return !ec;
  }
  auto addr = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) co_return false;
  tcp::socket s(ex);
  Watchdog timeout(ex, kProbeTimeout, [&s] { error_code e; s.close(e); });
  co_await s.async_connect(tcp::endpoint(addr, uint16_t(port)), ec_awaitable(ec));
  co_return !ec;
}

}  // namespace

MetricsExporter::MetricsExporter(asio::any_io_executor ex, Services& services)
    : ex_(ex), services_(services), families_(registry_), analyzer_(registry_), cache_(registry_), replication_(registry_), replicas_(registry_) {}

MetricsExporter::~MetricsExporter() { stop(); }

Result<void> MetricsExporter::listen(const std::string& address, int port) {
  const std::string where = address + ":" + std::to_string(port);
  error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return Error{"", "metrics_listen: \"" + address + "\" is not an IP address"};
  tcp::acceptor acceptor(ex_);
  tcp::endpoint endpoint(addr, uint16_t(port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) {
    // Online restart: the new process binds the port while the old one still listens there.
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"", "metrics_listen: cannot listen on " + where + ": " + ec.message()};
  acceptor_.emplace(std::move(acceptor));
  return {};
}

uint16_t MetricsExporter::port() const {
  error_code ec;
  return acceptor_ ? acceptor_->local_endpoint(ec).port() : 0;
}

void MetricsExporter::start() {
  if (!acceptor_) return;
  log_info("metrics on http://", acceptor_->local_endpoint().address().to_string(), ":", port(), "/metrics");
  asio::co_spawn(ex_, accept_loop(), [](std::exception_ptr e) { log_exception(e, "metrics endpoint"); });
}

void MetricsExporter::stop() {
  error_code ec;
  if (acceptor_) acceptor_->close(ec);
}

std::string MetricsExporter::render_metrics() {
  families_.update(services_);
  analyzer_.update(services_, size_t(services_.config.get()->metrics_top_fingerprints));
  cache_.update(services_);
  replication_.update(services_);
  replicas_.update(services_);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_.Collect());
  return out.str();
}

awaitable<void> MetricsExporter::accept_loop() {
  while (acceptor_ && acceptor_->is_open()) {
    error_code ec;
    tcp::socket socket = co_await acceptor_->async_accept(ec_awaitable(ec));
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) break;
    if (ec) {
      log_warning("metrics endpoint: accept failed: ", ec.message());
      asio::steady_timer pause(ex_, std::chrono::milliseconds(100));
      co_await pause.async_wait(ec_awaitable(ec));
      continue;
    }
    asio::co_spawn(ex_, serve(std::move(socket)), [](std::exception_ptr e) { log_exception(e, "metrics request"); });
  }
}

awaitable<std::optional<std::string>> MetricsExporter::not_ready_reason() {
  if (services_.control && !services_.control->accepting()) co_return "not accepting clients (starting or shutting down)";
  for (const auto& pool : services_.pools.pools()) {
    const auto g = pool->gauges();
    if (g.open - g.login > 0) co_return std::nullopt;   // a pool holds a live server connection
  }
  auto config = services_.config.get();
  std::set<std::pair<std::string, int>> targets;
  for (const auto& [name, entry] : config->databases) targets.insert({entry.host, entry.port});
  if (targets.empty()) co_return "no databases configured";
  for (const auto& [host, port] : targets) {
    const bool ok = co_await reachable(ex_, host, port);
    if (ok) co_return std::nullopt;
  }
  co_return "no backend reachable (tried " + std::to_string(targets.size()) + " host" +
      (targets.size() == 1 ? "" : "s") + ")";
}

awaitable<void> MetricsExporter::serve(tcp::socket socket) {
  Watchdog timeout(ex_, kRequestTimeout, [&socket] { error_code e; socket.close(e); });
  asio::streambuf head(kMaxRequestHead);
  error_code ec;
  co_await asio::async_read_until(socket, head, "\r\n\r\n", ec_awaitable(ec));
  std::string reply;
  if (ec) {
    if (ec != asio::error::not_found) co_return;   // gone or timed out: nothing to answer
    reply = response(431, "Request Header Fields Too Large", "text/plain", "request head too large\n", false);
  } else {
    std::istream in(&head);
    std::string method, target, version;
    in >> method >> target >> version;
    const std::string path = target.substr(0, target.find('?'));
    const bool is_head = method == "HEAD";
    if (method != "GET" && !is_head) {
      reply = response(405, "Method Not Allowed", "text/plain", "use GET\n", false);
    } else if (path == "/metrics") {
      reply = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics(), is_head);
    } else if (path == "/healthz") {
      reply = response(200, "OK", "text/plain", "ok\n", is_head);
    } else if (path == "/readyz") {
      auto why = co_await not_ready_reason();
      reply = why ? response(503, "Service Unavailable", "text/plain", "not ready: " + *why + "\n", is_head)
                  : response(200, "OK", "text/plain", "ready\n", is_head);
    } else {
      reply = response(404, "Not Found", "text/plain", "not found; try /metrics, /healthz or /readyz\n", is_head);
    }
  }
  co_await asio::async_write(socket, asio::buffer(reply), ec_awaitable(ec));
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace pgrelay::proxy
