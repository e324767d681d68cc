// Redis Sentinel's pure parts: the sentinels' answer, ROLE, READONLY, and which answer to believe.
#include <doctest/doctest.h>

#include "proxy/net/redis_sentinel.h"

namespace pgrelay::proxy {
namespace {

RedisReply str(std::string s) { return RedisReply{.type = RedisReply::Type::kString, .integer = 0, .str = std::move(s), .elements = {}}; }
RedisReply array(std::vector<RedisReply> e) { return RedisReply{.type = RedisReply::Type::kArray, .integer = 0, .str = {}, .elements = std::move(e)}; }
RedisReply error(std::string s) { return RedisReply{.type = RedisReply::Type::kError, .integer = 0, .str = std::move(s), .elements = {}}; }

conf::SentinelAddress at(std::string host, int port) { return conf::SentinelAddress{.host = std::move(host), .port = port}; }

}  // namespace

TEST_CASE("SENTINEL get-master-addr-by-name's answer") {
  std::string why;
  const auto ok = parse_master_address(array({str("10.0.0.5"), str("6380")}), why);
  REQUIRE(ok.has_value());
  CHECK(*ok == at("10.0.0.5", 6380));
  CHECK_FALSE(parse_master_address(RedisReply{}, why).has_value());   // nil: an unknown name
  CHECK(why == "it monitors no master by that name");
  CHECK_FALSE(parse_master_address(error("NOAUTH Authentication required."), why).has_value());
  CHECK(why == "NOAUTH Authentication required.");
  for (const RedisReply& bad : {array({str("h")}), array({str("h"), str("0")}), array({str("h"), str("65536")}),
                                array({str("h"), str("63a")}), array({str(""), str("6379")}), str("h:6379"),
                                array({str("h"), RedisReply{.type = RedisReply::Type::kInteger, .integer = 6379, .str = {}, .elements = {}}})}) {
    why.clear();
    CHECK_FALSE(parse_master_address(bad, why).has_value());
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("ROLE says master; READONLY is a replica's refusal") {
  CHECK(is_master_role(array({str("master"), RedisReply{.type = RedisReply::Type::kInteger, .integer = 42, .str = {}, .elements = {}}, array({})})));
  const RedisReply replica = array({str("slave"), str("127.0.0.1"), RedisReply{.type = RedisReply::Type::kInteger, .integer = 6379, .str = {}, .elements = {}}, str("connected")});
  CHECK_FALSE(is_master_role(replica));
  CHECK(role_name(replica) == "slave");
  CHECK_FALSE(is_master_role(array({str("sentinel"), array({})})));
  CHECK_FALSE(is_master_role(error("NOPERM this user has no permissions to run the 'role' command")));
  CHECK(role_name(error("NOPERM x")) == "NOPERM x");
  CHECK_FALSE(is_master_role(RedisReply{}));
  CHECK(role_name(RedisReply{}) == "?");
  CHECK(is_readonly_error(error("READONLY You can't write against a read only replica.")));
  CHECK_FALSE(is_readonly_error(error("ERR wrong number of arguments")));
  CHECK_FALSE(is_readonly_error(str("READONLY")));
}

TEST_CASE("SENTINEL MASTER's config epoch") {
  CHECK(parse_config_epoch(array({str("name"), str("it"), str("ip"), str("127.0.0.1"), str("config-epoch"), str("7"), str("flags"), str("master")})) == 7u);
  CHECK_FALSE(parse_config_epoch(array({str("name"), str("it")})).has_value());
  CHECK_FALSE(parse_config_epoch(array({str("config-epoch"), str("7x")})).has_value());
  CHECK_FALSE(parse_config_epoch(array({str("config-epoch")})).has_value());
  CHECK_FALSE(parse_config_epoch(error("ERR No such master with that name")).has_value());
}

TEST_CASE("choose_master: the newest config epoch; a stale answer passed over while another names something else") {
  const auto old_master = at("10.0.0.1", 6379);
  const auto new_master = at("10.0.0.2", 6379);
  using A = SentinelAnswer;
  CHECK_FALSE(choose_master({}, std::nullopt).has_value());
  // A sentinel that has not heard of the failover yet names the old master under the old epoch.
  CHECK(choose_master({A{.address = old_master, .config_epoch = 3}, A{.address = new_master, .config_epoch = 4}}, std::nullopt) == new_master);
  CHECK(choose_master({A{.address = new_master, .config_epoch = 4}, A{.address = old_master, .config_epoch = 3}}, std::nullopt) == new_master);
  // Equal epochs: the first asked.
  CHECK(choose_master({A{.address = old_master, .config_epoch = 0}, A{.address = new_master, .config_epoch = 0}}, std::nullopt) == old_master);
  // A connection found a replica at the newest answer: another address is believed meanwhile.
  CHECK(choose_master({A{.address = old_master, .config_epoch = 5}, A{.address = new_master, .config_epoch = 4}}, old_master) == new_master);
  // Nothing else named: that one again (its ROLE is checked again).
  CHECK(choose_master({A{.address = old_master, .config_epoch = 5}}, old_master) == old_master);
}

}  // namespace pgrelay::proxy
