// What the pipelining tests share: a pgrelay that pipelines, with its metrics on a port of the
// test's, and one of its counters.
#pragma once

#include <regex>
#include <string>

#include "harness.h"

namespace pgrelay::it {

// A pgrelay pipelining in transaction mode, with its metrics on `metrics_port`.
inline RelayConfig pipelined(int pool_size, int metrics_port) {
  return RelayConfig()
      .pool("transaction", pool_size)
      .set("pipelining", "true")
      .set("metrics_listen", "\"127.0.0.1:" + std::to_string(metrics_port) + "\"");
}

// A counter of pgrelay's /metrics (0 when absent).
inline double metric(int metrics_port, const std::string& name) {
  const std::string body = http_get(metrics_port, "/metrics").body;
  std::smatch m;
  if (!std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+]+)"))) return 0;
  return std::stod(m[1]);
}

// PostgreSQL's client backends of `application_name`, counted straight on the server.
inline int backends_of(const std::string& application_name) {
  Conn direct = connect_ok(direct_conninfo());
  return std::stoi(scalar(direct.get(), "select count(*) from pg_stat_activity where backend_type = 'client backend' "
                                        "and application_name = '" + application_name + "'"));
}

}  // namespace pgrelay::it
