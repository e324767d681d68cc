// OpenSSL contexts for clients and servers: building them from client_tls_*/server_tls_*, and reloading.
#include "proxy/net/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "proxy/base/log.h"

namespace pgrelay::proxy {
namespace {

using conf::TlsVersion;

int openssl_version(TlsVersion v) {
  switch (v) {
    case TlsVersion::kTls10: return TLS1_VERSION;
    case TlsVersion::kTls11: return TLS1_1_VERSION;
    case TlsVersion::kTls12: return TLS1_2_VERSION;
    case TlsVersion::kTls13: return TLS1_3_VERSION;
  }
  return TLS1_2_VERSION;
}

// Everything on this thread's OpenSSL error queue, oldest first; the queue is left empty.
std::string openssl_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Error tls_error(std::string what) { return Error{"", std::move(what) + ": " + openssl_errors()}; }

SslCtxPtr new_ctx(const SSL_METHOD* method) {
  return SslCtxPtr(SSL_CTX_new(method), [](SSL_CTX* c) { SSL_CTX_free(c); });
}

// What both sides share: versions, ciphers, non-blocking friendly modes.
Result<void> common_setup(SSL_CTX* ctx, const std::string& prefix, const conf::TlsProtocols& protocols,
                          const std::string& ciphers) {
  if (SSL_CTX_set_min_proto_version(ctx, openssl_version(protocols.min)) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, openssl_version(protocols.max)) != 1)
    return tls_error(prefix + "_protocols: OpenSSL refuses the version range");
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1)
    return tls_error(prefix + "_ciphers: no usable cipher in \"" + ciphers + "\"");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Writes resume with the same bytes from a moved buffer; idle connections give their record
  // buffers back (tens of kB each); reads take what the socket has, not one record header at a time.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_read_ahead(ctx, 1);
  return {};
}

Result<void> use_certificate(SSL_CTX* ctx, const std::string& prefix, const std::string& cert,
                             const std::string& key) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
    return tls_error(prefix + "_cert_file " + cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    return tls_error(prefix + "_key_file " + key);
  if (SSL_CTX_check_private_key(ctx) != 1)
    return tls_error(prefix + "_key_file " + key + " does not match " + prefix + "_cert_file " + cert);
  return {};
}

// allow/prefer/require with a CA file: a client certificate is asked for and checked, but one that
// does not verify fails only the "cert" method, not the handshake (as PgBouncer's modes say).
int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

std::string certificate_endpoint_hash(X509* cert) {
  int algo = NID_undef;
  if (!cert || OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo, nullptr) != 1) return {};
  if (algo == NID_md5 || algo == NID_sha1) algo = NID_sha256;   // RFC 5929 section 4.1
  const EVP_MD* md = EVP_get_digestbynid(algo);
  if (!md) return {};
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, hash, &len) != 1) return {};
  return std::string(reinterpret_cast<const char*>(hash), len);
}

namespace {

std::string subject_of(X509* cert) {
  if (!cert) return {};
  char text[512];
  X509_NAME_oneline(X509_get_subject_name(cert), text, sizeof text);
  return text;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Result<std::shared_ptr<const ClientTlsContext>> build_client_tls_context(const conf::ClientTlsSettings& s) {
  if (!s.enabled()) return std::shared_ptr<const ClientTlsContext>();
  ERR_clear_error();
  auto ctx = new_ctx(TLS_server_method());
  if (!ctx) return tls_error("client TLS: SSL_CTX_new");
  if (auto r = common_setup(ctx.get(), "client_tls", s.protocols, s.ciphers); !r.ok()) return r.error();
  if (auto r = use_certificate(ctx.get(), "client_tls", s.cert_file, s.key_file); !r.ok()) return r.error();
  if (!s.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), s.ca_file.c_str(), nullptr) != 1)
      return tls_error("client_tls_ca_file " + s.ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.ca_file.c_str());
    if (!names) return tls_error("client_tls_ca_file " + s.ca_file + " (no certificate names)");
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    if (s.sslmode >= conf::ClientTlsMode::kVerifyCa) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT | SSL_VERIFY_CLIENT_ONCE,
                         nullptr);
    } else {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any_certificate);
    }
  }
  // No resumption (as PostgreSQL): every connection is a full handshake, nothing cached per client.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  static constexpr unsigned char kSessionContext[] = "pgrelay";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof kSessionContext - 1);

  auto out = std::make_shared<ClientTlsContext>();
  X509* cert = SSL_CTX_get0_certificate(ctx.get());
  out->endpoint_hash = certificate_endpoint_hash(cert);
  out->subject = subject_of(cert);
  out->ctx = std::move(ctx);
  return std::shared_ptr<const ClientTlsContext>(std::move(out));
}

Result<SslCtxPtr> build_server_tls_context(const conf::ServerTlsSettings& s) {
  ERR_clear_error();
  auto ctx = new_ctx(TLS_client_method());
  if (!ctx) return tls_error("server TLS: SSL_CTX_new");
  if (auto r = common_setup(ctx.get(), "server_tls", s.protocols, s.ciphers); !r.ok()) return r.error();
  if (!s.ca_file.empty() && SSL_CTX_load_verify_locations(ctx.get(), s.ca_file.c_str(), nullptr) != 1)
    return tls_error("server_tls_ca_file " + s.ca_file);
  if (!s.cert_file.empty()) {
    if (auto r = use_certificate(ctx.get(), "server_tls", s.cert_file, s.key_file); !r.ok()) return r.error();
  }
  return ctx;
}

SSL* new_server_ssl(SSL_CTX* ctx, conf::ServerTlsMode mode, const std::string& host, std::string& error) {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    error = openssl_errors();
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  const bool ip = is_ip_address(host);
  bool ok = ip || SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;   // SNI, as libpq sends it
  SSL_set_verify(ssl, mode >= conf::ServerTlsMode::kVerifyCa ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (ok && mode == conf::ServerTlsMode::kVerifyFull) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
            : SSL_set1_host(ssl, host.c_str()) == 1;
  }
  if (!ok) {
    error = "cannot set the expected host name \"" + host + "\": " + openssl_errors();
    SSL_free(ssl);
    return nullptr;
  }
  return ssl;
}

std::string tls_connection_info(SSL* ssl) {
  if (!ssl || !SSL_is_init_finished(ssl)) return {};
  std::string out = std::string(SSL_get_version(ssl)) + "/" + SSL_get_cipher_name(ssl);
  const int group = SSL_get_negotiated_group(ssl);
  if (group != NID_undef && group != 0) {
    const char* name = OBJ_nid2sn(group);
    if (name) out += std::string("/ECDH=") + name;
  }
  return out;
}

std::string verified_peer_cn(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  X509_NAME* name = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return {};
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (len < 0) return {};
  std::string cn(reinterpret_cast<const char*>(utf8), size_t(len));
  OPENSSL_free(utf8);
  if (cn.find('\0') != std::string::npos) return {};   // "admin\0.evil.com" is nobody
  return cn;
}

Result<void> TlsContexts::load(const conf::Config& config) {
  auto client = build_client_tls_context(config.client_tls);
  if (!client.ok()) return client.error();
  auto server = build_server_tls_context(config.server_tls);
  if (!server.ok()) return server.error();
  std::lock_guard lock(mu_);
  client_ = std::move(*client);
  server_ = std::move(*server);
  return {};
}

void TlsContexts::reload(const conf::Config& config) {
  auto client = build_client_tls_context(config.client_tls);
  auto server = build_server_tls_context(config.server_tls);
  if (!client.ok())
    log_error("reload: ", client.error().message, "; keeping the previous TLS settings for clients");
  if (!server.ok())
    log_error("reload: ", server.error().message, "; keeping the previous TLS settings for servers");
  if (client.ok() && *client) log_info("reload: TLS for clients, certificate ", (*client)->subject);
  std::lock_guard lock(mu_);
  if (client.ok()) client_ = std::move(*client);
  if (server.ok()) server_ = std::move(*server);
}

std::shared_ptr<const ClientTlsContext> TlsContexts::client() const {
  std::lock_guard lock(mu_);
  return client_;
}

SslCtxPtr TlsContexts::server() const {
  std::lock_guard lock(mu_);
  return server_;
}

}  // namespace pgrelay::proxy
