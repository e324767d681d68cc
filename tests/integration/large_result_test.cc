// Large results stream through pgrelay without growing its memory (backpressure, not buffering).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "harness.h"
#include "rss_sampler.h"

using namespace pgrelay::it;

namespace {

constexpr long kMaxGrowthKib = 16 * 1024;
constexpr long kRows = 1'000'000;          // rows of 1000 bytes: ~1 GiB
const std::string kCopy =
    "copy (select repeat('x', 1000) from generate_series(1, " + std::to_string(kRows) + ")) to stdout";

// RSS once a client has logged in and run a query, so per-worker buffers already exist.
long warm_baseline(PgrelayProcess& relay) {
  Conn warm = connect_ok(relay.conninfo());
  REQUIRE(exec(warm.get(), "select repeat('x', 100000) from generate_series(1, 20)").ok());
  warm.reset();
  std::this_thread::sleep_for(100ms);
  return relay.rss_kib();
}

}  // namespace

TEST_CASE("~1 GiB of COPY TO STDOUT: every byte arrives, RSS stays flat") {
  PgrelayProcess relay;
  long baseline = warm_baseline(relay);
  Conn c = connect_ok(relay.conninfo());

  RssSampler sampler(relay);
  Result start(PQexec(c.get(), kCopy.c_str()));
  REQUIRE(PQresultStatus(start.get()) == PGRES_COPY_OUT);
  long long bytes = 0, rows = 0;
  char* buf = nullptr;
  int n;
  while ((n = PQgetCopyData(c.get(), &buf, 0)) > 0) {
    bytes += n;
    rows++;
    PQfreemem(buf);
  }
  long peak = sampler.stop();
  CHECK(n == -1);
  auto end = to_query_result(c.get(), Result(PQgetResult(c.get())).get());
  CHECK_MESSAGE(end.ok(), end.message);
  CHECK(rows == kRows);
  CHECK(bytes == kRows * 1001);
  MESSAGE("VmRSS baseline " << baseline << " KiB, peak " << peak << " KiB");
  CHECK(peak - baseline < kMaxGrowthKib);
}

TEST_CASE("~1 GiB of DataRows in single-row mode: RSS stays flat") {
  PgrelayProcess relay;
  long baseline = warm_baseline(relay);
  Conn c = connect_ok(relay.conninfo());

  RssSampler sampler(relay);
  REQUIRE(PQsendQuery(c.get(), ("select repeat('y', 1000) from generate_series(1, " + std::to_string(kRows) + ")").c_str()));
  REQUIRE(PQsetSingleRowMode(c.get()) == 1);
  long long rows = 0, bytes = 0;
  bool error = false;
  while (PGresult* raw = PQgetResult(c.get())) {
    Result r(raw);
    if (PQresultStatus(r.get()) == PGRES_SINGLE_TUPLE) {
      rows++;
      bytes += PQgetlength(r.get(), 0, 0);
    } else if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      error = true;
      MESSAGE(std::string(PQresultErrorMessage(r.get())));
    }
  }
  long peak = sampler.stop();
  CHECK_FALSE(error);
  CHECK(rows == kRows);
  CHECK(bytes == kRows * 1000);
  MESSAGE("VmRSS baseline " << baseline << " KiB, peak " << peak << " KiB");
  CHECK(peak - baseline < kMaxGrowthKib);
}

TEST_CASE("a client that stops reading does not make pgrelay buffer the result") {
  PgrelayProcess relay;
  long baseline = warm_baseline(relay);
  Conn bystander = connect_ok(relay.conninfo());

  RawClient slow(relay.port());
  slow.send(startup_packet({{"user", "postgres"}, {"database", "postgres"}}));
  auto login = slow.read_messages_until('Z', 5s);
  REQUIRE((!login.empty() && login.back().type == 'Z'));

  RssSampler sampler(relay);
  slow.send(query_message("copy (select repeat('z', 1000) from generate_series(1, 300000)) to stdout"));
  std::this_thread::sleep_for(2s);  // the server could have produced all 300 MB by now
  CHECK(scalar(bystander.get(), "select 'not blocked'") == "not blocked");
  long peak_while_stalled = sampler.stop();
  MESSAGE("VmRSS baseline " << baseline << " KiB, peak while the client stalled " << peak_while_stalled << " KiB");
  CHECK(peak_while_stalled - baseline < kMaxGrowthKib);

  // Now drain it: every row must still arrive, intact.
  long long copy_bytes = 0;
  bool complete = false;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!complete && std::chrono::steady_clock::now() < deadline) {
    for (const auto& m : slow.read_messages_until('Z', 5s)) {
      if (m.type == 'd') copy_bytes += static_cast<long long>(m.payload.size());
      if (m.type == 'E') FAIL("error while draining: " << parse_error(m)->message);
      if (m.type == 'Z') complete = true;
    }
  }
  CHECK(complete);
  CHECK(copy_bytes == 300000LL * 1001);
}
