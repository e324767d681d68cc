// pgbench in a loop through pgrelay, and TPC-B's balance check.
#include "fault_load.h"

#include <regex>
#include <stdexcept>

namespace pgrelay::it {

void pgbench_init(int direct_port, const std::string& db) {
  auto r = run_command(std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -p " + std::to_string(direct_port) +
                           " -U postgres -i -s 1 -q " + db, 120s);
  if (r.exit_code != 0) throw std::runtime_error("pgbench -i: " + r.output);
}

PgbenchLoop::PgbenchLoop(int port, const std::string& db, int clients, Millis duration) {
  thread_ = std::thread([this, port, db, clients, duration] {
    const auto until = std::chrono::steady_clock::now() + duration;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(until - std::chrono::steady_clock::now());
      if (left.count() < 1) break;
      const std::string cmd = std::string(PGRELAY_IT_PGBENCH) + " -h 127.0.0.1 -p " + std::to_string(port) +
                              " -U postgres -n -c " + std::to_string(clients) + " -j 2 -T " +
                              std::to_string(left.count()) + " " + db;
      auto started = std::chrono::steady_clock::now();
      auto r = run_command(cmd, left + 30s);
      ++runs_;
      if (r.exit_code != 0) ++failed_;
      if (r.exit_code == 124 || r.exit_code == 128 + 9) ++hung_;   // killed by run_command's timeout
      std::smatch m;
      if (std::regex_search(r.output, m, std::regex(R"(number of transactions actually processed: (\d+))")))
        transactions_ += std::stol(m[1]);
      last_output_ = r.output;
      // All clients aborted at once (the server is down): try again shortly.
      if (std::chrono::steady_clock::now() - started < 1s) std::this_thread::sleep_for(200ms);
    }
  });
}

PgbenchLoop::~PgbenchLoop() { join(); }

void PgbenchLoop::join() {
  if (thread_.joinable()) thread_.join();
}

std::string tpcb_imbalance(const std::string& direct_conninfo) {
  Conn d = connect_ok(direct_conninfo);
  auto r = exec(d.get(), "select (select sum(abalance) from pgbench_accounts), (select sum(tbalance) from pgbench_tellers), "
                         "(select sum(bbalance) from pgbench_branches), (select coalesce(sum(delta), 0) from pgbench_history)");
  if (!r.ok()) return "query failed: " + r.message;
  const Row& row = r.rows.at(0);
  if (row[0] == row[1] && row[1] == row[2] && row[2] == row[3]) return "";
  return "accounts " + row[0].value_or("null") + ", tellers " + row[1].value_or("null") + ", branches " +
         row[2].value_or("null") + ", history " + row[3].value_or("null");
}

}  // namespace pgrelay::it
