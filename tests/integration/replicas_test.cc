// Read replicas (docs/replicas.md) against a primary and two streaming replicas started by
// tests/integration/replicas.sh: reads spread over the replicas and writes stay on the primary
// (counted by each server's pg_stat_statements), a writer never reads its own write stale while
// replay is delayed, and a paused replica leaves rotation past max_replica_lag and comes back.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

#include "fault_relay.h"
#include "harness.h"

using namespace pgrelay::it;
using namespace std::chrono_literals;

namespace {

std::string replicas_dir() {
  const char* d = std::getenv("PGRELAY_REPLICAS_DIR");
  if (!d || !*d) throw std::runtime_error("PGRELAY_REPLICAS_DIR is not set (run the tests through ctest)");
  return d;
}

int port_of(const std::string& server) { return std::stoi(read_file(replicas_dir() + "/" + server + "/port")); }

Conn direct(const std::string& server) { return connect_ok(conninfo(port_of(server))); }

// pgrelay in transaction mode in front of the primary, reads routed to both replicas.
RelayConfig routed(const std::string& extra = "") {
  RelayConfig c;
  c.without_databases().pool("transaction", 10).set("admin_users", "[\"postgres\"]");
  c.add_database("postgres", "host = \"127.0.0.1\"\nport = " + std::to_string(port_of("primary")) +
                                 "\nreplicas = [\"postgresql://127.0.0.1:" + std::to_string(port_of("replica1")) +
                                 "\", \"127.0.0.1:" + std::to_string(port_of("replica2")) +
                                 "\"]\nread_routing = \"on\"\nreplica_check_interval = \"100ms\"\n" + extra);
  return c;
}

// SHOW REPLICAS by replica ("127.0.0.1:PORT" or "primary"): state and reads.
struct ReplicaRow {
  std::string state;
  long reads = 0;
  long lag_bytes = 0;
};
std::map<std::string, ReplicaRow> show_replicas(const PgrelayProcess& relay) {
  auto admin = connect_ok(relay.conninfo("pgrelay"));
  auto r = exec(admin.get(), "SHOW REPLICAS");
  REQUIRE(r.ok());
  std::map<std::string, ReplicaRow> out;
  for (const auto& row : r.rows) out[*row[1]] = ReplicaRow{*row[2], std::stol(*row[6]), std::stol(*row[3])};
  return out;
}

std::string name_of(const std::string& server) { return "127.0.0.1:" + std::to_string(port_of(server)); }

// The lag poller starts with the database's first pool: a client logs in.
void first_client(const PgrelayProcess& relay) {
  auto c = connect_ok(relay.conninfo());
  REQUIRE(exec(c.get(), "select 1").ok());
}

// Waits until SHOW REPLICAS says the replica named `name` ("127.0.0.1:PORT") is in `state`.
bool wait_named_state(const PgrelayProcess& relay, const std::string& name, const std::string& state,
                      Millis timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto rows = show_replicas(relay);
    if (rows.count(name) && rows[name].state == state) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

bool wait_state(const PgrelayProcess& relay, const std::string& server, const std::string& state, Millis timeout = 10s) {
  return wait_named_state(relay, name_of(server), state, timeout);
}

long calls(const std::string& server, const std::string& like) {
  auto c = direct(server);
  return std::stol(scalar(c.get(), "select coalesce(sum(calls), 0) from pg_stat_statements where query like '" + like + "'"));
}

void reset_statements() {
  for (const char* s : {"primary", "replica1", "replica2"}) {
    auto c = direct(s);
    REQUIRE(exec(c.get(), "select pg_stat_statements_reset()").ok());
  }
}

void resume_all() {
  for (const char* s : {"replica1", "replica2"}) {
    auto c = direct(s);
    (void)exec(c.get(), "select pg_wal_replay_resume()");
    (void)exec(c.get(), "alter system reset recovery_min_apply_delay");
    (void)exec(c.get(), "select pg_reload_conf()");
  }
}

// Both replicas have replayed everything the primary has written so far.
void wait_caught_up() {
  auto p = direct("primary");
  const std::string lsn = scalar(p.get(), "select pg_current_wal_insert_lsn()");
  for (const char* s : {"replica1", "replica2"}) {
    auto c = direct(s);
    bool caught = false;
    for (int i = 0; i < 600 && !caught; ++i) {
      caught = scalar(c.get(), "select pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn") == "t";
      if (!caught) std::this_thread::sleep_for(50ms);
    }
    REQUIRE(caught);
  }
}

// Replay resumed everywhere, then pgrelay routing reads (with `extra` keys) and both replicas in rotation.
std::unique_ptr<PgrelayProcess> start_routed(const std::string& extra = "") {
  resume_all();
  auto relay = std::make_unique<PgrelayProcess>(routed(extra));
  first_client(*relay);
  REQUIRE(wait_state(*relay, "replica1", "active"));
  REQUIRE(wait_state(*relay, "replica2", "active"));
  return relay;
}

}  // namespace

TEST_CASE("reads spread across the replicas; writes, locking reads and hinted reads go to the primary") {
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  reset_statements();
  auto c = connect_ok(relay.conninfo());
  const int reads = 200;
  for (int i = 0; i < reads; ++i) {
    auto r = exec_params(c.get(), "select value as rr_spread from rr_items where id = $1", {std::to_string(i % 100 + 1)});
    REQUIRE(r.ok());
  }
  for (int i = 0; i < 20; ++i) {
    REQUIRE(exec(c.get(), "update rr_items set value = value + 1 where id = 100").ok());
    REQUIRE(exec(c.get(), "select value as rr_locked from rr_items where id = 99 for update").ok());
    REQUIRE(exec(c.get(), "/* pgrelay:primary */ select value as rr_hinted from rr_items where id = 98").ok());
    REQUIRE(exec(c.get(), "select nextval('rr_seq') as rr_nextval").ok());
  }
  // A function the judgement cannot vouch for (no catalog facts without the query cache) stays
  // on the primary unless a hint sends it to a replica. Read-your-writes: wait out the writes.
  std::this_thread::sleep_for(500ms);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(exec(c.get(), "select count(value) as rr_count from rr_items").ok());
    REQUIRE(exec(c.get(), "/* pgrelay:replica */ select count(value) as rr_count_hinted from rr_items").ok());
  }
  const long on1 = calls("replica1", "%rr_spread%"), on2 = calls("replica2", "%rr_spread%");
  const long on_primary = calls("primary", "%rr_spread%");
  MESSAGE("plain reads: replica1 ", on1, ", replica2 ", on2, ", primary ", on_primary);
  CHECK(on1 + on2 + on_primary == reads);
  CHECK(on1 >= reads / 4);   // the writes send the client's next reads to the primary for a moment
  CHECK(on2 >= reads / 4);
  CHECK(calls("primary", "update rr_items%") == 20);
  for (const char* s : {"replica1", "replica2"}) {
    CHECK(calls(s, "update rr_items%") == 0);
    CHECK(calls(s, "%rr_locked%") == 0);
    CHECK(calls(s, "%rr_hinted%") == 0);
    CHECK(calls(s, "%rr_nextval%") == 0);
  }
  CHECK(calls("primary", "%rr_locked%") == 20);
  CHECK(calls("primary", "%rr_count %") == 10);
  CHECK(calls("replica1", "%rr_count_hinted%") + calls("replica2", "%rr_count_hinted%") == 10);
  auto rows = show_replicas(relay);
  CHECK(rows[name_of("replica1")].reads + rows[name_of("replica2")].reads >= on1 + on2);
}

TEST_CASE("the lag poller starts with the database's first pool, before any client routes reads") {
  resume_all();
  RelayConfig c = routed();
  c.databases += "\n[users.postgres]\nread_routing = \"off\"\n";   // this client never routes
  PgrelayProcess relay(c);
  CHECK(show_replicas(relay).empty());   // no pool yet
  first_client(relay);
  CHECK(wait_state(relay, "replica1", "active"));
  CHECK(wait_state(relay, "replica2", "active"));
}

TEST_CASE("read-your-writes: no stale read for the writer while replay is delayed; other clients read replicas") {
  resume_all();
  for (const char* s : {"replica1", "replica2"}) {
    auto c = direct(s);
    REQUIRE(exec(c.get(), "alter system set recovery_min_apply_delay = '300ms'").ok());
    REQUIRE(exec(c.get(), "select pg_reload_conf()").ok());
  }
  // Lag in time is what the delay makes: a replica stays in rotation however far behind.
  PgrelayProcess relay(routed("max_replica_lag = \"1GB\"\n"));
  first_client(relay);
  REQUIRE(wait_state(relay, "replica1", "active"));
  REQUIRE(wait_state(relay, "replica2", "active"));
  const auto before = show_replicas(relay);
  auto writer = connect_ok(relay.conninfo());
  auto other = connect_ok(relay.conninfo());
  const int pairs = std::getenv("CI") ? 300 : 1000;
  int stale = 0, caught_up_reads = 0;
  for (int i = 1; i <= pairs; ++i) {
    REQUIRE(exec_params(writer.get(), "update rr_items set value = $1 where id = 7", {std::to_string(i)}).ok());
    auto r = exec(writer.get(), "select value from rr_items where id = 7");
    REQUIRE(r.ok());
    if (*r.rows.at(0).at(0) != std::to_string(i)) ++stale;
    REQUIRE(exec(other.get(), "select value from rr_items where id = 8").ok());
    // Now and then the writer waits out the delay: its reads go to a replica again, and must be fresh.
    if (i % 100 == 0) {
      std::this_thread::sleep_for(800ms);
      auto again = exec(writer.get(), "select value from rr_items where id = 7");
      REQUIRE(again.ok());
      if (*again.rows.at(0).at(0) != std::to_string(i)) ++stale;
      ++caught_up_reads;
    }
  }
  resume_all();
  const auto after = show_replicas(relay);
  const long replica_reads = after.at(name_of("replica1")).reads + after.at(name_of("replica2")).reads -
                             before.at(name_of("replica1")).reads - before.at(name_of("replica2")).reads;
  MESSAGE(pairs, " write-then-read pairs: ", stale, " stale; reads on replicas ", replica_reads, ", on the primary ",
          after.at("primary").reads - before.at("primary").reads);
  CHECK(stale == 0);
  // The other client's reads, and the writer's once a replica had caught up with its writes.
  CHECK(replica_reads > pairs + caught_up_reads / 2);
}

TEST_CASE("a paused replica leaves rotation past max_replica_lag and returns after pg_wal_replay_resume()") {
  auto relay_process = start_routed("max_replica_lag = \"64kB\"\n");
  PgrelayProcess& relay = *relay_process;
  auto r1 = direct("replica1");
  REQUIRE(exec(r1.get(), "select pg_wal_replay_pause()").ok());
  auto primary = direct("primary");
  REQUIRE(exec(primary.get(), "create table if not exists rr_fill (id int, pad text)").ok());
  // Well past 64kB of WAL.
  REQUIRE(exec(primary.get(), "insert into rr_fill select g, repeat('x', 200) from generate_series(1, 2000) g").ok());
  CHECK(wait_state(relay, "replica1", "lagging"));
  CHECK(show_replicas(relay)[name_of("replica1")].lag_bytes > 64 * 1024);
  // Meanwhile every read goes to replica2.
  const long r1_reads = show_replicas(relay)[name_of("replica1")].reads;
  auto c = connect_ok(relay.conninfo());
  for (int i = 0; i < 50; ++i) REQUIRE(exec(c.get(), "select value from rr_items where id = 3").ok());
  CHECK(show_replicas(relay)[name_of("replica1")].reads == r1_reads);
  REQUIRE(exec(r1.get(), "select pg_wal_replay_resume()").ok());
  CHECK(wait_state(relay, "replica1", "active"));
  REQUIRE(exec(primary.get(), "drop table rr_fill").ok());
}

TEST_CASE("a replica that dies takes no reads: those not started get no error; it returns when it is back") {
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  auto c = connect_ok(relay.conninfo());
  for (int i = 0; i < 20; ++i) REQUIRE(exec(c.get(), "select value from rr_items where id = 4").ok());
  const std::string pg_temp = std::string(PGRELAY_SOURCE_DIR) + "/scripts/pg-temp";
  const std::string dir = replicas_dir() + "/replica1";
  REQUIRE(run_command(pg_temp + " crash " + shell_quote(dir)).exit_code == 0);
  // Between the crash and the next check, reads chosen for it go to the primary instead.
  int failed = 0;
  for (int i = 0; i < 200; ++i)
    if (!exec(c.get(), "select value from rr_items where id = 4").ok()) ++failed;
  CHECK(failed == 0);
  CHECK(wait_state(relay, "replica1", "down"));
  const long r1_reads = show_replicas(relay)[name_of("replica1")].reads;
  for (int i = 0; i < 20; ++i) REQUIRE(exec(c.get(), "select value from rr_items where id = 4").ok());
  CHECK(show_replicas(relay)[name_of("replica1")].reads == r1_reads);
  REQUIRE(run_command(pg_temp + " restart " + shell_quote(dir)).exit_code == 0);
  CHECK(wait_state(relay, "replica1", "active", 20s));
}

TEST_CASE("a write pipelined behind a read still running on a replica goes to the primary") {
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  reset_statements();
  auto c = connect_ok(relay.conninfo());
  REQUIRE(PQenterPipelineMode(c.get()) == 1);
  REQUIRE(PQsendQueryParams(c.get(), "/* pgrelay:replica */ select pg_sleep(0.3), value as rr_piped from rr_items where id = 5",
                            0, nullptr, nullptr, nullptr, nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQflush(c.get()) == 0);
  std::this_thread::sleep_for(100ms);   // the read is running on a replica now
  REQUIRE(PQsendQueryParams(c.get(), "update rr_items set value = value + 1 where id = 5", 0, nullptr, nullptr, nullptr,
                            nullptr, 0) == 1);
  REQUIRE(PQpipelineSync(c.get()) == 1);
  REQUIRE(PQflush(c.get()) == 0);
  std::vector<ExecStatusType> statuses;
  std::string errors;
  for (int results = 0; results < 4;) {
    PGresult* r = PQgetResult(c.get());
    if (!r) continue;
    statuses.push_back(PQresultStatus(r));
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) errors += PQresultErrorMessage(r);
    PQclear(r);
    ++results;
  }
  CHECK_MESSAGE(errors.empty(), errors);
  CHECK(statuses == std::vector<ExecStatusType>{PGRES_TUPLES_OK, PGRES_PIPELINE_SYNC, PGRES_COMMAND_OK, PGRES_PIPELINE_SYNC});
  CHECK(calls("replica1", "%rr_piped%") + calls("replica2", "%rr_piped%") == 1);
  CHECK(calls("primary", "update rr_items set value = value + $1 where id = $2") == 1);
}

TEST_CASE("a replica crashed under pgbench -S: no failed transaction (reads running on it go to the primary)") {
  const std::string db = " -h 127.0.0.1 -U postgres postgres";
  REQUIRE(run_command("pgbench -i -q -s 1 -p " + std::to_string(port_of("primary")) + db).exit_code == 0);
  wait_caught_up();
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  CommandResult bench;
  std::thread load([&] { bench = run_command("pgbench -n -S -T 10 -c 8 -j 2 -p " + std::to_string(relay.port()) + db, 60s); });
  std::this_thread::sleep_for(3s);
  const std::string pg_temp = std::string(PGRELAY_SOURCE_DIR) + "/scripts/pg-temp";
  const std::string dir = replicas_dir() + "/replica1";
  REQUIRE(run_command(pg_temp + " crash " + shell_quote(dir)).exit_code == 0);
  load.join();
  REQUIRE(run_command(pg_temp + " restart " + shell_quote(dir)).exit_code == 0);
  const std::string log = relay.log();
  size_t moved = 0;
  for (size_t at = log.find("sent to the primary"); at != std::string::npos; at = log.find("sent to the primary", at + 1)) ++moved;
  MESSAGE("pgbench -S with replica1 crashed after 3 s: ", moved, " reads running on it moved to the primary\n", bench.output);
  CHECK(bench.exit_code == 0);
  CHECK(bench.output.find("number of failed transactions: 0 ") != std::string::npos);
  CHECK(bench.output.find("aborted") == std::string::npos);
  CHECK(wait_state(relay, "replica1", "active", 20s));
}

TEST_CASE("a replica connection reset while it takes the client's settings: the read is answered by the primary") {
  // The replica is reached through a relay that resets the connection carrying the client's
  // application_name, the moment pgrelay sends the settings to a connection it just got.
  resume_all();
  FaultRelay faulty(port_of("replica1"));
  const std::string replica = "127.0.0.1:" + std::to_string(faulty.port());
  RelayConfig config;
  config.without_databases().pool("transaction", 10).set("admin_users", "[\"postgres\"]");
  config.add_database("postgres", "host = \"127.0.0.1\"\nport = " + std::to_string(port_of("primary")) +
                                      "\nreplicas = [\"" + replica +
                                      "\"]\nread_routing = \"on\"\nreplica_check_interval = \"100ms\"\n");
  PgrelayProcess relay(config);
  first_client(relay);
  REQUIRE(wait_named_state(relay, replica, "active"));
  reset_statements();
  faulty.reset_on("rr_reset_while_syncing");
  auto c = connect_ok(relay.conninfo("postgres", "postgres", "application_name=rr_reset_while_syncing"));
  auto read = exec(c.get(), "select value as rr_read_after_reset from rr_items where id = 4");
  CHECK_MESSAGE(read.ok(), read.message);
  CHECK(faulty.reset_done());
  CHECK(relay.log().find("failed while taking the session") != std::string::npos);
  CHECK(calls("primary", "%rr_read_after_reset%") == 1);
  // The session goes on, and its reads go to the replica again.
  for (int i = 0; i < 5; ++i) REQUIRE(exec(c.get(), "select value as rr_read_later from rr_items where id = 4").ok());
  CHECK(calls("replica1", "%rr_read_later%") > 0);
  CHECK(scalar(c.get(), "show application_name") == "rr_reset_while_syncing");
}

TEST_CASE("a read cancelled on a replica by a recovery conflict is answered by the primary") {
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  auto primary = direct("primary");
  REQUIRE(exec(primary.get(), "create table if not exists rr_conflict (id int); insert into rr_conflict values (1)").ok());
  for (const char* s : {"replica1", "replica2"}) {
    auto c = direct(s);
    REQUIRE(exec(c.get(), "alter system set max_standby_streaming_delay = 0").ok());
    REQUIRE(exec(c.get(), "select pg_reload_conf()").ok());
  }
  wait_caught_up();
  reset_statements();
  QueryResult read;
  std::thread reader([&] {
    auto c = connect_ok(relay.conninfo());
    read = exec(c.get(), "/* pgrelay:replica */ select pg_sleep(1.5), count(*) as rr_conflicted from rr_conflict");
  });
  std::this_thread::sleep_for(500ms);   // the read holds its lock on a replica now
  // Replaying this lock on the replica cancels the read there (max_standby_streaming_delay = 0).
  REQUIRE(exec(primary.get(), "begin; lock table rr_conflict in access exclusive mode; commit").ok());
  reader.join();
  CHECK_MESSAGE(read.ok(), read.message);
  CHECK(relay.log().find("(recovery conflict or shutdown): sent to the primary") != std::string::npos);
  CHECK(calls("primary", "%rr_conflicted%") == 1);
  for (const char* s : {"replica1", "replica2"}) {
    auto c = direct(s);
    (void)exec(c.get(), "alter system reset max_standby_streaming_delay");
    (void)exec(c.get(), "select pg_reload_conf()");
  }
  REQUIRE(exec(primary.get(), "drop table rr_conflict").ok());
}

TEST_CASE("transactions made read-only by SET TRANSACTION READ ONLY or default_transaction_read_only run on a replica") {
  auto relay_process = start_routed();
  PgrelayProcess& relay = *relay_process;
  reset_statements();
  auto in_transaction = [](PGconn* c, const std::string& first, const std::string& read) {
    REQUIRE(exec(c, "begin").ok());
    if (!first.empty()) REQUIRE(exec(c, first).ok());
    REQUIRE(exec(c, read).ok());
    REQUIRE(exec(c, "commit").ok());
  };
  auto c = connect_ok(relay.conninfo());
  // Each its own shape: pg_stat_statements counts by query id, which ignores column aliases.
  for (int i = 0; i < 10; ++i) in_transaction(c.get(), "set transaction read only", "select count(*) as rr_set_tx from rr_items");
  auto d = connect_ok(relay.conninfo());
  REQUIRE(exec(d.get(), "set default_transaction_read_only = on").ok());
  for (int i = 0; i < 10; ++i) in_transaction(d.get(), "", "select sum(value) as rr_dtro_set from rr_items");
  auto o = connect_ok(relay.conninfo("postgres", "postgres", "options='-c default_transaction_read_only=on'"));
  for (int i = 0; i < 10; ++i) in_transaction(o.get(), "", "select max(value) as rr_dtro_startup from rr_items");
  for (int i = 0; i < 5; ++i) in_transaction(c.get(), "", "select min(value) as rr_plain_tx from rr_items");
  for (const char* name : {"rr_set_tx", "rr_dtro_set", "rr_dtro_startup"}) {
    const std::string like = std::string("%") + name + "%";
    CHECK_MESSAGE(calls("replica1", like) + calls("replica2", like) == 10, name);
    CHECK_MESSAGE(calls("primary", like) == 0, name);
  }
  CHECK(calls("primary", "%rr_plain_tx%") == 5);
  CHECK(calls("replica1", "%rr_plain_tx%") + calls("replica2", "%rr_plain_tx%") == 0);
  // A write in a transaction made read-only fails as it would on the primary.
  REQUIRE(exec(c.get(), "begin").ok());
  REQUIRE(exec(c.get(), "set transaction read only").ok());
  auto w = exec(c.get(), "update rr_items set value = 0 where id = 9");
  CHECK(w.sqlstate == "25006");
  REQUIRE(exec(c.get(), "rollback").ok());
  CHECK(exec(c.get(), "update rr_items set value = 0 where id = 9").ok());
}
