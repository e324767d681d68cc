// The libpq parameters of postgresql:// URLs that pgrelay takes, and where the others' jobs are done.
#include "conf/url_params.h"

#include <string_view>

#include "conf/conf_error.h"

namespace pgrelay::conf {
namespace {

// libpq parameters users paste, and the pgrelay setting that does the same thing instead.
struct Elsewhere { std::string_view param, instead; };
constexpr Elsewhere kElsewhere[] = {
    {"sslrootcert", "server_tls_ca_file in [pgrelay] (one file for every server connection)"},
    {"sslcert", "server_tls_cert_file in [pgrelay]"},
    {"sslkey", "server_tls_key_file in [pgrelay]"},
    {"sslpassword", "an unencrypted server_tls_key_file in [pgrelay]"},
    {"sslcrl", "nothing: pgrelay does not check revocation lists"},
    {"sslcompression", "nothing: TLS compression is never used"},
    {"ssl_min_protocol_version", "server_tls_protocols in [pgrelay]"},
    {"ssl_max_protocol_version", "server_tls_protocols in [pgrelay]"},
    {"connect_timeout", "server_connect_timeout in [pgrelay]"},
    {"application_name", "nothing: each client's own application_name reaches the server"},
    {"fallback_application_name", "nothing: each client's own application_name reaches the server"},
    {"options", "the clients' own startup options, or SET in server_reset_query's place"},
    {"target_session_attrs", "one url per [databases.NAME] entry (one server each)"},
    {"host", "the URL's host part (one host per entry)"},
    {"port", "the URL's port part"},
    {"dbname", "the URL's path"},
    {"user", "the URL's user part"},
    {"password", "the URL's password part, or password in the entry"},
    {"keepalives", "nothing: it is not configurable per URL"},
    {"gssencmode", "nothing: pgrelay does not use GSSAPI"},
    {"krbsrvname", "nothing: pgrelay does not use GSSAPI"},
    {"channel_binding", "nothing: pgrelay binds SCRAM to TLS whenever the server offers it"},
    {"passfile", "password in the entry, or the URL's password part"},
    {"service", "the URL's parts (pg_service.conf is not read)"},
};

}  // namespace

pgrelay::Result<UrlParams> read_url_params(const std::map<std::string, std::string>& params) {
  UrlParams out;
  for (const auto& [key, value] : params) {
    if (key == "sslmode") {
      for (size_t i = 0; i < kServerTlsModeNames.size(); ++i)
        if (value == kServerTlsModeNames[i]) out.sslmode = ServerTlsMode(i);
      if (out.sslmode) continue;
      std::string msg = "?sslmode=" + value + ": expected disable, prefer, require, verify-ca or verify-full";
      if (value == "allow") msg += " (pgrelay never tries without TLS first: use prefer or disable)";
      return config_error(std::move(msg));
    }
    std::string msg = "?" + key + "= is not taken in a URL here";
    for (const auto& e : kElsewhere)
      if (key == e.param) msg += ": use " + std::string(e.instead);
    if (msg.find(": use") == std::string::npos) msg += " (only ?sslmode= is)";
    return config_error(std::move(msg));
  }
  return out;
}

}  // namespace pgrelay::conf
