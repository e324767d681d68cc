// What the pipelining tests share: a pgrelay that pipelines, with its metrics on a port of the
// test's, and one of its counters.
#pragma once

#include <doctest/doctest.h>

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

// Sends a CancelRequest for the query `c` has in progress; its result must be 57014.
inline void cancel_expecting_57014(PGconn* c) {
  PGcancel* cancel = PQgetCancel(c);
  char err[256];
  CHECK(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  REQUIRE(wait_readable(c, std::chrono::seconds(5)));
  Result r(PQgetResult(c));
  REQUIRE(r != nullptr);
  CHECK(PQresultStatus(r.get()) == PGRES_FATAL_ERROR);
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  CHECK(std::string(state ? state : "") == "57014");
  while (Result more{PQgetResult(c)}) {}
}

}  // namespace pgrelay::it
