// TLS test helpers: a CA and certificates made with the openssl command, a PostgreSQL with ssl = on,
// and a raw wire-protocol client over TLS (for exact SQLSTATEs and the server's certificate).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace pgrelay::it {

// A temp directory (0755, so the postgres user can reach it) holding, made by `openssl`:
//   ca.pem/.key          "pgrelay test CA"
//   server.pem/.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (pgrelay's certificate)
//   server2.pem/.key     CN=pgrelay-reloaded, same SAN (for the SIGHUP test)
//   pgserver.pem/.key    CN=localhost, SAN DNS:localhost only (PostgreSQL's: 127.0.0.1 fails verify-full)
//   <name>.pem/.key      client certificates CN=<name> for each of `client_names`
//   rogue-ca.pem, rogue.pem/.key   another CA and a localhost certificate it signed
//   rogue-client.pem/.key          CN=tls_cert_user, signed by the rogue CA
// Removed with everything in it on destruction.
class TestCerts {
 public:
  explicit TestCerts(const std::vector<std::string>& client_names);
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  std::string dir_;
};

// A PostgreSQL 15 of its own (scripts/pg-temp) with ssl = on, pgserver.pem as its certificate and
// ca.pem to check client certificates; `hba` lines go before pg-temp's trust lines. Stopped and
// removed on destruction.
class TlsPostgres {
 public:
  TlsPostgres(const TestCerts& certs, const std::string& hba);
  ~TlsPostgres();
  int port() const { return port_; }

 private:
  std::string dir_;
  int port_ = 0;
};

// A blocking client that sends SSLRequest, expects 'S', and runs the TLS handshake (verifying
// nothing, so tests can look at what pgrelay presents). Throws when any of that fails.
class TlsRawClient {
 public:
  // `cert`/`key` (may be empty): a client certificate to present.
  explicit TlsRawClient(int port, const std::string& cert = "", const std::string& key = "");
  ~TlsRawClient();
  TlsRawClient(const TlsRawClient&) = delete;
  TlsRawClient& operator=(const TlsRawClient&) = delete;

  std::string peer_cn() const;                 // the server certificate's CN
  std::string protocol() const;                // "TLSv1.3"
  bool send(const std::string& bytes);
  // Messages until one of type `until` (included), EOF or timeout.
  std::vector<Message> read_messages_until(char until, Millis timeout = 5s);

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string pending_;
};

// The startup of `user` on `database` over a TlsRawClient: the first ErrorResponse, or nullopt
// when it reached ReadyForQuery.
std::optional<ErrorInfo> tls_login_error(int port, const std::string& user, const std::string& database,
                                         const std::string& cert = "", const std::string& key = "");

}  // namespace pgrelay::it
