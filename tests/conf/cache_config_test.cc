// [cache] and [databases.NAME.cache]: off by default, opted into per process or per database.
#include <doctest/doctest.h>

#include "conf/loader.h"
#include "tests/conf/test_util.h"

namespace pgrelay::conf {
namespace {

using test::contains;
using test::error_of;
using test::ok_config;

}  // namespace

TEST_CASE("the cache is off unless enabled, with sizes and a TTL by default") {
  const Config c = ok_config("[databases.app]\nhost = \"db\"\n");
  CHECK_FALSE(c.cache.enabled);
  CHECK_FALSE(c.databases.at("app").cache.enabled);
  CHECK(c.cache.default_ttl.count() == 60'000);
  CHECK(c.cache.memory_budget == 64u << 20);
  CHECK(c.cache.max_entry_size == 1u << 20);
  CHECK(c.cache.compress_threshold == 1024);
}

TEST_CASE("[cache] sets every database's default, whatever the file order; a database may override") {
  const Config c = ok_config(
      "[databases.app]\nhost = \"db\"\n[databases.app.cache]\ndefault_ttl = \"5s\"\n"
      "[databases.other]\nhost = \"db\"\n[databases.other.cache]\nenabled = false\n"
      "[databases.third]\nhost = \"db\"\n"
      "[cache]\nenabled = true\ndefault_ttl = \"30s\"\nmemory_budget = \"256MB\"\nmax_entry_size = \"4MB\"\n"
      "compress_threshold = 2048\n");
  CHECK(c.cache.enabled);
  CHECK(c.cache.memory_budget == 256u << 20);
  CHECK(c.cache.max_entry_size == 4u << 20);
  CHECK(c.cache.compress_threshold == 2048);
  CHECK(c.databases.at("app").cache.enabled);
  CHECK(c.databases.at("app").cache.default_ttl.count() == 5'000);
  CHECK_FALSE(c.databases.at("other").cache.enabled);
  CHECK(c.databases.at("other").cache.default_ttl.count() == 30'000);
  CHECK(c.databases.at("third").cache.enabled);
  const Config one = ok_config("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nenabled = true\n");
  CHECK_FALSE(one.cache.enabled);
  CHECK(one.databases.at("app").cache.enabled);
}

TEST_CASE("cache errors name the file, the key and what was expected") {
  CHECK(contains(error_of("[cache]\nenabled = \"yes\"\n"), "test.toml:2: cache.enabled: expected true or false"));
  CHECK(contains(error_of("[cache]\ndefault_ttl = 0\n"), "cache.default_ttl"));
  CHECK(contains(error_of("[cache]\nmemory_budget = \"1kB\"\n"), "cache.memory_budget: expected a size"));
  CHECK(contains(error_of("[cache]\nmemory_budget = \"8MB\"\nmax_entry_size = \"4MB\"\n"),
                 "cache.max_entry_size: expected at most a quarter of memory_budget"));
  CHECK(contains(error_of("[cache]\nttl = \"1s\"\n"), "cache.ttl: unknown key"));
  CHECK(contains(error_of("cache = 1\n"), "cache: expected a table"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\ncache = true\n"), "databases.app.cache: expected a table"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nmemory_budget = \"1GB\"\n"),
                 "databases.app.cache.memory_budget: expected it in [cache]"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nenable = true\n"),
                 "databases.app.cache.enable: unknown key"));
}
}  // namespace pgrelay::conf

namespace pgrelay::conf {

TEST_CASE("cache rules: by table or fingerprint, [cache]'s for everyone, a database's added after them") {
  const Config c = ok_config(
      "[cache]\nenabled = true\n"
      "[[cache.rules]]\ntable = \"public.sessions\"\nttl = \"5s\"\n"
      "[[cache.rules]]\nfingerprint = \"0x00000000DEADBEEF\"\ncache = false\n"
      "[databases.app]\nhost = \"db\"\n"
      "[[databases.app.cache.rules]]\ntable = 'Audit.\"Log Lines\"'\ncache = false\n"
      "[[databases.app.cache.rules]]\nfingerprint = \"1234abcd1234abcd\"\nttl = 30\ncache = true\n"
      "[databases.other]\nhost = \"db\"\n");
  REQUIRE(c.cache.rules.size() == 2);
  CHECK(c.cache.rules[0].schema == "public");
  CHECK(c.cache.rules[0].table == "sessions");
  CHECK_FALSE(c.cache.rules[0].fingerprint);
  CHECK(c.cache.rules[0].ttl.count() == 5'000);
  CHECK(c.cache.rules[0].cache);
  CHECK(c.cache.rules[1].table.empty());
  CHECK(c.cache.rules[1].fingerprint == 0xdeadbeefu);
  CHECK_FALSE(c.cache.rules[1].cache);
  CHECK(c.cache.rules[1].ttl.count() == 0);

  const auto& app = c.databases.at("app").cache.rules;
  REQUIRE(app.size() == 4);
  CHECK(app[0] == c.cache.rules[0]);
  CHECK(app[1] == c.cache.rules[1]);
  CHECK(app[2].schema == "audit");        // unquoted: folded
  CHECK(app[2].table == "Log Lines");     // quoted: kept
  CHECK_FALSE(app[2].cache);
  CHECK(app[3].fingerprint == 0x1234abcd1234abcdu);
  CHECK(app[3].ttl.count() == 30'000);
  CHECK(c.databases.at("other").cache.rules == c.cache.rules);

  const Config unqualified = ok_config("[[cache.rules]]\ntable = \"Sessions\"\nttl = \"1s\"\n");
  REQUIRE(unqualified.cache.rules.size() == 1);
  CHECK(unqualified.cache.rules[0].schema.empty());
  CHECK(unqualified.cache.rules[0].table == "sessions");
}

TEST_CASE("cache rule errors name the file, the rule's key and what was expected") {
  auto rule = [](const std::string& body) { return error_of("[cache]\nenabled = true\n[[cache.rules]]\n" + body); };
  CHECK(contains(rule("table = \"a.b.c\"\nttl = \"1s\"\n"),
                 "test.toml:4: cache.rules[1].table: expected a table name (\"name\" or \"schema.name\", SQL identifiers), got \"a.b.c\""));
  CHECK(contains(rule("table = \"\"\nttl = \"1s\"\n"), "cache.rules[1].table: expected a table name"));
  CHECK(contains(rule("table = \"a.\"\nttl = \"1s\"\n"), "cache.rules[1].table: expected a table name"));
  CHECK(contains(rule("table = '\"open'\nttl = \"1s\"\n"), "cache.rules[1].table: expected a table name"));
  CHECK(contains(rule("table = 7\nttl = \"1s\"\n"), "cache.rules[1].table: expected a string, got 7"));
  CHECK(contains(rule("fingerprint = \"xyz\"\nttl = \"1s\"\n"),
                 "test.toml:4: cache.rules[1].fingerprint: expected a fingerprint (16 hex digits, as SHOW QUERIES prints it), got \"xyz\""));
  CHECK(contains(rule("fingerprint = \"12345678901234567\"\nttl = \"1s\"\n"), "cache.rules[1].fingerprint: expected a fingerprint"));
  CHECK(contains(rule("table = \"t\"\nfingerprint = \"ab\"\nttl = \"1s\"\n"),
                 "cache.rules[1].fingerprint: expected table or fingerprint in a rule, not both"));
  CHECK(contains(rule("ttl = \"1s\"\n"), "cache.rules[1]: expected table or fingerprint in every rule, got neither"));
  CHECK(contains(rule("table = \"t\"\n"), "cache.rules[1]: expected ttl or cache = false in every rule, got neither"));
  CHECK(contains(rule("table = \"t\"\ncache = true\n"), "cache.rules[1]: expected ttl or cache = false"));
  CHECK(contains(rule("table = \"t\"\nttl = \"1s\"\ncache = false\n"),
                 "cache.rules[1].ttl: expected no ttl in a rule with cache = false"));
  CHECK(contains(rule("table = \"t\"\nttl = 0\n"), "cache.rules[1].ttl: expected a duration greater than 0"));
  CHECK(contains(rule("table = \"t\"\ncache = \"no\"\n"), "cache.rules[1].cache: expected true or false, got \"no\""));
  CHECK(contains(rule("table = \"t\"\nttl = \"1s\"\nstale = true\n"), "cache.rules[1].stale: unknown key"));
  // The second rule of a database: its own number and the database's prefix.
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[[databases.app.cache.rules]]\ntable = \"t\"\nttl = \"1s\"\n"
                          "[[databases.app.cache.rules]]\nfingerprint = \"g\"\ncache = false\n"),
                 "test.toml:7: databases.app.cache.rules[2].fingerprint: expected a fingerprint"));
  CHECK(contains(error_of("[cache]\nrules = \"all\"\n"), "cache.rules: expected [[cache.rules]] tables, got \"all\""));
  CHECK(contains(error_of("[cache]\nrules = [1, 2]\n"), "cache.rules: expected [[cache.rules]] tables, got an array"));
}

}  // namespace pgrelay::conf

namespace pgrelay::conf {

TEST_CASE("the replication listener: off by default, per database, with its publication and slot") {
  const std::string base = "[cache]\nenabled = true\n[databases.app]\nhost = \"db\"\nuser = \"relay\"\n";
  const Config off = ok_config(base);
  CHECK_FALSE(off.databases.at("app").cache.replication.enabled);
  const Config on = ok_config(base + "[databases.app.cache]\nreplication = true\n");
  const ReplicationSettings& r = on.databases.at("app").cache.replication;
  CHECK(r.enabled);
  CHECK(r.publication.empty());
  CHECK(r.slot.empty());
  CHECK_FALSE(r.slot_persistent);
  const Config named = ok_config(base + "[databases.app.cache]\nreplication = true\npublication = \"Orders Pub\"\n"
                                        "replication_slot = \"relay_1\"\nreplication_slot_persistent = true\n");
  const ReplicationSettings& n = named.databases.at("app").cache.replication;
  CHECK(n.publication == "Orders Pub");
  CHECK(n.slot == "relay_1");
  CHECK(n.slot_persistent);
}

TEST_CASE("replication errors name the file, the key and what was expected") {
  const std::string base = "[cache]\nenabled = true\n[databases.app]\nhost = \"db\"\nuser = \"relay\"\n[databases.app.cache]\n";
  CHECK(contains(error_of(base + "replication = \"yes\"\n"), "test.toml:7: databases.app.cache.replication: expected true or false"));
  CHECK(contains(error_of(base + "replication = true\nreplication_slot = \"Bad-Name\"\n"),
                 "databases.app.cache.replication_slot: expected 1 to 63 lower-case letters"));
  CHECK(contains(error_of(base + "replication = true\npublication = \"\"\n"), "databases.app.cache.publication: expected a publication name"));
  CHECK(contains(error_of(base + "publication = \"p\"\n"), "databases.app.cache.publication: expected replication = true beside it"));
  CHECK(contains(error_of("[cache]\nenabled = true\nreplication = true\n"),
                 "test.toml:3: cache.replication: expected it in [databases.NAME.cache]"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nreplication = true\n"),
                 "databases.app.cache.replication: expected the database's user"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\nuser = \"u\"\n[databases.app.cache]\nreplication = true\n"),
                 "databases.app.cache.replication: expected enabled = true"));
  CHECK(contains(error_of("[cache]\nenabled = true\n[databases.\"*\"]\nhost = \"db\"\nuser = \"u\"\n[databases.\"*\".cache]\nreplication = true\n"),
                 "expected it in a named database entry"));
}

}  // namespace pgrelay::conf

namespace pgrelay::conf {

TEST_CASE("[cache] warming keys: 100 statements at 50 a second, no file, warm at start, saved every 30 s") {
  const Config d = ok_config("");
  CHECK(d.cache.warm_statements == 1000);
  CHECK(d.cache.warm_rate == 500);
  CHECK(d.cache.warm_file.empty());
  CHECK(d.cache.warm_on_start);
  CHECK(d.cache.warm_save_interval.count() == 30'000);
  const Config c = ok_config(
      "[cache]\nwarm_statements = 0\nwarm_rate = 20\nwarm_file = \"/var/lib/pgrelay/warm\"\nwarm_on_start = false\n"
      "warm_save_interval = \"5s\"\n");
  CHECK(c.cache.warm_statements == 0);
  CHECK(c.cache.warm_rate == 20);
  CHECK(c.cache.warm_file == "/var/lib/pgrelay/warm");
  CHECK_FALSE(c.cache.warm_on_start);
  CHECK(c.cache.warm_save_interval.count() == 5'000);
}

TEST_CASE("[cache] warming key errors name the file, the key and what was expected") {
  CHECK(contains(error_of("[cache]\nwarm_rate = 0\n"), "test.toml:2: cache.warm_rate: expected an integer 1..1000000"));
  CHECK(contains(error_of("[cache]\nwarm_statements = -1\n"), "cache.warm_statements: expected an integer 0..100000"));
  CHECK(contains(error_of("[cache]\nwarm_file = 3\n"), "cache.warm_file: expected a string"));
  CHECK(contains(error_of("[cache]\nwarm_on_start = \"yes\"\n"), "cache.warm_on_start: expected true or false"));
  CHECK(contains(error_of("[cache]\nwarm_save_interval = 0\n"), "cache.warm_save_interval"));
  CHECK(contains(error_of("[databases.app]\nhost = \"db\"\n[databases.app.cache]\nwarm_rate = 5\n"), "databases.app.cache.warm_rate"));
}

}  // namespace pgrelay::conf
