// [[hba]] matching: addresses and networks (IPv4, IPv6, mapped, edge prefixes), connection types,
// first match wins, and the fallback to auth_type when there are no rules.
#include <doctest/doctest.h>

#include <string>

#include "conf/hba.h"

namespace pgrelay::conf {
namespace {

Cidr cidr(std::string_view text) {
  auto c = Cidr::parse(text);
  REQUIRE_MESSAGE(c.ok(), (c.ok() ? "" : c.error().message));
  return *c;
}

IpAddress ip(std::string_view text) {
  auto a = IpAddress::parse(text);
  REQUIRE_MESSAGE(a.has_value(), text);
  return *a;
}

std::string cidr_error(std::string_view text) {
  auto c = Cidr::parse(text);
  REQUIRE_MESSAGE(!c.ok(), "expected an error for " << text);
  return c.error().message;
}

HbaRule rule(AuthMethod method, std::vector<std::string> addresses = {}, std::vector<std::string> users = {},
             std::vector<std::string> databases = {}, HbaConnType type = HbaConnType::kHost) {
  HbaRule r;
  r.method = method;
  r.type = type;
  r.users = std::move(users);
  r.databases = std::move(databases);
  for (const auto& a : addresses) r.addresses.push_back(cidr(a));
  return r;
}

HbaRequest req(std::string_view address, std::string_view user = "app", std::string_view database = "appdb",
               bool tls = false) {
  return HbaRequest{address, false, tls, database, user};
}

}  // namespace

TEST_CASE("IpAddress: IPv4, IPv6, IPv4-mapped IPv6, and garbage") {
  CHECK_FALSE(ip("10.1.2.3").v6);
  CHECK(ip("10.1.2.3").bytes[0] == 10);
  CHECK(ip("::1").v6);
  CHECK(ip("::ffff:10.1.2.3") == ip("10.1.2.3"));   // a v4 client on a dual-stack listener
  CHECK(ip("fe80::1").v6);
  for (std::string_view bad : {"", "unknown", "10.1.2", "10.1.2.3.4", "256.1.1.1", "::1::2", "10.0.0.0/8",
                               "[::1]", " 10.1.2.3"}) {
    CAPTURE(bad);
    CHECK_FALSE(IpAddress::parse(bad).has_value());
  }
}

TEST_CASE("Cidr: IPv4 networks at every interesting prefix") {
  CHECK(cidr("10.0.0.0/8").contains(ip("10.255.1.2")));
  CHECK_FALSE(cidr("10.0.0.0/8").contains(ip("11.0.0.0")));
  CHECK(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
  CHECK_FALSE(cidr("0.0.0.0/0").contains(ip("::1")));                 // not across families
  CHECK(cidr("192.168.1.128/25").contains(ip("192.168.1.200")));
  CHECK_FALSE(cidr("192.168.1.128/25").contains(ip("192.168.1.127")));
  CHECK(cidr("172.16.0.0/12").contains(ip("172.31.255.255")));
  CHECK_FALSE(cidr("172.16.0.0/12").contains(ip("172.32.0.0")));
  CHECK(cidr("127.0.0.1").prefix == 32);                               // a bare address is one host
  CHECK(cidr("127.0.0.1").contains(ip("127.0.0.1")));
  CHECK_FALSE(cidr("127.0.0.1/32").contains(ip("127.0.0.2")));
  CHECK(cidr("10.0.0.0/8").contains(ip("::ffff:10.9.9.9")));           // mapped clients match v4 rules
  CHECK(cidr("10.0.0.0/8").to_string() == "10.0.0.0/8");
}

TEST_CASE("Cidr: IPv6 networks") {
  CHECK(cidr("::1/128").contains(ip("::1")));
  CHECK_FALSE(cidr("::1/128").contains(ip("::2")));
  CHECK_FALSE(cidr("::1/128").contains(ip("127.0.0.1")));
  CHECK(cidr("::1").prefix == 128);
  CHECK(cidr("::/0").contains(ip("2001:db8::1")));
  CHECK_FALSE(cidr("::/0").contains(ip("10.0.0.1")));
  CHECK(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
  CHECK_FALSE(cidr("2001:db8::/32").contains(ip("2001:db9::1")));
  CHECK(cidr("fe80::/10").contains(ip("febf::1")));                    // prefix not on a byte boundary
  CHECK_FALSE(cidr("fe80::/10").contains(ip("fec0::1")));
  CHECK(cidr("2001:db8::/127").contains(ip("2001:db8::1")));
  CHECK_FALSE(cidr("2001:db8::/127").contains(ip("2001:db8::2")));
  CHECK(cidr("2001:db8::/32").to_string() == "2001:db8::/32");
}

TEST_CASE("Cidr: errors say what is wrong") {
  CHECK(cidr_error("10.0.0.1/8").find("did you mean \"10.0.0.0/8\"") != std::string::npos);
  CHECK(cidr_error("fe80::1/10").find("did you mean \"fe80::/10\"") != std::string::npos);
  CHECK(cidr_error("10.0.0.0/33").find("0..32") != std::string::npos);
  CHECK(cidr_error("::/129").find("0..128") != std::string::npos);
  CHECK(cidr_error("10.0.0.0/").find("prefix length") != std::string::npos);
  CHECK(cidr_error("10.0.0.0/-1").find("prefix length") != std::string::npos);
  CHECK(cidr_error("10.0.0.0/8x").find("prefix length") != std::string::npos);
  CHECK(cidr_error("db.example.com/24").find("IPv4 or IPv6") != std::string::npos);
  CHECK(cidr_error("::ffff:10.0.0.0/104").find("written as IPv4") != std::string::npos);
  CHECK(cidr_error("").find("IPv4 or IPv6") != std::string::npos);
}

TEST_CASE("decide: no rules means auth_type for everyone") {
  const std::vector<HbaRule> none;
  for (AuthMethod m : kAuthMethodValues) {
    HbaDecision d = decide(none, m, req("203.0.113.9"));
    CHECK(d.matched);
    CHECK(d.method == m);
    CHECK(d.rule == nullptr);
  }
}

TEST_CASE("decide: first match wins; no match rejects") {
  std::vector<HbaRule> rules = {
      rule(AuthMethod::kReject, {"10.0.0.66/32"}),
      rule(AuthMethod::kTrust, {"10.0.0.0/8"}, {"monitor"}),
      rule(AuthMethod::kMd5, {"10.0.0.0/8"}, {}, {"legacy", "old"}),
      rule(AuthMethod::kScramSha256, {"10.0.0.0/8", "::1/128"}),
  };
  for (int i = 0; i < 4; ++i) rules[i].number = i + 1;

  CHECK(decide(rules, AuthMethod::kTrust, req("10.0.0.66", "monitor")).method == AuthMethod::kReject);
  CHECK(decide(rules, AuthMethod::kTrust, req("10.0.0.66", "monitor")).rule->number == 1);
  CHECK(decide(rules, AuthMethod::kTrust, req("10.0.0.5", "monitor")).method == AuthMethod::kTrust);
  CHECK(decide(rules, AuthMethod::kTrust, req("10.0.0.5", "app", "old")).method == AuthMethod::kMd5);
  CHECK(decide(rules, AuthMethod::kTrust, req("10.0.0.5", "app", "appdb")).method == AuthMethod::kScramSha256);
  CHECK(decide(rules, AuthMethod::kTrust, req("::1", "monitor")).method == AuthMethod::kScramSha256);
  CHECK(decide(rules, AuthMethod::kTrust, req("::ffff:10.0.0.5", "monitor")).method == AuthMethod::kTrust);

  HbaDecision outside = decide(rules, AuthMethod::kTrust, req("192.0.2.1"));
  CHECK_FALSE(outside.matched);
  CHECK(outside.method == AuthMethod::kReject);
  CHECK(outside.rule == nullptr);
  // An address that does not parse matches no network (but would match "all").
  CHECK_FALSE(decide(rules, AuthMethod::kTrust, req("unknown")).matched);
  CHECK(decide({rule(AuthMethod::kTrust)}, AuthMethod::kReject, req("unknown")).method == AuthMethod::kTrust);
}

TEST_CASE("match: connection types host, hostssl, hostnossl, local") {
  const std::vector<HbaRule> rules = {
      rule(AuthMethod::kCert, {}, {}, {}, HbaConnType::kHostSsl),
      rule(AuthMethod::kPassword, {}, {}, {}, HbaConnType::kLocal),
      rule(AuthMethod::kMd5, {}, {}, {}, HbaConnType::kHostNoSsl),
  };
  CHECK(match(rules, req("10.0.0.1", "u", "d", /*tls=*/true))->method == AuthMethod::kCert);
  CHECK(match(rules, req("10.0.0.1", "u", "d", /*tls=*/false))->method == AuthMethod::kMd5);
  HbaRequest local{"", true, false, "d", "u"};
  CHECK(match(rules, local)->method == AuthMethod::kPassword);

  const std::vector<HbaRule> host_only = {rule(AuthMethod::kTrust, {"127.0.0.1/32"})};
  CHECK(match(host_only, req("127.0.0.1", "u", "d", true)) != nullptr);   // host: TLS or not
  CHECK(match(host_only, req("127.0.0.1", "u", "d", false)) != nullptr);
  CHECK(match(host_only, local) == nullptr);                              // never a Unix socket
}

TEST_CASE("match: user and database names are exact and case-sensitive") {
  const std::vector<HbaRule> rules = {rule(AuthMethod::kTrust, {}, {"App"}, {"Main"})};
  CHECK(match(rules, req("10.0.0.1", "App", "Main")) != nullptr);
  CHECK(match(rules, req("10.0.0.1", "app", "Main")) == nullptr);
  CHECK(match(rules, req("10.0.0.1", "App", "main")) == nullptr);
  CHECK(match(rules, req("10.0.0.1", "App", "Main2")) == nullptr);
}

TEST_CASE("describe_connection: PostgreSQL's wording") {
  CHECK(describe_connection(req("10.1.2.3", "app", "db")) ==
        "host \"10.1.2.3\", user \"app\", database \"db\", no encryption");
  CHECK(describe_connection(req("::1", "app", "db", true)) ==
        "host \"::1\", user \"app\", database \"db\", SSL encryption");
  CHECK(describe_connection(HbaRequest{"", true, false, "db", "u"}) ==
        "host \"[local]\", user \"u\", database \"db\", no encryption");
}

TEST_CASE("AuthMethod names round-trip") {
  for (size_t i = 0; i < kAuthMethodValues.size(); ++i) CHECK(to_string(kAuthMethodValues[i]) == kAuthMethodNames[i]);
}

}  // namespace pgrelay::conf
