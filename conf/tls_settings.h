// TLS settings: client_tls_* (pgrelay as the TLS server for clients) and server_tls_* (as the
// TLS client of PostgreSQL), PgBouncer's key names. Pure values; proxy/tls_context builds the
// OpenSSL contexts from them.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "protocol/result.h"

namespace pgrelay::conf {

// What a client must do. allow and prefer are the same for a server (TLS when the client asks
// for it); require refuses plain clients; verify-ca and verify-full also require a client
// certificate signed by client_tls_ca_file (as in PgBouncer, verify-full checks nothing more).
enum class ClientTlsMode { kDisable, kAllow, kPrefer, kRequire, kVerifyCa, kVerifyFull };
inline constexpr std::array<std::string_view, 6> kClientTlsModeNames = {"disable", "allow",     "prefer",
                                                                        "require", "verify-ca", "verify-full"};

// How pgrelay connects to PostgreSQL, as libpq's sslmode: prefer falls back to plain when the
// server answers 'N'; verify-ca checks the chain against server_tls_ca_file, verify-full also
// the host name (or IP address) of the database entry.
enum class ServerTlsMode { kDisable, kPrefer, kRequire, kVerifyCa, kVerifyFull };
inline constexpr std::array<std::string_view, 5> kServerTlsModeNames = {"disable", "prefer", "require", "verify-ca",
                                                                        "verify-full"};

enum class TlsVersion { kTls10, kTls11, kTls12, kTls13 };

// The protocol versions allowed: a consecutive range.
struct TlsProtocols {
  TlsVersion min = TlsVersion::kTls12;
  TlsVersion max = TlsVersion::kTls13;
  bool operator==(const TlsProtocols&) const = default;
};

// PostgreSQL's ssl_ciphers default (TLS 1.2 and below; TLS 1.3 suites are OpenSSL's defaults).
inline constexpr const char* kDefaultTlsCiphers = "HIGH:MEDIUM:+3DES:!aNULL";

struct ClientTlsSettings {
  ClientTlsMode sslmode = ClientTlsMode::kPrefer;   // in effect only with a certificate and key
  std::string cert_file;                            // resolved against the config file's directory
  std::string key_file;
  std::string ca_file;                              // client certificates are checked against it
  TlsProtocols protocols;
  std::string ciphers = kDefaultTlsCiphers;

  // SSLRequest is answered 'S'.
  bool enabled() const { return sslmode != ClientTlsMode::kDisable && !cert_file.empty() && !key_file.empty(); }
  // A client that does not use TLS is refused.
  bool required() const { return sslmode >= ClientTlsMode::kRequire; }
  bool operator==(const ClientTlsSettings&) const = default;
};

struct ServerTlsSettings {
  ServerTlsMode sslmode = ServerTlsMode::kDisable;  // the default of every database entry
  std::string ca_file;
  std::string cert_file;                            // a client certificate for PostgreSQL
  std::string key_file;
  TlsProtocols protocols;
  std::string ciphers = kDefaultTlsCiphers;
  bool operator==(const ServerTlsSettings&) const = default;
};

const char* to_string(ClientTlsMode m);
const char* to_string(ServerTlsMode m);
const char* to_string(TlsVersion v);   // "TLSv1.2", as OpenSSL names them

// "secure" (TLS 1.2 and 1.3, the default), "all"/"legacy" (1.0 to 1.3), or versions separated by
// commas or spaces ("tlsv1.2,tlsv1.3", "tlsv1.3"), which must be consecutive.
Result<TlsProtocols> parse_tls_protocols(std::string_view text);
// The other way round, as SHOW CONFIG prints it: "secure", "all", or "tlsv1.2,tlsv1.3".
std::string to_config_string(const TlsProtocols& p);

}  // namespace pgrelay::conf
