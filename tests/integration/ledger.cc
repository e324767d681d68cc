// The ledger: writers that remember what they were told, and the check against the table.
#include "ledger.h"

#include <sstream>

namespace pgrelay::it {

QueryResult exec_deadline(PGconn* c, const std::string& sql, Millis deadline, bool& hung) {
  hung = false;
  QueryResult out;
  if (PQsendQuery(c, sql.c_str()) != 1) {
    out.message = PQerrorMessage(c);
    return out;
  }
  auto until = std::chrono::steady_clock::now() + deadline;
  bool have = false;
  for (;;) {
    if (PQconsumeInput(c) != 1) {
      if (!have) out.message = PQerrorMessage(c);
      return out;
    }
    while (PQisBusy(c) == 0) {
      PGresult* r = PQgetResult(c);
      if (r == nullptr) return out;          // every result read
      // The first error: the server's (or pgrelay's) own, not libpq's "connection closed" after it.
      if (!have || (PQresultStatus(r) == PGRES_FATAL_ERROR && out.ok())) out = to_query_result(c, r);
      have = true;
      PQclear(r);
    }
    auto left = std::chrono::duration_cast<Millis>(until - std::chrono::steady_clock::now());
    if (left <= Millis(0) || (!wait_readable(c, left) && std::chrono::steady_clock::now() >= until)) {
      hung = true;
      out.status = PGRES_FATAL_ERROR;
      out.message = "no answer within " + std::to_string(deadline.count()) + " ms to: " + sql;
      return out;
    }
  }
}

std::string first_error(const std::vector<LedgerError>& errors) {
  if (errors.empty()) return "";
  const LedgerError& e = errors.front();
  return e.step + ": " + e.sqlstate + " " + e.message;
}

std::string LedgerCheck::describe() const {
  std::ostringstream s;
  s << "committed " << committed << ", failed " << failed << ", unknown " << unknown << "; rows " << rows
    << ", lost " << lost << ", phantom " << phantom << ", duplicated " << duplicated << ", hangs " << hangs
    << "; sum " << sum << " (committed " << sum_committed << " + up to " << sum_unknown << " unknown)";
  return s.str();
}

Ledger::Ledger(std::string direct, std::string name) : direct_(std::move(direct)), name_(std::move(name)) {
  Conn d = connect_ok(direct_);
  auto r = exec(d.get(), "drop table if exists " + name_ + "; create table " + name_ +
                             " (id bigint not null, client int not null, amount int not null); create index on " +
                             name_ + " (id)");
  if (!r.ok()) throw std::runtime_error("ledger: " + r.message);
}

Ledger::~Ledger() { stop(); }

void Ledger::start(const std::string& conninfo, int clients, Millis deadline) {
  stopping_ = false;
  for (int i = 0; i < clients; ++i) threads_.emplace_back(&Ledger::writer, this, conninfo, i, deadline);
}

void Ledger::stop() {
  stopping_ = true;
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::vector<LedgerError> Ledger::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

void Ledger::record(long id, int amount, Outcome outcome) {
  std::lock_guard lock(mu_);
  told_[id] = {amount, outcome};
  if (outcome == Outcome::kCommitted) ++committed_;
}

void Ledger::note_error(std::string step, const QueryResult& r) {
  std::lock_guard lock(mu_);
  errors_.push_back({std::chrono::steady_clock::now(), std::move(step), r.sqlstate, r.message});
}

void Ledger::writer(std::string conninfo, int client, Millis deadline) {
  Conn c;
  while (!stopping_) {
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
      c = connect(conninfo);
      if (PQstatus(c.get()) != CONNECTION_OK) {
        QueryResult r;
        r.message = PQerrorMessage(c.get());
        note_error("connect", r);
        c.reset();
        std::this_thread::sleep_for(100ms);
        continue;
      }
    }
    const long id = next_id_++;
    const int amount = int(id % 97) + 1;
    bool hung = false;
    auto step = [&](const char* name, const std::string& sql) {
      QueryResult r = exec_deadline(c.get(), sql, deadline, hung);
      if (hung) ++hangs_;
      if (!r.ok()) note_error(name, r);
      return r;
    };
    QueryResult r = step("begin", "begin");
    if (r.ok()) {
      r = step("insert", "insert into " + name_ + " values (" + std::to_string(id) + ", " + std::to_string(client) +
                             ", " + std::to_string(amount) + ")");
    }
    if (!r.ok()) {
      record(id, amount, Outcome::kFailed);   // COMMIT never sent: it must not be there
    } else {
      r = step("commit", "commit");
      // COMMIT of a transaction that failed answers "ROLLBACK" without an error.
      const bool committed = r.ok() && PQstatus(c.get()) == CONNECTION_OK;
      record(id, amount, committed ? Outcome::kCommitted : Outcome::kUnknown);
    }
    if (!r.ok() || hung) {
      // Whatever the error, start afresh: a connection in an unknown state proves nothing.
      c.reset();
      std::this_thread::sleep_for(20ms);
    }
  }
}

LedgerCheck Ledger::check() const {
  LedgerCheck out;
  std::map<long, std::pair<int, Outcome>> told;
  {
    std::lock_guard lock(mu_);
    told = told_;
  }
  Conn d = connect_ok(direct_);
  QueryResult rows = exec(d.get(), "select id, count(*), sum(amount) from " + name_ + " group by id");
  if (!rows.ok()) throw std::runtime_error("ledger check: " + rows.message);
  std::map<long, std::pair<long, long long>> present;   // id -> count, sum
  for (const Row& r : rows.rows) present[std::stol(*r[0])] = {std::stol(*r[1]), std::stoll(*r[2])};
  for (const auto& [id, entry] : told) {
    const auto [amount, outcome] = entry;
    auto it = present.find(id);
    switch (outcome) {
      case Outcome::kCommitted:
        ++out.committed;
        out.sum_committed += amount;
        if (it == present.end()) ++out.lost;
        break;
      case Outcome::kFailed:
        ++out.failed;
        if (it != present.end()) ++out.phantom;
        break;
      case Outcome::kUnknown:
        ++out.unknown;
        out.sum_unknown += amount;
        break;
    }
  }
  for (const auto& [id, count_sum] : present) {
    out.rows += count_sum.first;
    out.sum += count_sum.second;
    if (count_sum.first > 1) ++out.duplicated;
    if (!told.count(id)) ++out.phantom;
  }
  out.hangs = hangs_;
  return out;
}

}  // namespace pgrelay::it
