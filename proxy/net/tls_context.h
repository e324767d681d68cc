// OpenSSL contexts built from the config: one to accept TLS clients, one to reach servers; swapped on SIGHUP.
//
// A context is immutable once built and shared (std::shared_ptr) by every connection made with
// it, so a reload only affects connections made afterwards. TlsContexts is thread-safe: workers
// read the current contexts while the control thread swaps them.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

#include "conf/config.h"
#include "protocol/result.h"

namespace pgrelay::proxy {

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// pgrelay as the TLS server for clients.
struct ClientTlsContext {
  SslCtxPtr ctx;
  // tls-server-end-point channel binding data of its certificate (RFC 5929: the certificate's
  // hash, SHA-256 where it is signed with MD5 or SHA-1), for SCRAM-SHA-256-PLUS. Empty when the
  // signature algorithm has no hash to use (then PLUS is not offered).
  std::string endpoint_hash;
  std::string subject;   // the certificate's subject, for logs
};

// Builds the client-facing context from client_tls_*; nullptr when client TLS is off. Errors
// name the key and the file ("client_tls_key_file /etc/x.key: ...").
Result<std::shared_ptr<const ClientTlsContext>> build_client_tls_context(const conf::ClientTlsSettings& s);

// Builds the server-facing context from server_tls_*. Always built (a database entry may turn
// TLS on by itself); verification is chosen per connection (see configure_server_tls).
Result<SslCtxPtr> build_server_tls_context(const conf::ServerTlsSettings& s);

// A new SSL for a connection to `host` under `mode`: the peer is verified for verify-ca and
// verify-full, its name (or IP address) checked for verify-full, SNI sent for host names.
// nullptr with `error` set when OpenSSL refuses.
SSL* new_server_ssl(SSL_CTX* ctx, conf::ServerTlsMode mode, const std::string& host, std::string& error);

// tls-server-end-point channel binding data for `cert` (see ClientTlsContext::endpoint_hash);
// "" when there is no certificate or its signature algorithm has no usable hash.
std::string certificate_endpoint_hash(X509* cert);

// The connection's TLS as PgBouncer's SHOW CLIENTS/SERVERS "tls" column spells it:
// "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519"; "" before the handshake.
std::string tls_connection_info(SSL* ssl);

// The verified client certificate's CN; "" when the client sent none, it did not verify
// against client_tls_ca_file, or its CN is not a plain string.
std::string verified_peer_cn(SSL* ssl);

class TlsContexts {
 public:
  // First load: both contexts or an error (pgrelay does not start).
  Result<void> load(const conf::Config& config);
  // SIGHUP: rebuilds both; one that fails keeps its previous context, and the log says why.
  void reload(const conf::Config& config);

  std::shared_ptr<const ClientTlsContext> client() const;   // nullptr: TLS to clients is off
  SslCtxPtr server() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClientTlsContext> client_;
  SslCtxPtr server_;
};

}  // namespace pgrelay::proxy
