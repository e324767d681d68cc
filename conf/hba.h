// Client authentication rules ([[hba]] tables): which method a connection must pass, as pg_hba.conf.
//
// https://www.postgresql.org/docs/15/auth-pg-hba-conf.html — rules are tried in order and the
// first whose connection type, database, user and address all match decides. Pure values and
// functions: the proxy describes a connection as an HbaRequest and asks decide().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace pgrelay::conf {

// How a client proves who it is. kCert (client certificate CN = user) and kPassword (cleartext)
// need TLS: proxy/ refuses them on a connection that is not (HbaRequest::is_tls).
enum class AuthMethod { kScramSha256, kMd5, kPassword, kTrust, kReject, kCert };

inline constexpr std::array<std::string_view, 6> kAuthMethodNames = {"scram-sha-256", "md5", "password",
                                                                     "trust",         "reject", "cert"};
inline constexpr std::array<AuthMethod, 6> kAuthMethodValues = {AuthMethod::kScramSha256, AuthMethod::kMd5,
                                                                AuthMethod::kPassword,    AuthMethod::kTrust,
                                                                AuthMethod::kReject,      AuthMethod::kCert};
const char* to_string(AuthMethod m);

// An IP address; IPv4 is kept as such (also when it arrives IPv4-mapped, "::ffff:10.1.2.3").
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};   // IPv4 in the first 4

  static std::optional<IpAddress> parse(std::string_view text);
  bool operator==(const IpAddress&) const = default;
};

// An IPv4 or IPv6 network, "10.0.0.0/8" or "::1/128"; a bare address is a single host.
struct Cidr {
  IpAddress network;
  int prefix = 0;

  // Errors name what is wrong ("prefix 33 is more than 32 bits", "host bits set: did you mean
  // 10.0.0.0/8?"). Host names are not resolved.
  static Result<Cidr> parse(std::string_view text);
  bool contains(const IpAddress& a) const;   // false across families
  std::string to_string() const;
  bool operator==(const Cidr&) const = default;
};

enum class HbaConnType { kHost, kHostSsl, kHostNoSsl, kLocal };
inline constexpr std::array<std::string_view, 4> kHbaConnTypeNames = {"host", "hostssl", "hostnossl", "local"};

struct HbaRule {
  HbaConnType type = HbaConnType::kHost;   // host: any TCP connection, TLS or not
  std::vector<std::string> databases;      // empty: all
  std::vector<std::string> users;          // empty: all
  std::vector<Cidr> addresses;             // empty: all
  AuthMethod method = AuthMethod::kScramSha256;
  int number = 0;                          // 1-based position among the [[hba]] tables
  uint32_t line = 0;                       // where it starts in the config file

  bool operator==(const HbaRule&) const = default;
};

// The connection being authenticated.
struct HbaRequest {
  std::string_view address;    // client IP as text; ignored for Unix sockets
  bool is_unix_socket = false;
  bool is_tls = false;
  std::string_view database;   // as the client asked for it
  std::string_view user;
};

// The first rule that matches, or nullptr.
const HbaRule* match(const std::vector<HbaRule>& rules, const HbaRequest& req);

struct HbaDecision {
  AuthMethod method = AuthMethod::kReject;
  const HbaRule* rule = nullptr;   // the rule that decided; nullptr when auth_type did or nothing matched
  bool matched = true;             // false: rules exist and none matched (the connection is rejected)
};

// No rules: every connection gets `auth_type`. Rules: the first match's method, or a rejection.
HbaDecision decide(const std::vector<HbaRule>& rules, AuthMethod auth_type, const HbaRequest& req);

// PostgreSQL's wording for a connection in authentication errors:
// host "10.1.2.3", user "app", database "app", no encryption   (or SSL encryption; or [local]).
std::string describe_connection(const HbaRequest& req);

}  // namespace pgrelay::conf
