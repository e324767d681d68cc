// Load for the fault-injection tests: pgbench (TPC-B) in a loop through pgrelay until a deadline,
// and the check that TPC-B's balances still agree, i.e. no transaction was half applied or
// applied twice.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace pgrelay::it {

// pgbench -i of scale 1 into `direct_port`'s database `db`; throws on failure.
void pgbench_init(int direct_port, const std::string& db = "postgres");

// Runs pgbench (TPC-B, `clients` clients) against 127.0.0.1:`port`/`db` again and again until
// `duration` has passed: a run whose clients all aborted (the server went away) is followed by
// another. A run that outlives its -T by 30 s has hung.
class PgbenchLoop {
 public:
  PgbenchLoop(int port, const std::string& db, int clients, Millis duration);
  ~PgbenchLoop();
  void join();
  int runs() const { return runs_; }
  int hung_runs() const { return hung_; }
  int failed_runs() const { return failed_; }         // runs that did not exit 0 (hung ones too)
  long transactions() const { return transactions_; }
  const std::string& last_output() const { return last_output_; }

 private:
  std::thread thread_;
  int runs_ = 0, hung_ = 0, failed_ = 0;
  long transactions_ = 0;
  std::string last_output_;
};

// The four TPC-B sums (accounts, tellers, branches, history); equal when every transaction
// was applied whole, once. "" when they agree, else what they are.
std::string tpcb_imbalance(const std::string& direct_conninfo);

}  // namespace pgrelay::it
