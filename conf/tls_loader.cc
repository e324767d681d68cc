// The client_tls_* and server_tls_* keys of [pgrelay], and a database's server_tls_sslmode.
#include "conf/tls_loader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace pgrelay::conf {
namespace {

// Reads a file-name key: resolved against the config file's directory, readable, or an error.
bool read_file_key(TableReader& r, const Config& cfg, std::string_view key, std::string& out) {
  std::string text;
  if (!r.read_string(key, text)) return false;
  if (text.empty()) {
    r.error(key, "expected the path of a PEM file, got \"\"");
    return false;
  }
  std::filesystem::path path(text);
  if (path.is_relative() && !cfg.source.empty()) path = std::filesystem::path(cfg.source).parent_path() / path;
  const std::string resolved = path.lexically_normal().string();
  std::error_code ec;
  if (std::filesystem::is_directory(resolved, ec)) {
    r.error(key, "expected a PEM file, got the directory \"" + resolved + "\"");
    return false;
  }
  std::ifstream in(resolved, std::ios::binary);
  if (!in) {
    r.error(key, "cannot read \"" + resolved + "\": " + std::strerror(errno));
    return false;
  }
  out = resolved;
  return true;
}

void read_protocols(TableReader& r, std::string_view key, TlsProtocols& out) {
  std::string text;
  if (!r.read_string(key, text)) return;
  auto parsed = parse_tls_protocols(text);
  if (parsed.ok()) out = *parsed;
  else r.error(key, parsed.error().message);
}

void read_ciphers(TableReader& r, std::string_view key, std::string& out) {
  std::string text;
  if (!r.read_string(key, text)) return;
  if (text.empty()) r.error(key, "expected an OpenSSL cipher list such as \"HIGH:!aNULL\", got \"\"");
  else out = text;
}

// A certificate and its key come together: blames the one that is set.
void check_pair(TableReader& r, std::string_view cert_key, std::string_view key_key) {
  if (r.has(cert_key) && !r.has(key_key))
    r.error(cert_key, "expected " + std::string(key_key) + " too (a certificate needs its private key), got none");
  if (r.has(key_key) && !r.has(cert_key))
    r.error(key_key, "expected " + std::string(cert_key) + " too (a private key needs its certificate), got none");
}

void read_client_tls(TableReader& r, Config& cfg) {
  ClientTlsSettings& t = cfg.client_tls;
  size_t mode = 0;
  const bool has_mode = r.read_choice("client_tls_sslmode", kClientTlsModeNames, mode);
  if (has_mode) t.sslmode = ClientTlsMode(mode);
  read_file_key(r, cfg, "client_tls_cert_file", t.cert_file);
  read_file_key(r, cfg, "client_tls_key_file", t.key_file);
  read_file_key(r, cfg, "client_tls_ca_file", t.ca_file);
  read_protocols(r, "client_tls_protocols", t.protocols);
  read_ciphers(r, "client_tls_ciphers", t.ciphers);
  check_pair(r, "client_tls_cert_file", "client_tls_key_file");

  const std::string mode_text = "client_tls_sslmode \"" + std::string(to_string(t.sslmode)) + "\"";
  if (has_mode && t.required() && !(r.has("client_tls_cert_file") && r.has("client_tls_key_file"))) {
    r.error("client_tls_sslmode", "expected client_tls_cert_file and client_tls_key_file with " + mode_text +
                                      " (clients cannot use TLS without them), got none");
  }
  if (has_mode && t.sslmode >= ClientTlsMode::kVerifyCa && !r.has("client_tls_ca_file")) {
    r.error("client_tls_sslmode", "expected client_tls_ca_file with " + mode_text +
                                      " (client certificates are checked against it), got none");
  }
}

void read_server_tls(TableReader& r, Config& cfg) {
  ServerTlsSettings& t = cfg.server_tls;
  size_t mode = 0;
  const bool has_mode = r.read_choice("server_tls_sslmode", kServerTlsModeNames, mode);
  if (has_mode) t.sslmode = ServerTlsMode(mode);
  read_file_key(r, cfg, "server_tls_ca_file", t.ca_file);
  read_file_key(r, cfg, "server_tls_cert_file", t.cert_file);
  read_file_key(r, cfg, "server_tls_key_file", t.key_file);
  read_protocols(r, "server_tls_protocols", t.protocols);
  read_ciphers(r, "server_tls_ciphers", t.ciphers);
  check_pair(r, "server_tls_cert_file", "server_tls_key_file");
  if (has_mode && t.sslmode >= ServerTlsMode::kVerifyCa && !r.has("server_tls_ca_file")) {
    r.error("server_tls_sslmode", "expected server_tls_ca_file with server_tls_sslmode \"" +
                                      std::string(to_string(t.sslmode)) +
                                      "\" (the server's certificate is checked against it), got none");
  }
}

}  // namespace

void read_tls_settings(TableReader& r, Config& cfg) {
  read_client_tls(r, cfg);
  read_server_tls(r, cfg);
}

void read_database_tls(TableReader& r, const Config& cfg, DatabaseEntry& entry) {
  entry.server_tls_sslmode = cfg.server_tls.sslmode;
  size_t mode = 0;
  if (!r.read_choice("server_tls_sslmode", kServerTlsModeNames, mode)) return;
  entry.server_tls_sslmode = ServerTlsMode(mode);
  if (entry.server_tls_sslmode >= ServerTlsMode::kVerifyCa && cfg.server_tls.ca_file.empty()) {
    r.error("server_tls_sslmode", "expected server_tls_ca_file in [pgrelay] with server_tls_sslmode \"" +
                                      std::string(to_string(entry.server_tls_sslmode)) +
                                      "\" (the server's certificate is checked against it), got none");
  }
}

}  // namespace pgrelay::conf
