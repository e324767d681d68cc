// The run of cache_differential_test.cc: its clients (each through pgrelay and on a direct
// reference connection), the operations that need two of them at once (races, a procedure's
// commit window), and the failure report.
#pragma once

#include "cache_differential_util.h"

namespace pgrelay::it::diff {

inline std::string log_tail(const std::string& log, size_t lines);

using Values = std::vector<std::vector<std::string>>;   // per $n of a template, the values it takes

inline Values ids(int lo, int hi) {
  std::vector<std::string> v;
  for (int i = lo; i <= hi; ++i) v.push_back(std::to_string(i));
  return {v};
}

// A read of the random mix: its text, the values of its $n, how often, how it is compared.
struct Template {
  const char* sql;
  Values values;
  int weight = 1;
  Check check = Check::kFull;
};

// Writes, through pgrelay only. kOwner: Alice only (Bob may not). kAlone: never inside an
// explicit transaction, whose locks would block the other clients' reads. kDdl: afterwards every
// client drops its prepared statements (Runner::deallocate_all). kHidden: it writes through a
// view, out of sight of the statement's text.
enum : unsigned { kOwner = 1, kAlone = 2, kDdl = 4, kHidden = 8 };
struct Write {
  const char* sql;
  Values values;
  int weight = 1;
  unsigned flags = 0;
};

// A slow cacheable read and a write of what it reads, for two clients in flight at once.
struct Race {
  const char* read;
  const char* write;
  Values values;   // the write's
};

// Slow cacheable reads (milliseconds: cross joins; generate_series has STABLE overloads) and
// writes of what they read, for two clients in flight at once.
inline const std::vector<Race> kRaces = {
    {"SELECT sum(a.stock), count(*) FROM products a, products b, products c", "UPDATE products SET stock = stock + 1 WHERE id = $1",
     ids(1, 40)},
    {"SELECT count(*), max(e.id) FROM (SELECT id FROM events WHERE region = 'eu' ORDER BY id LIMIT 20) e, products b, products c",
     "INSERT INTO events_eu VALUES ($1::int, 'eu', '2024-07-07 07:00:00+00', 'race')", ids(1, 60)},
    {"SELECT max(d.v), count(*) FROM dup d, products b, products c, products x WHERE x.id <= 4",
     "UPDATE dup SET v = v || 'r' WHERE id = $1", ids(1, 6)},
    {"SELECT count(*), sum(o.amount) FROM customer_orders o, products b, products c WHERE c.id <= 10",
     "UPDATE orders SET amount = amount + 1 WHERE id = $1", ids(1, 60)},
};

// State that pins a client to its server connection (so pgrelay never answers it from the
// cache), made outside a transaction and mirrored on its reference, with what undoes it a few
// operations later. Alice may become Bob. A temporary table named like the materialized view
// comes first in the search_path; only reads name tier_totals, so both sessions' copies stay alike.
inline const std::vector<std::pair<const char*, const char*>> kPins = {
    {"SET ROLE cache_diff_bob", "RESET ROLE"},
    {"SELECT set_config('role', 'cache_diff_bob', false)", "RESET ROLE"},
    {"CREATE TEMP TABLE IF NOT EXISTS tier_totals AS SELECT 'temp'::text AS tier, 0::bigint AS n, 0::numeric AS total", "DISCARD TEMP"},
};

// Settings a client changes (mirrored on its reference connection once they hold).
inline const std::vector<std::pair<std::string, std::vector<std::string>>> kSettings = {
    {"TimeZone", {"UTC", "Asia/Tokyo", "America/New_York"}},
    {"DateStyle", {"ISO, MDY", "SQL, DMY", "German"}},
    {"extra_float_digits", {"0", "1", "3"}},
    {"search_path", {"\"$user\", public", "s2, public", "public"}},
    {"client_encoding", {"UTF8", "LATIN1"}},
};

// PGRELAY_DIFF_DIRECT: every instance listens to `database`'s logical replication, through a
// second entry for it (the listener logs in as its REPLICATION role; tables are shared by the
// server database's identity, so the clients' entry sees the listener's bumps).
inline void listen_to_replication(PGconn* direct, RelayConfig& config, const char* database) {
  // The listener's publication is FOR ALL TABLES: a table without a primary key needs a replica
  // identity before it may be updated, the tables the random DDL makes too (an event trigger).
  REQUIRE(exec(direct, "DO $$DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS t FROM pg_class c "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname "
                             "NOT IN ('pg_catalog', 'information_schema') AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE "
                             "i.indrelid = c.oid AND i.indisprimary) LOOP EXECUTE format('ALTER TABLE %s REPLICA IDENTITY "
                             "FULL', r.t); END LOOP; END$$; "
                             "CREATE FUNCTION full_identity() RETURNS event_trigger LANGUAGE plpgsql AS $$DECLARE r record; "
                             "BEGIN FOR r IN SELECT objid::regclass AS t FROM pg_event_trigger_ddl_commands() WHERE "
                             "object_type = 'table' LOOP EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', r.t); "
                             "END LOOP; END$$; CREATE EVENT TRIGGER full_identity ON ddl_command_end WHEN TAG IN "
                             "('CREATE TABLE', 'CREATE TABLE AS') EXECUTE FUNCTION full_identity()").ok());
  config.add_database("cache_diff_listener", std::string("dbname = \"") + database +
                                                 "\"\nuser = \"postgres\"\n[databases.cache_diff_listener.cache]\nreplication = true\n");
}

// A client through pgrelay and its reference: a direct connection with the same role and settings.
struct Client {
  std::string role;
  std::string startup;    // conninfo extra, for both connections
  std::string settings;   // SETs run on both connections first
  Session relay, reference;
};

// What every operation of a run shares: the clients, the trace, and the failure report.
struct Runner {
  uint64_t seed = 0;
  int steps = 0, step = 0;
  PgrelayProcess* relay = nullptr;
  std::vector<Client> clients;
  Trace trace{12};
  std::mt19937_64 rng;
  size_t compared = 0, raced = 0;
  // Writes made straight on PostgreSQL (PGRELAY_DIFF_DIRECT): until `direct_until`, a read may
  // lag them (the replication listener's bound); how many reads did, and the longest lag.
  std::chrono::steady_clock::time_point direct_until{};
  size_t lagged = 0;
  std::chrono::steady_clock::duration longest_lag{};

  size_t below(size_t n) { return static_cast<size_t>(std::uniform_int_distribution<uint64_t>(0, n - 1)(rng)); }
  bool percent(int p) { return static_cast<int>(below(100)) < p; }
  Protocol pick_protocol(int extended_percent) {
    if (!percent(extended_percent)) return Protocol::kSimple;
    return std::array{Protocol::kExtendedText, Protocol::kExtendedBinary, Protocol::kPrepared}[below(3)];
  }
  Statement instantiate(const char* sql, const Values& values, Protocol p) {
    Statement s{sql, {}, p};
    for (const auto& choices : values) s.params.push_back(choices[below(choices.size())]);
    return s;
  }

  // Ends the test case with everything needed to replay and read the mismatch.
  void fail(size_t client, const Statement& s, const std::string& why, const Outcome& got, const Outcome& want) {
    FAIL("cache differential mismatch: " << why << "\n  replay: PGRELAY_DIFF_SEED=" << seed << " PGRELAY_DIFF_STEPS=" << steps
                                         << "\n  step " << step << ", client " << client << " (" << clients[client].role << ")"
                                         << "\n  sql: " << s.shown() << "\n  pgrelay:    " << describe(got)
                                         << "\n  postgresql: " << describe(want) << "\n  last operations:\n"
                                         << trace.str() << "  pgrelay " << std::string(relay->running() ? "running" : "EXITED")
                                         << ", its log ends:\n" << log_tail(relay->log(), 15));
  }
  void note(const std::string& line) { trace.add("#" + std::to_string(step) + " " + line); }
  // Through pgrelay, traced.
  Outcome relayed(size_t client, const Statement& s) {
    Outcome o = run(clients[client].relay, s);
    note("c" + std::to_string(client) + ": " + s.shown() + " -> " + brief(o));
    return o;
  }
  // Through pgrelay, then the same on the reference: the answers must agree. Whether it succeeded.
  // Within `direct_until`, a read that disagrees is asked again until it agrees or that passes.
  bool compare(size_t client, const Statement& s, bool ordered, Check check) {
    const auto started = std::chrono::steady_clock::now();
    for (bool again = false;; again = true) {
      const Outcome got = relayed(client, s);
      const Outcome want = run(clients[client].reference, s);
      auto why = difference(got, want, ordered, check);
      if (!why.empty() && std::chrono::steady_clock::now() < direct_until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      ++compared;
      if (!why.empty()) fail(client, s, why + (again ? " (past the staleness bound of a direct write)" : ""), got, want);
      if (again) {
        ++lagged;
        longest_lag = std::max(longest_lag, std::chrono::steady_clock::now() - started);
      }
      return got.ok();
    }
  }

  // A transaction prepared for two-phase commit shows nothing until COMMIT PREPARED, which any
  // session may run and which names no table. Where the server has max_prepared_transactions = 0
  // the first try turns `two_phase` off.
  bool two_phase = true;
  void prepared_commit(size_t reader, size_t writer, const std::string& id) {
    const Statement read{"SELECT stock FROM products WHERE id = $1", {id}, Protocol::kSimple};
    const std::string gid = "'cache_diff_" + std::to_string(step) + "'";
    (void)relayed(writer, {"BEGIN", {}, Protocol::kSimple});
    (void)relayed(writer, {"UPDATE products SET stock = stock + 1000 WHERE id = $1", {id}, Protocol::kSimple});
    const Outcome prepared = relayed(writer, {"PREPARE TRANSACTION " + gid, {}, Protocol::kSimple});
    if (prepared.command != "PREPARE TRANSACTION") {   // disabled (an error), or the UPDATE failed (ROLLBACK)
      if (!prepared.ok()) two_phase = false;
      (void)relayed(writer, {"ROLLBACK", {}, Protocol::kSimple});
      return;
    }
    // Compared after COMMIT PREPARED: a prepared transaction left behind would keep the database.
    std::vector<std::pair<Outcome, Outcome>> window;
    for (int i = 0; i < 3; ++i) window.emplace_back(relayed(reader, read), run(clients[reader].reference, read));
    const Outcome committed = relayed(writer, {"COMMIT PREPARED " + gid, {}, Protocol::kSimple});   // its own role may
    REQUIRE_MESSAGE(committed.ok(), describe(committed));
    for (const auto& [got, want] : window) {
      if (auto why = difference(got, want, false, Check::kFull); !why.empty()) fail(reader, read, why, got, want);
    }
    compare(reader, read, false, Check::kFull);
  }

  // After DDL every client drops its prepared statements (a driver whose statement cache saw the
  // schema change would), so both sides parse them again under the new catalog: a statement kept
  // across a RENAME resolves as it did at its Parse, and pgrelay parses its shared statements
  // again after DDL while a pinned client keeps its own.
  void deallocate_all() {
    for (Client& c : clients) {
      for (Session* session : {&c.relay, &c.reference}) {
        const Outcome o = run(*session, {"DEALLOCATE ALL", {}, Protocol::kSimple});
        REQUIRE_MESSAGE(o.ok(), describe(o));
        session->prepared.clear();
      }
    }
  }

  // A statement that changes the session (mirrored on the reference, compared); a temporary
  // table changes what names resolve to, so prepared statements go too.
  void session_statement(size_t client, const char* sql) {
    compare(client, {sql, {}, Protocol::kSimple}, false, Check::kFull);
    deallocate_all();
  }

  // Clients a and b at once (no transaction open): a slow read, and either a write of its table
  // or the same read (pgrelay's single flight may join the fill in progress). The racing read
  // may see the state before or after the write; the next read must see the write (a fill that
  // raced it must not be kept).
  void race(const Race& r, size_t a, size_t b, bool writes) {
    const Statement read{r.read, {}, percent(70) ? Protocol::kSimple : Protocol::kExtendedText};
    const Statement other = writes ? instantiate(r.write, r.values, Protocol::kSimple) : read;
    // First the read (its catalog facts come in after it), then a write (whatever it stored is
    // stale), so the racing read misses and fills.
    compare(a, read, false, Check::kFull);
    (void)relayed(b, instantiate(r.write, r.values, Protocol::kSimple));
    const Outcome before = run(clients[a].reference, read);
    send(clients[a].relay, read);
    send(clients[b].relay, other);
    const Outcome got_a = receive(clients[a].relay), got_b = receive(clients[b].relay);
    note("race c" + std::to_string(a) + ": " + read.shown() + " -> " + brief(got_a) + " | c" + std::to_string(b) + ": " + other.shown() +
         " -> " + brief(got_b));
    const Outcome after = run(clients[a].reference, read);
    ++raced;
    if (!difference(got_a, before, false, Check::kFull).empty() && !difference(got_a, after, false, Check::kFull).empty()) {
      fail(a, read, "a racing read matches neither the state before nor after (before: " + describe(before) + ")", got_a, after);
    }
    if (!writes) {
      const Outcome want_b = run(clients[b].reference, read);
      if (auto why = difference(got_b, want_b, false, Check::kFull); !why.empty()) fail(b, read, why, got_b, want_b);
    }
    compare(a, read, false, Check::kFull);
  }

  // A procedure (or DO block) on `writer` that commits a write and runs on for a while: from its
  // COMMIT on, every session reads the write, though the statement has not ended. The reader's
  // answer was in the cache before.
  void commit_window(size_t reader, size_t writer, const std::string& id, bool use_do) {
    const Statement read{"SELECT stock FROM products WHERE id = $1", {id}, Protocol::kSimple};
    for (int i = 0; i < 3; ++i) compare(reader, read, false, Check::kFull);
    const Outcome before = run(clients[reader].reference, read);
    const Statement call = use_do ? Statement{"DO $$BEGIN UPDATE products SET stock = stock + 100 WHERE id = " + id +
                                                  "; COMMIT; PERFORM pg_sleep(0.2); END$$",
                                              {}, Protocol::kSimple}
                                  : Statement{"CALL bump_and_wait($1)", {id}, Protocol::kSimple};
    PGconn* w = clients[writer].relay.conn.get();
    send(clients[writer].relay, call);
    // Until PostgreSQL shows the commit, or the statement has ended (it wrote nothing).
    for (const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5); std::chrono::steady_clock::now() < until;) {
      if (!difference(run(clients[reader].reference, read), before, false, Check::kFull).empty()) break;
      if (PQconsumeInput(w) == 0 || !PQisBusy(w)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    note("c" + std::to_string(writer) + " sent " + call.shown() + " (running)");
    compare(reader, read, false, Check::kFull);
    note("c" + std::to_string(writer) + ": " + call.shown() + " -> " + brief(receive(clients[writer].relay)));
  }
};

// SHOW CACHE from pgrelay's console as name=value pairs, or "" where it does not answer.
inline std::string show_cache(const std::string& console_conninfo) {
  auto console = connect(console_conninfo);
  if (PQstatus(console.get()) != CONNECTION_OK) return "";
  const Outcome stats = to_outcome(console.get(), PQexec(console.get(), "SHOW CACHE"));
  std::string shown;
  for (size_t j = 0; stats.rows.size() == 1 && j < stats.columns.size(); ++j) {
    shown += " " + stats.columns[j].substr(0, stats.columns[j].find(':')) + "=" + stats.rows[0][j].value_or("NULL");
  }
  return shown;
}

// One counter of show_cache()'s text ("hits", ...), or -1.
inline int64_t shown_stat(const std::string& shown, const std::string& name) {
  const size_t at = shown.find(" " + name + "=");
  return at == std::string::npos ? -1 : std::stoll(shown.substr(at + name.size() + 2));
}

// Until every instance's replication listener streams (SHOW REPLICATION's state).
inline void wait_streaming(const std::vector<std::string>& consoles) {
  for (const std::string& conninfo : consoles) {
    auto console = connect(conninfo);
    std::string state;
    for (int i = 0; i < 400 && state != "streaming"; ++i) {
      if (i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const Outcome o = to_outcome(console.get(), PQexec(console.get(), "SHOW REPLICATION"));
      for (size_t j = 0; o.rows.size() == 1 && j < o.columns.size(); ++j) {
        if (o.columns[j].substr(0, o.columns[j].find(':')) == "state") state = o.rows[0][j].value_or("");
      }
    }
    REQUIRE_MESSAGE(state == "streaming", "the replication listener of " << conninfo << " is " << state);
  }
}

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

inline std::string log_tail(const std::string& log, size_t lines) {
  size_t at = log.size();
  for (size_t n = 0; n <= lines && at != std::string::npos && at > 0; ++n) at = log.rfind('\n', at - 1);
  return at == std::string::npos ? log : log.substr(at + 1);
}

}  // namespace pgrelay::it::diff
