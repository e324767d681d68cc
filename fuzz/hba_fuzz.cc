// Fuzz target: hba rules as pgrelay matches them: network and address parsing, and the first
// matching rule for a connection.
//
// Input: newline-separated fields. Up to 8 rules of "TYPE-DIGIT NETWORK" (network "" for any),
// then the connection: address, database, user and a flags line. The [[hba]] TOML syntax itself
// is config_toml's.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "conf/hba.h"
#include "fuzz/fuzz_util.h"

namespace cf = pgrelay::conf;
using pgrelay::fuzz::check;

namespace {

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= text.size() && out.size() < 16) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string_view> f = lines(std::string_view(reinterpret_cast<const char*>(data), size));
  if (f.size() < 4) {
    for (std::string_view s : f) {
      if (auto c = cf::Cidr::parse(s); c.ok()) check(cf::Cidr::parse(c->to_string()).ok());
      (void)cf::IpAddress::parse(s);
    }
    return 0;
  }
  const size_t n_rules = f.size() - 4;
  std::vector<cf::HbaRule> rules;
  for (size_t i = 0; i < n_rules; ++i) {
    std::string_view line = f[i];
    cf::HbaRule rule;
    rule.number = int(i + 1);
    if (!line.empty()) {
      rule.type = cf::HbaConnType(uint8_t(line[0]) % 4);
      rule.method = cf::kAuthMethodValues[uint8_t(line[0]) / 4 % cf::kAuthMethodValues.size()];
      line.remove_prefix(1);
    }
    if (!line.empty()) {
      auto c = cf::Cidr::parse(line);
      if (!c.ok()) continue;
      auto again = cf::Cidr::parse(c->to_string());
      check(again.ok() && *again == *c);
      check(c->contains(c->network));
      rule.addresses.push_back(*c);
    }
    if (i % 2) rule.databases.push_back("app");
    if (i % 3) rule.users.push_back(std::string(f[n_rules + 2]));
    rules.push_back(std::move(rule));
  }
  const std::string_view flags = f[n_rules + 3];
  cf::HbaRequest req;
  req.address = f[n_rules];
  req.database = f[n_rules + 1];
  req.user = f[n_rules + 2];
  req.is_unix_socket = !flags.empty() && (flags[0] & 1);
  req.is_tls = !flags.empty() && (flags[0] & 2);
  (void)cf::IpAddress::parse(req.address);

  cf::HbaDecision d = cf::decide(rules, cf::AuthMethod::kScramSha256, req);
  const cf::HbaRule* first = cf::match(rules, req);
  check(d.rule == first);
  if (first) check(d.method == first->method && d.matched);
  if (rules.empty()) check(d.method == cf::AuthMethod::kScramSha256);
  (void)cf::describe_connection(req);
  (void)cf::to_string(d.method);
  return 0;
}
