// Client authentication rules: addresses, networks, and first-match-wins rule matching.
#include "conf/hba.h"

#include <arpa/inet.h>

#include <algorithm>

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

bool any_of_or_all(const std::vector<std::string>& names, std::string_view value) {
  return names.empty() || std::find(names.begin(), names.end(), value) != names.end();
}

bool type_matches(HbaConnType type, const HbaRequest& req) {
  switch (type) {
    case HbaConnType::kLocal: return req.is_unix_socket;
    case HbaConnType::kHost: return !req.is_unix_socket;
    case HbaConnType::kHostSsl: return !req.is_unix_socket && req.is_tls;
    case HbaConnType::kHostNoSsl: return !req.is_unix_socket && !req.is_tls;
  }
  return false;
}

bool address_matches(const HbaRule& rule, const HbaRequest& req) {
  if (rule.addresses.empty() || req.is_unix_socket) return true;
  const auto addr = IpAddress::parse(req.address);
  if (!addr) return false;
  return std::any_of(rule.addresses.begin(), rule.addresses.end(), [&](const Cidr& c) { return c.contains(*addr); });
}

}  // namespace

const char* to_string(AuthMethod m) {
  for (size_t i = 0; i < kAuthMethodValues.size(); ++i) {
    if (kAuthMethodValues[i] == m) return kAuthMethodNames[i].data();
  }
  return "unknown";
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  const std::string s(text);
  IpAddress a;
  if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) return a;
  if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
  // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: IPv4 rules must see it as such.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMapped, kMapped + 12, a.bytes.begin())) {
    std::copy(a.bytes.begin() + 12, a.bytes.end(), a.bytes.begin());
    std::fill(a.bytes.begin() + 4, a.bytes.end(), 0);
    return a;
  }
  a.v6 = true;
  return a;
}

Result<Cidr> Cidr::parse(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  auto addr = IpAddress::parse(host);
  if (!addr) {
    return config_error("expected an IPv4 or IPv6 address or network (\"10.0.0.0/8\", \"::1/128\") or \"all\", got \"" +
                        std::string(text) + "\"");
  }
  // A mapped IPv4 written as IPv6 is still an IPv6 rule: its prefix counts 128 bits.
  const bool written_v6 = host.find(':') != std::string_view::npos;
  if (written_v6 && !addr->v6) {
    return config_error("expected an IPv4 network written as IPv4 (not \"::ffff:...\"), got \"" + std::string(text) + "\"");
  }
  const int bits = addr->v6 ? 128 : 32;
  Cidr c{*addr, bits};
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string_view::npos) {
      return config_error("expected a prefix length after '/', got \"" + std::string(text) + "\"");
    }
    c.prefix = std::stoi(std::string(p));
    if (c.prefix > bits) {
      return config_error("expected a prefix length 0.." + std::to_string(bits) + ", got \"" + std::string(text) + "\"");
    }
  }
  // Host bits set below the prefix are almost always a typo for another network.
  Cidr masked = c;
  for (int i = 0; i < bits; ++i) {
    if (i >= c.prefix) masked.network.bytes[i / 8] &= uint8_t(~(0x80u >> (i % 8)));
  }
  if (!(masked.network == c.network)) {
    return config_error("expected a network address (host bits zero), got \"" + std::string(text) +
                        "\"; did you mean \"" + masked.to_string() + "\"?");
  }
  return c;
}

bool Cidr::contains(const IpAddress& a) const {
  if (a.v6 != network.v6) return false;
  int left = prefix;
  for (size_t i = 0; left > 0; ++i, left -= 8) {
    const uint8_t mask = left >= 8 ? 0xff : uint8_t(0xff << (8 - left));
    if ((a.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

std::string Cidr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(network.v6 ? AF_INET6 : AF_INET, network.bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

const HbaRule* match(const std::vector<HbaRule>& rules, const HbaRequest& req) {
  for (const HbaRule& rule : rules) {
    if (type_matches(rule.type, req) && any_of_or_all(rule.databases, req.database) &&
        any_of_or_all(rule.users, req.user) && address_matches(rule, req)) {
      return &rule;
    }
  }
  return nullptr;
}

HbaDecision decide(const std::vector<HbaRule>& rules, AuthMethod auth_type, const HbaRequest& req) {
  if (rules.empty()) return {auth_type, nullptr, true};
  if (const HbaRule* rule = match(rules, req)) return {rule->method, rule, true};
  return {AuthMethod::kReject, nullptr, false};
}

std::string describe_connection(const HbaRequest& req) {
  std::string host = req.is_unix_socket ? "[local]" : std::string(req.address);
  return "host \"" + host + "\", user \"" + std::string(req.user) + "\", database \"" + std::string(req.database) +
         "\", " + (req.is_tls ? "SSL encryption" : "no encryption");
}

}  // namespace pgrelay::conf
