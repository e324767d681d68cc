// The metrics endpoint: a tiny HTTP/1.1 server on Asio serving /metrics, /healthz and /readyz.
//
// Why not prometheus-cpp's Exposer (civetweb): it serves registries only, so /readyz could not
// answer 503. The exposition format still comes from prometheus-cpp (Registry + TextSerializer,
// through MetricsFamilies). Each request gets its own coroutine on the exporter's executor (the
// App's control thread, never a worker's); one request per connection (Connection: close),
// headers bounded to 8 kB and 5 s.
//
//   GET /metrics  200, Prometheus text format 0.0.4
//   GET /healthz  200 "ok" while the process runs
//   GET /readyz   200 "ready" when the client listeners accept and at least one backend is
//                 reachable (a pool holds a server connection, or a TCP connect to a configured
//                 database's host succeeds within 1 s); 503 with the reason otherwise
//   anything else 404 (405 for methods other than GET and HEAD)
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <prometheus/registry.h>

#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/metrics/analyzer_metrics.h"
#include "proxy/metrics/cache_metrics.h"
#include "proxy/metrics/replica_metrics.h"
#include "proxy/metrics/metrics_families.h"
#include "proxy/metrics/replication_metrics.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class MetricsExporter {
 public:
  // Runs on `ex`; `services` must outlive it.
  MetricsExporter(asio::any_io_executor ex, Services& services);
  ~MetricsExporter();

  // Binds address:port (port 0: any free one). The error names the address.
  Result<void> listen(const std::string& address, int port);
  uint16_t port() const;
  void start();
  void stop();   // closes the listener; requests in flight finish

  // The body of GET /metrics, as it would be served now.
  std::string render_metrics();

 private:
  awaitable<void> accept_loop();
  awaitable<void> serve(tcp::socket socket);
  // Whether /readyz says ready, and why not.
  awaitable<std::optional<std::string>> not_ready_reason();

  asio::any_io_executor ex_;
  Services& services_;
  std::optional<tcp::acceptor> acceptor_;
  prometheus::Registry registry_;
  MetricsFamilies families_;
  AnalyzerMetrics analyzer_;
  CacheMetrics cache_;
  ReplicationMetrics replication_;
  ReplicaMetrics replicas_;
};

}  // namespace pgrelay::proxy
