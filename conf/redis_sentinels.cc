// Redis Sentinel addresses: "host[:port]" one by one or separated by commas.
#include "conf/redis_sentinels.h"

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

bool parse_port(std::string_view text, int& port) {
  if (text.empty() || text.size() > 5) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return false;
  port = value;
  return true;
}

bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (unsigned char c : host) {
    if (c <= 0x20 || c == 0x7f || c == ',' || c == '/' || c == '@' || c == '[' || c == ']') return false;
  }
  return true;
}

pgrelay::Error bad_address(std::string_view text) {
  return config_error("expected a sentinel as host:port (or [IPv6]:port; port 26379 when absent), got \"" +
                      std::string(text) + "\"");
}

}  // namespace

pgrelay::Result<SentinelAddress> parse_sentinel_address(std::string_view text) {
  SentinelAddress out;
  std::string_view host = text;
  if (text.starts_with('[')) {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return bad_address(text);
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && (!rest.starts_with(':') || !parse_port(rest.substr(1), out.port))) return bad_address(text);
  } else if (const size_t colon = text.find(':'); colon != std::string_view::npos) {
    if (text.find(':', colon + 1) == std::string_view::npos) {
      host = text.substr(0, colon);
      if (!parse_port(text.substr(colon + 1), out.port)) return bad_address(text);
    }   // else: a bare IPv6 address, Sentinel's default port
  }
  if (!valid_host(host)) return bad_address(text);
  out.host = std::string(host);
  return out;
}

pgrelay::Result<std::vector<SentinelAddress>> parse_sentinel_list(const std::vector<std::string>& items) {
  std::vector<SentinelAddress> out;
  for (const std::string& item : items) {
    std::string_view rest = item;
    for (;;) {
      const size_t comma = rest.find(',');
      std::string_view part = rest.substr(0, comma);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
      auto address = parse_sentinel_address(part);
      if (!address) return address.error();
      out.push_back(std::move(address).value());
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

std::string to_string(const SentinelAddress& a) {
  const std::string host = a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host;
  return host + ":" + std::to_string(a.port);
}

}  // namespace pgrelay::conf
