// The read-replica keys of [databases.NAME] and the [users.NAME] tables.
#include <doctest/doctest.h>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::error_of;
using test::ok_config;

}  // namespace

TEST_CASE("replicas: off by default; URLs or host:port; lag as a size or a duration") {
  const Config none = ok_config("[databases.app]\nhost = \"db\"\n");
  const DatabaseEntry& plain = none.databases.at("app");
  CHECK(plain.replicas.replicas.empty());
  CHECK_FALSE(plain.replicas.read_routing);
  CHECK(plain.replicas.max_lag_bytes == 16u << 20);
  CHECK_FALSE(none.read_routing(plain, "alice"));

  const Config c = ok_config(
      "[databases.app]\nhost = \"db\"\nreplicas = [\"postgresql://r1:5433\", \"r2\", \"postgres://[::1]:6000\"]\n"
      "read_routing = \"on\"\nmax_replica_lag = \"2s\"\nprimary_reads = true\nreplica_check_interval = \"100ms\"\n"
      "[databases.other]\nhost = \"db\"\nreplicas = [\"r1:5432\"]\nmax_replica_lag = \"1MB\"\n"
      "[databases.third]\nhost = \"db\"\nreplicas = [\"r1\"]\nmax_replica_lag = 4096\n"
      "[users.reporting]\nread_routing = \"on\"\n[users.batch]\nread_routing = \"off\"\n");
  const DatabaseEntry& app = c.databases.at("app");
  REQUIRE(app.replicas.replicas.size() == 3);
  CHECK(app.replicas.replicas[0] == ReplicaEndpoint{.host = "r1", .port = 5433});
  CHECK(app.replicas.replicas[1] == ReplicaEndpoint{.host = "r2", .port = 5432});
  CHECK(app.replicas.replicas[2].host == "::1");
  CHECK(app.replicas.max_lag_time.count() == 2000);
  CHECK(app.replicas.max_lag_bytes == 0);
  CHECK(app.replicas.primary_reads);
  CHECK(app.replicas.check_interval.count() == 100);
  CHECK(c.databases.at("other").replicas.max_lag_bytes == 1u << 20);
  CHECK(c.databases.at("third").replicas.max_lag_bytes == 4096);
  // Per user over per database.
  CHECK(c.read_routing(app, "alice"));
  CHECK_FALSE(c.read_routing(app, "batch"));
  CHECK_FALSE(c.read_routing(c.databases.at("other"), "alice"));
  CHECK(c.read_routing(c.databases.at("other"), "reporting"));
}

TEST_CASE("replica errors name the file, the key and what was expected") {
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = [\"postgresql://u:p@r1/db\"]\n"),
                 "test.toml:3: databases.app.replicas: expected postgresql://host[:port] or host[:port] for each replica"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = \"r1\"\n"), "databases.app.replicas"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nread_routing = \"on\"\n"),
                 "databases.app.read_routing: expected replicas = "));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = [\"r1\"]\nread_routing = \"yes\"\n"),
                 "databases.app.read_routing"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = [\"r1\"]\nmax_replica_lag = \"fast\"\n"),
                 "databases.app.max_replica_lag"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = [\"r1\"]\nmax_replica_lag = \"12XB\"\n"),
                 "databases.app.max_replica_lag: expected a size"));
  CHECK(contains(error_of("[users.bob]\nread_routing = 1\n"), "users.bob.read_routing"));
  CHECK(contains(error_of("[users.bob]\npool_mode = \"session\"\n"), "users.bob.pool_mode"));
  CHECK(contains(error_of("users = 3\n"), "users: expected a table of [users.NAME] tables"));
}

TEST_CASE("a multi-host primary: host = \"a,b\" with one port or one per host, or libpq's URL form") {
  const Config one = ok_config("[databases.app]\nhost = \"db\"\nport = 6000\n");
  CHECK(one.databases.at("app").primary_hosts.empty());
  CHECK(one.databases.at("app").port == 6000);
  const Config c = ok_config(
      "[databases.a]\nhost = \"h1,h2\"\nport = 5433\n"
      "[databases.b]\nhost = \"h1,h2,h3\"\nport = \"5001,5002,5003\"\n"
      "[databases.c]\nurl = \"postgresql://u@h1:7000,h2/app\"\n"
      "[databases.d]\nhost = \"solo\"\nport = \"5999\"\n");
  const DatabaseEntry& a = c.databases.at("a");
  CHECK(a.host == "h1");
  CHECK(a.port == 5433);
  CHECK(a.primary_hosts == std::vector<ReplicaEndpoint>{{.host = "h1", .port = 5433}, {.host = "h2", .port = 5433}});
  const DatabaseEntry& b = c.databases.at("b");
  REQUIRE(b.primary_hosts.size() == 3);
  CHECK(b.primary_hosts[2] == ReplicaEndpoint{.host = "h3", .port = 5003});
  CHECK(b.port == 5001);
  const DatabaseEntry& u = c.databases.at("c");
  CHECK(u.primary_hosts == std::vector<ReplicaEndpoint>{{.host = "h1", .port = 7000}, {.host = "h2", .port = 5432}});
  CHECK(u.dbname == "app");
  CHECK(c.databases.at("d").primary_hosts.empty());
  CHECK(c.databases.at("d").port == 5999);
}

TEST_CASE("multi-host primary errors name the key and what was expected") {
  CHECK(contains(error_of("[databases.app]\nhost = \"h1,h2,h3\"\nport = \"1,2\"\n"),
                 "test.toml:3: databases.app.port: expected one port, or as many as host has hosts (3)"));
  CHECK(contains(error_of("[databases.app]\nhost = \"h1,h2\"\nport = \"1,x\"\n"),
                 "databases.app.port: expected a port 1..65535, or one per host"));
  CHECK(contains(error_of("[databases.app]\nhost = \"h1,,h2\"\n"), "databases.app.host: expected host names separated"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nreplicas = [\"postgresql://r1,r2\"]\n"),
                 "one replica per list item"));
}

}  // namespace pgrelay::conf
