// Helpers of cache_differential_test.cc: the database it runs against; running one statement the
// way the test sends it (simple Query, extended with text or binary results, a named prepared
// statement); the whole answer it got; comparing two answers; the failure report with its trace.
#pragma once

#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace pgrelay::it::diff {

// ---- the database the run uses (cache_differential_test.cc's templates name its objects) -----

constexpr const char* kDatabase = "cache_diff_it";
constexpr const char* kAlice = "cache_diff_alice";   // owns everything; a schema has her name
constexpr const char* kBob = "cache_diff_bob";       // granted DML only

// Run as postgres. Tables are Alice's (REFRESH and ALTER need the owner); the schema named after
// her catches `"$user"` in the default search_path, so her unqualified `dup` is not Bob's.
const char* kSchema = R"SQL(
SET ROLE cache_diff_alice;
SET search_path = public;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, tier text NOT NULL, balance numeric(12,2) NOT NULL,
                        score float8, created timestamptz NOT NULL, note text);
INSERT INTO customers SELECT g, 'cust' || g, (ARRAY['gold', 'silver', 'bronze'])[1 + g % 3], (g * 37 % 1000) / 7.0, g / 3.0,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 day 3 hours', CASE WHEN g % 4 <> 0 THEN 'café ' || g END
  FROM generate_series(1, 30) g;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers ON DELETE CASCADE,
                     amount numeric(10,2) NOT NULL, placed timestamptz NOT NULL, status text);
INSERT INTO orders SELECT g, 1 + g % 30, (g * 13 % 500) / 4.0, timestamptz '2024-03-01 10:00:00+00' + g * interval '5 hours',
       (ARRAY['new', 'paid', 'shipped', NULL])[1 + g % 4] FROM generate_series(1, 60) g;
CREATE TABLE "OrderStats" (k text PRIMARY KEY, n int NOT NULL);
INSERT INTO "OrderStats" VALUES ('all', 60), ('other', 0);
CREATE FUNCTION count_order() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN UPDATE "OrderStats" SET n = n + 1 WHERE k = 'all'; RETURN NULL; END$$;
CREATE TRIGGER orders_count AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION count_order();
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), stock int NOT NULL, weight float8,
                       updated timestamptz, tag text);
INSERT INTO products SELECT g, 'prod' || g, g * 1.25, g * 3 % 17, g * 0.1, timestamptz '2024-02-02 02:02:02.5+00' + g * interval '7 hours',
       CASE WHEN g % 3 <> 0 THEN 'tag' || g % 5 END FROM generate_series(1, 40) g;
UPDATE products SET tag = '日本' WHERE id = 40;   -- no LATIN1 for it: an error for such clients
CREATE TABLE events (id int NOT NULL, region text NOT NULL, ts timestamptz NOT NULL, payload text) PARTITION BY LIST (region);
CREATE TABLE events_eu PARTITION OF events FOR VALUES IN ('eu');
CREATE TABLE events_us PARTITION OF events FOR VALUES IN ('us');
INSERT INTO events SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, timestamptz '2024-04-01 00:00:00+00' + g * interval '90 minutes',
       'p' || g FROM generate_series(1, 40) g;
CREATE VIEW customer_orders AS
  SELECT c.id AS customer_id, c.name, o.id AS order_id, o.amount, o.status FROM customers c JOIN orders o ON o.customer_id = c.id;
CREATE MATERIALIZED VIEW tier_totals AS SELECT tier, count(*) AS n, sum(balance) AS total FROM customers GROUP BY tier;
CREATE TABLE secrets (id int PRIMARY KEY, owner name NOT NULL DEFAULT current_user, secret text);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON secrets USING (owner = current_user);
CREATE SCHEMA s2;
CREATE SCHEMA cache_diff_alice;
CREATE TABLE dup (id int PRIMARY KEY, v text);
CREATE TABLE s2.dup (id int PRIMARY KEY, v text);
CREATE TABLE cache_diff_alice.dup (id int PRIMARY KEY, v text);
INSERT INTO dup SELECT g, 'public' || g FROM generate_series(1, 6) g;
INSERT INTO s2.dup SELECT g, 's2-' || g FROM generate_series(1, 6) g;
INSERT INTO cache_diff_alice.dup SELECT g, 'alice' || g FROM generate_series(1, 6) g;
CREATE FUNCTION price_band(numeric) RETURNS text IMMUTABLE LANGUAGE sql
  AS $$SELECT CASE WHEN $1 < 10 THEN 'low' WHEN $1 < 30 THEN 'mid' ELSE 'high' END$$;
CREATE FUNCTION touch_product(int) RETURNS int VOLATILE LANGUAGE sql
  AS $$UPDATE products SET stock = stock + 1 WHERE id = $1 RETURNING stock$$;
CREATE FUNCTION noisy(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'noisy %', $1; RETURN $1 * 2; END$$;
-- Writes hidden where a statement's text does not show them: reading this view writes products,
-- and this procedure commits before it returns.
CREATE VIEW product_touch AS SELECT touch_product(1) AS stock;
CREATE PROCEDURE bump_and_wait(int) LANGUAGE plpgsql
  AS $$BEGIN UPDATE products SET stock = stock + 100 WHERE id = $1; COMMIT; PERFORM pg_sleep(0.2); END$$;
CREATE TABLE probe (id int PRIMARY KEY, v text);
INSERT INTO probe VALUES (1, 'original');
GRANT USAGE ON SCHEMA s2 TO cache_diff_bob;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public, s2 TO cache_diff_bob;
RESET ROLE;
GRANT cache_diff_bob TO cache_diff_alice;   -- Alice may SET ROLE to Bob
ALTER DATABASE cache_diff_it SET jit = off;   -- compiling a plan costs more than these queries run
INSERT INTO secrets SELECT g, CASE WHEN g % 2 = 0 THEN 'cache_diff_alice' ELSE 'cache_diff_bob' END, 'secret' || g
  FROM generate_series(1, 10) g;
ANALYZE;
)SQL";

// ---- running statements ----------------------------------------------------------------------

// kPrepared: a named protocol-level statement (PQprepare once per connection, then
// PQexecPrepared), as drivers with statement caches run their queries.
enum class Protocol { kSimple, kExtendedText, kExtendedBinary, kPrepared };

inline const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kSimple: return "simple";
    case Protocol::kExtendedText: return "extended/text";
    case Protocol::kExtendedBinary: return "extended/binary";
    case Protocol::kPrepared: return "prepared";
  }
  return "?";
}

inline std::string quote_literal(const std::string& v) {
  std::string out = "'";
  for (char ch : v) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

// The text a simple Query sends: $n replaced by a quoted literal, which PostgreSQL types from the
// context as it types a parameter ($9 at most: $1 would also match $10).
inline std::string inline_params(std::string sql, const std::vector<std::string>& params) {
  for (size_t i = params.size(); i-- > 0;) {
    const std::string mark = "$" + std::to_string(i + 1);
    for (size_t at = sql.find(mark); at != std::string::npos; at = sql.find(mark, at)) {
      const std::string literal = quote_literal(params[i]);
      sql.replace(at, mark.size(), literal);
      at += literal.size();
    }
  }
  return sql;
}

struct Statement {
  std::string sql;                   // with $1..$n
  std::vector<std::string> params;
  Protocol protocol = Protocol::kSimple;
  std::string shown() const {
    if (protocol == Protocol::kSimple) return inline_params(sql, params);
    return sql + " [" + protocol_name(protocol) + " params " + join_params() + "]";
  }
  std::string join_params() const {
    std::string s;
    for (const auto& p : params) s += (s.empty() ? "" : ", ") + quote_literal(p);
    return s;
  }
};

// Everything of an answer a client can see: status, error code, command tag, the columns (name,
// type, format), every value as bytes, and the notices that came with it.
struct Outcome {
  ExecStatusType status = PGRES_FATAL_ERROR;
  std::string sqlstate, message, command;
  std::vector<std::string> columns;
  std::vector<Row> rows;
  std::vector<std::string> notices;
  bool ok() const { return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK; }
};

// One connection as the test drives it. Not movable once open: libpq holds its address.
struct Session {
  Conn conn;
  std::set<std::string> prepared;        // protocol-level statement names it has
  std::vector<std::string> notices;      // of the statement running
  void open(const std::string& conninfo) {
    conn = connect_ok(conninfo);
    PQsetNoticeReceiver(conn.get(), &Session::receive, this);
  }
  static void receive(void* self, const PGresult* r) {
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char* message = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    static_cast<Session*>(self)->notices.push_back(std::string(severity ? severity : "") + ": " + (message ? message : ""));
  }
};

inline Outcome to_outcome(PGconn* c, PGresult* r);

inline Outcome run_once(Session& session, const Statement& s) {
  PGconn* c = session.conn.get();
  std::vector<const char*> values;
  for (const auto& p : s.params) values.push_back(p.c_str());
  const int n = static_cast<int>(values.size());
  if (s.protocol == Protocol::kSimple) return to_outcome(c, PQexec(c, inline_params(s.sql, s.params).c_str()));
  if (s.protocol != Protocol::kPrepared) {
    return to_outcome(c, PQexecParams(c, s.sql.c_str(), n, nullptr, values.data(), nullptr, nullptr,
                                      s.protocol == Protocol::kExtendedBinary ? 1 : 0));
  }
  const std::string name = "diff_" + std::to_string(std::hash<std::string>{}(s.sql));
  for (int attempt = 0;; ++attempt) {
    if (!session.prepared.contains(name)) {
      Outcome p = to_outcome(c, PQprepare(c, name.c_str(), s.sql.c_str(), n, nullptr));
      if (!p.ok()) return p;
      session.prepared.insert(name);
    }
    Outcome o = to_outcome(c, PQexecPrepared(c, name.c_str(), n, values.data(), nullptr, nullptr, 0));
    // DDL changed the result's columns: PostgreSQL refuses the old statement ("cached plan must
    // not change result type") where pgrelay prepares it again; a driver would too.
    if (o.sqlstate != "0A000" || attempt > 0 || PQtransactionStatus(c) != PQTRANS_IDLE) return o;
    PQclear(PQexec(c, ("DEALLOCATE " + name).c_str()));
    session.prepared.erase(name);
  }
}

inline Outcome run(Session& session, const Statement& s) {
  session.notices.clear();
  Outcome o = run_once(session, s);
  o.notices = std::move(session.notices);
  session.notices.clear();
  return o;
}

// Sends without waiting for the answer (simple or extended, not kPrepared), so that two clients
// can be in flight at once; receive() collects it.
inline void send(Session& session, const Statement& s) {
  PGconn* c = session.conn.get();
  session.notices.clear();
  std::vector<const char*> values;
  for (const auto& p : s.params) values.push_back(p.c_str());
  const int sent = s.protocol == Protocol::kSimple
                       ? PQsendQuery(c, inline_params(s.sql, s.params).c_str())
                       : PQsendQueryParams(c, s.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                           nullptr, s.protocol == Protocol::kExtendedBinary ? 1 : 0);
  if (!sent) throw std::runtime_error(std::string("send failed: ") + PQerrorMessage(c));
}

inline Outcome receive(Session& session) {
  PGconn* c = session.conn.get();
  Outcome o;
  o.message = "no result";
  while (PGresult* r = PQgetResult(c)) o = to_outcome(c, r);   // one statement: one result
  o.notices = std::move(session.notices);
  session.notices.clear();
  return o;
}

inline Outcome to_outcome(PGconn* c, PGresult* r) {
  Outcome o;
  if (r == nullptr) {
    o.message = PQerrorMessage(c);
    return o;
  }
  o.status = PQresultStatus(r);
  if (const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE)) o.sqlstate = state;
  if (const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) o.message = m;
  if (!o.ok() && o.message.empty()) o.message = PQerrorMessage(c);   // a lost connection has no fields
  o.command = PQcmdStatus(r);
  for (int j = 0; j < PQnfields(r); ++j) {
    o.columns.push_back(std::string(PQfname(r, j)) + ":" + std::to_string(PQftype(r, j)) + ":" + std::to_string(PQfformat(r, j)));
  }
  o.rows = result_rows(r);
  PQclear(r);
  return o;
}

inline std::string printable(const std::string& v) {
  std::string out;
  for (unsigned char ch : v) {
    if (std::isprint(ch)) {
      out += static_cast<char>(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", ch);
      out += hex;
    }
  }
  return out;
}

inline std::string describe(const Outcome& o, size_t max_rows = 12) {
  std::ostringstream s;
  for (const auto& n : o.notices) s << "(" << n << ") ";
  if (!o.ok()) {
    s << "ERROR " << o.sqlstate << " " << o.message;
    return s.str();
  }
  s << o.command << " [";
  for (size_t j = 0; j < o.columns.size(); ++j) s << (j ? ", " : "") << o.columns[j];
  s << "]";
  for (size_t i = 0; i < o.rows.size() && i < max_rows; ++i) {
    s << "\n      (";
    for (size_t j = 0; j < o.rows[i].size(); ++j) s << (j ? ", " : "") << (o.rows[i][j] ? printable(*o.rows[i][j]) : "NULL");
    s << ")";
  }
  if (o.rows.size() > max_rows) s << "\n      ... " << o.rows.size() - max_rows << " more rows";
  return s.str();
}

enum class Check {
  kFull,    // every value (rows sorted first unless the text orders them)
  kShape,   // status, columns and row count: the values depend on the clock or chance
};

// Why `got` (through pgrelay) differs from `want` (PostgreSQL's own), or "" when it does not.
inline std::string difference(const Outcome& got, const Outcome& want, bool ordered, Check check) {
  if (got.ok() != want.ok()) return "one failed, the other did not";
  if (!got.ok()) return got.sqlstate == want.sqlstate ? "" : "different SQLSTATEs";
  if (got.status != want.status || got.command != want.command) return "different command tags";
  if (got.columns != want.columns) return "different columns";
  if (got.notices != want.notices) return "different notices";
  if (got.rows.size() != want.rows.size()) return "different row counts";
  if (check == Check::kShape) return "";
  if (ordered) return got.rows == want.rows ? "" : "different rows (in order)";
  auto a = got.rows, b = want.rows;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b ? "" : "different rows (sorted)";
}

// The last operations, for a failure report.
class Trace {
 public:
  explicit Trace(size_t keep) : keep_(keep) {}
  void add(std::string line) {
    lines_.push_back(std::move(line));
    if (lines_.size() > keep_) lines_.pop_front();
  }
  std::string str() const {
    std::string s;
    for (const auto& l : lines_) s += "    " + l + "\n";
    return s;
  }

 private:
  size_t keep_;
  std::deque<std::string> lines_;
};

// One line of an outcome for the trace.
inline std::string brief(const Outcome& o) {
  if (!o.ok()) return "ERROR " + o.sqlstate;
  std::string s = o.command;
  if (!o.rows.empty() && !o.rows[0].empty()) s += " first=" + (o.rows[0][0] ? printable(o.rows[0][0]->substr(0, 24)) : "NULL");
  return s;
}

}  // namespace pgrelay::it::diff
