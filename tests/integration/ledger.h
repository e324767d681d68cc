// The ledger of the fault-injection tests: clients write entries through pgrelay while something
// breaks, each remembering what it was told about every entry; afterwards the table, read
// straight from PostgreSQL, must hold every entry whose COMMIT succeeded, none whose transaction
// failed before its COMMIT was sent, and no entry twice. Its sum is checked against the same.
//
// Each entry is one transaction of three round trips (BEGIN, INSERT, COMMIT), so a fault can
// land before, inside or at the end of a transaction. Every round trip has a deadline: a client
// still waiting when it passes has hung, which is counted (and is always a failure).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace pgrelay::it {

// What a client was told about one transaction.
enum class Outcome { kCommitted, kFailed, kUnknown };

// One error a writer saw, for the test to judge (e.g. only shutdown's errors during a SIGTERM).
struct LedgerError {
  std::chrono::steady_clock::time_point at;
  std::string step;                  // "connect", "begin", "insert", "commit"
  std::string sqlstate;              // "" when the connection broke without an ErrorResponse
  std::string message;
};

// The first of `errors` as "step: sqlstate message", or "" when there is none. For assertion
// messages, which doctest also prints when the assertion passes (-s) or a signal arrives.
std::string first_error(const std::vector<LedgerError>& errors);

struct LedgerCheck {
  long committed = 0, failed = 0, unknown = 0;   // as the clients were told
  long rows = 0;                                 // in the table
  long lost = 0;                                 // committed, not in the table
  long phantom = 0;                              // in the table though its transaction failed, or never written
  long duplicated = 0;                           // ids in the table more than once
  long hangs = 0;                                // round trips that missed their deadline
  long long sum = 0, sum_committed = 0, sum_unknown = 0;
  bool ok() const {
    return lost == 0 && phantom == 0 && duplicated == 0 && hangs == 0 && sum >= sum_committed &&
           sum <= sum_committed + sum_unknown;
  }
  std::string describe() const;
};

class Ledger {
 public:
  // Creates (or empties) the table `name` through `direct` (a conninfo straight to PostgreSQL).
  Ledger(std::string direct, std::string name = "ledger");
  ~Ledger();                                     // stops the writers

  // Starts `clients` writers through `conninfo`, each looping over transactions until stop(); a
  // writer whose connection broke reconnects. `deadline` bounds each round trip.
  void start(const std::string& conninfo, int clients, Millis deadline = 30s);
  void stop();
  // Transactions the writers were told committed so far (any thread).
  long committed() const { return committed_; }
  std::vector<LedgerError> errors() const;
  // Reads the table straight from PostgreSQL and compares it with what the writers were told.
  // Call after stop().
  LedgerCheck check() const;
  // Records an outcome for entries written by a test itself (e.g. a COPY of many entries).
  void record(long id, int amount, Outcome outcome);
  long next_id() { return next_id_++; }
  const std::string& table() const { return name_; }

 private:
  void writer(std::string conninfo, int client, Millis deadline);
  void note_error(std::string step, const QueryResult& r);
  std::string direct_;
  std::string name_;
  std::atomic<bool> stopping_{false};
  std::atomic<long> next_id_{1};
  std::atomic<long> committed_{0};
  std::atomic<long> hangs_{0};
  mutable std::mutex mu_;
  std::map<long, std::pair<int, Outcome>> told_;   // id -> amount, outcome
  std::vector<LedgerError> errors_;
  std::vector<std::thread> threads_;
};

// Runs `sql` with a deadline: the result (the first error when there are several), or `hung`
// set when no answer came in time (the connection is then unusable).
QueryResult exec_deadline(PGconn* c, const std::string& sql, Millis deadline, bool& hung);

}  // namespace pgrelay::it
