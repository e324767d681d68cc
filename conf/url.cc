// postgresql:// URLs (libpq's URI form, one host or several) into their parts.
//
// Errors name the part that is wrong but never echo the user info: a URL's password must not
// end up in a log line because it had a typo next to it.
#include "conf/url.h"

#include <optional>
#include <string>

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes `in` into `out`. A NUL byte is refused: every consumer ends up in a C string.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;  // needs two more characters
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// `part` names what is decoded, for the error; `show` is false for secrets.
std::optional<pgrelay::Error> decode_part(std::string_view part, std::string_view in,
                                          std::string& out, bool show) {
  if (percent_decode(in, out)) return std::nullopt;
  std::string msg(part);
  if (show) msg += " '" + std::string(in) + "'";
  msg += " has an invalid percent-escape (expected %XX with two hex digits, not %00)";
  return config_error(std::move(msg));
}

std::optional<pgrelay::Error> parse_port(std::string_view text, int& port) {
  if (text.empty()) return config_error("port is empty (drop the ':' to use the default port)");
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return config_error("port '" + std::string(text) + "' is not a number");
    }
    value = value * 10 + (c - '0');
    if (value > 65535) break;
  }
  if (value < 1 || value > 65535) {
    return config_error("port '" + std::string(text) + "' is out of range 1..65535");
  }
  port = value;
  return std::nullopt;
}

std::optional<pgrelay::Error> parse_host_port(std::string_view hostport, PostgresUrl& url) {
  std::string_view host = hostport;
  std::optional<std::string_view> port;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return config_error("host: '[' without a closing ']'");
    host = hostport.substr(1, close - 1);
    if (host.empty()) return config_error("host: empty IPv6 address in '[]'");
    const std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return config_error("host: unexpected '" + std::string(rest) + "' after ']'");
      }
      port = rest.substr(1);
    }
    url.host = std::string(host);  // brackets are not part of the address
  } else {
    const size_t colon = hostport.find(':');
    if (colon != std::string_view::npos) {
      if (hostport.find(':', colon + 1) != std::string_view::npos) {
        return config_error("host: an IPv6 address must be in brackets, as in [::1]:5432");
      }
      host = hostport.substr(0, colon);
      port = hostport.substr(colon + 1);
    }
    if (host.find(',') != std::string_view::npos) {
      return config_error("host: several hosts are not supported");
    }
    // Empty host keeps the default, like libpq's "postgresql:///dbname".
    if (!host.empty()) {
      if (auto err = decode_part("host", host, url.host, true)) return err;
      if (url.host.empty()) return config_error("host is empty");
    }
  }
  if (port) return parse_port(*port, url.port);
  return std::nullopt;
}

std::optional<pgrelay::Error> parse_params(std::string_view query, PostgresUrl& url) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;  // "?a=1&&b=2" and a trailing '&' are harmless
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return config_error("parameter '" + std::string(pair) + "' is not key=value");
    }
    std::string key, value;
    if (auto err = decode_part("parameter name", pair.substr(0, eq), key, true)) return err;
    if (auto err = decode_part("parameter '" + key + "'", pair.substr(eq + 1), value, true)) {
      return err;
    }
    url.params[key] = value;
  }
  return std::nullopt;
}

}  // namespace

pgrelay::Result<PostgresUrl> parse_postgres_url(std::string_view text) {
  std::string_view rest;
  if (text.starts_with("postgresql://")) {
    rest = text.substr(13);
  } else if (text.starts_with("postgres://")) {
    rest = text.substr(11);
  } else {
    for (unsigned char c : text) {
      if (c < 0x20 || c == 0x7f) return config_error("URL contains a control character");
    }
    const size_t sep = text.find("://");
    if (sep == std::string_view::npos) {
      return config_error("expected a URL starting with postgresql:// or postgres://");
    }
    return config_error("scheme '" + std::string(text.substr(0, sep)) +
                        "' is not postgresql:// or postgres://");
  }
  return parse_url_after_scheme(rest, PostgresUrl{});
}

pgrelay::Result<PostgresUrl> parse_url_after_scheme(std::string_view rest, PostgresUrl defaults) {
  for (unsigned char c : rest) {
    if (c < 0x20 || c == 0x7f) return config_error("URL contains a control character");
  }
  if (rest.find('#') != std::string_view::npos) {
    return config_error("URL has a '#fragment', which means nothing here");
  }

  PostgresUrl url = std::move(defaults);
  const size_t auth_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, auth_end);
  rest = auth_end == std::string_view::npos ? std::string_view{} : rest.substr(auth_end);

  // The last '@' ends the user info: a password with a raw '@' still parses.
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    if (auto err = decode_part("user", userinfo.substr(0, colon), url.user, true)) return *err;
    if (colon != std::string_view::npos) {
      if (auto err = decode_part("password", userinfo.substr(colon + 1), url.password, false)) {
        return *err;
      }
    }
  }
  // libpq's multi-host form: "a:5432,b:5433". Each host parses as a lone one; a consumer that
  // takes one server refuses more_hosts.
  const size_t comma = authority.find(',');
  if (auto err = parse_host_port(authority.substr(0, comma), url)) return *err;
  for (size_t from = comma; from != std::string_view::npos;) {
    const size_t next = authority.find(',', from + 1);
    PostgresUrl other;
    if (auto err = parse_host_port(authority.substr(from + 1, next == std::string_view::npos ? next : next - from - 1), other))
      return *err;
    url.more_hosts.push_back(PostgresUrl::Host{.host = other.host, .port = other.port});
    from = next;
  }

  std::string_view path = rest.substr(0, rest.find('?'));
  if (!path.empty()) {
    path.remove_prefix(1);  // the '/'
    if (auto err = decode_part("dbname", path, url.dbname, true)) return *err;
  }
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    if (auto err = parse_params(rest.substr(q + 1), url)) return *err;
  }
  return url;
}

}  // namespace pgrelay::conf
