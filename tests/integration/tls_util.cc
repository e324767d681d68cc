// TLS test helpers: certificates from the openssl command, a PostgreSQL with ssl = on, a raw TLS client.
#include "tls_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace pgrelay::it {
namespace {

// Every key is EC P-256: quick to make, and its certificates are signed with ECDSA-SHA256, whose
// hash the tls-server-end-point channel binding uses as is.
constexpr const char* kMakeCerts = R"(set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ca() { key "$1"; openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3 -subj "/CN=$2"; }
leaf() {   # leaf NAME CN CA [SAN]
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  echo "basicConstraints=CA:FALSE" > "$1.ext"
  [ -z "${4:-}" ] || echo "subjectAltName=$4" >> "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -out "$1.pem" -days 3 -extfile "$1.ext"
}
ca ca "pgrelay test CA"
leaf server localhost ca "DNS:localhost,IP:127.0.0.1"
leaf server2 pgrelay-reloaded ca "DNS:localhost,IP:127.0.0.1"
leaf pgserver localhost ca "DNS:localhost"
ca rogue-ca "rogue CA"
leaf rogue localhost rogue-ca "DNS:localhost,IP:127.0.0.1"
leaf rogue-client tls_cert_user rogue-ca
for name in $CLIENTS; do leaf "$name" "$name" ca; done
rm -f ./*.csr ./*.ext ./*.srl
chmod 600 ./*.key
chmod 644 ./*.pem
)";

std::string make_temp_dir(const char* prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  ::chmod(tmpl.c_str(), 0755);
  return tmpl;
}

std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    out += text;
    out += "; ";
  }
  return out;
}

}  // namespace

TestCerts::TestCerts(const std::vector<std::string>& client_names) : dir_(make_temp_dir("pgrelay-it-tls")) {
  std::string names;
  for (const auto& n : client_names) names += n + " ";
  write_file(dir_ + "/make.sh", kMakeCerts);
  auto made = run_command("cd " + shell_quote(dir_) + " && CLIENTS=" + shell_quote(names) + " bash make.sh", 60s);
  if (made.exit_code != 0) throw std::runtime_error("making certificates failed: " + made.output);
}

TestCerts::~TestCerts() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

TlsPostgres::TlsPostgres(const TestCerts& certs, const std::string& hba) {
  static std::atomic<int> counter{0};
  dir_ = "/tmp/pgrelay-it-tlspg-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const std::string pg_temp = std::string(PGRELAY_SOURCE_DIR) + "/scripts/pg-temp";
  // PostgreSQL wants its key owned by the user it runs as, mode 0600.
  const std::string certs_dir = dir_ + "-certs";
  const bool root = ::geteuid() == 0;
  std::string setup = "set -e; mkdir -p " + certs_dir + "; cp " + certs.path("pgserver.pem") + " " +
                      certs.path("pgserver.key") + " " + certs.path("ca.pem") + " " + certs_dir + "/; chmod 700 " +
                      certs_dir + "; chmod 600 " + certs_dir + "/pgserver.key";
  if (root) setup += "; chown -R postgres: " + certs_dir;
  auto prepared = run_command(setup, 30s);
  if (prepared.exit_code != 0) throw std::runtime_error("preparing PostgreSQL's certificates: " + prepared.output);
  write_file(dir_ + "-certs.conf", "ssl = on\nssl_cert_file = '" + certs_dir + "/pgserver.pem'\nssl_key_file = '" +
                                       certs_dir + "/pgserver.key'\nssl_ca_file = '" + certs_dir + "/ca.pem'\n");
  write_file(dir_ + "-certs.hba", hba);
  auto started = run_command("PGTEMP_CONF=\"$(cat " + dir_ + "-certs.conf)\" PGTEMP_HBA=\"$(cat " + dir_ +
                                 "-certs.hba)\" " + pg_temp + " start " + dir_,
                             120s);
  if (started.exit_code != 0) throw std::runtime_error("starting a PostgreSQL with ssl = on: " + started.output);
  port_ = std::stoi(started.output);
}

TlsPostgres::~TlsPostgres() {
  const std::string pg_temp = std::string(PGRELAY_SOURCE_DIR) + "/scripts/pg-temp";
  run_command(pg_temp + " stop " + dir_ + "; rm -rf " + dir_ + "-certs " + dir_ + "-certs.conf " + dir_ + "-certs.hba",
              60s);
}

TlsRawClient::TlsRawClient(int port, const std::string& cert, const std::string& key) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{5, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    throw std::runtime_error("TlsRawClient: connect failed: " + std::string(std::strerror(errno)));
  }
  const std::string request = ssl_request();
  char answer = 0;
  if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size()) ||
      ::recv(fd_, &answer, 1, 0) != 1 || answer != 'S') {
    ::close(fd_);
    throw std::runtime_error(std::string("TlsRawClient: SSLRequest not answered 'S' (got '") + answer + "')");
  }
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!cert.empty() && (SSL_CTX_use_certificate_file(ctx_, cert.c_str(), SSL_FILETYPE_PEM) != 1 ||
                        SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1)) {
    throw std::runtime_error("TlsRawClient: cannot load " + cert + ": " + ssl_errors());
  }
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  if (SSL_connect(ssl_) != 1) throw std::runtime_error("TlsRawClient: handshake failed: " + ssl_errors());
}

TlsRawClient::~TlsRawClient() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

std::string TlsRawClient::peer_cn() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  return cn;
}

std::string TlsRawClient::protocol() const { return SSL_get_version(ssl_); }

bool TlsRawClient::send(const std::string& bytes) {
  size_t written = 0;
  return SSL_write_ex(ssl_, bytes.data(), bytes.size(), &written) == 1 && written == bytes.size();
}

std::vector<Message> TlsRawClient::read_messages_until(char until, Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<Message> out;
  for (;;) {
    size_t off = 0;
    while (pending_.size() - off >= 5) {
      uint32_t len = 0;
      std::memcpy(&len, pending_.data() + off + 1, 4);   // unaligned: no uint32_t* load
      len = ntohl(len);
      if (len < 4 || pending_.size() - off - 1 < len) break;
      out.push_back(Message{pending_[off], pending_.substr(off + 5, len - 4)});
      off += 1 + len;
      if (out.back().type == until || out.back().type == 'E') {
        pending_.erase(0, off);
        return out;
      }
    }
    pending_.erase(0, off);
    if (std::chrono::steady_clock::now() > deadline) return out;
    char buf[16384];
    size_t n = 0;
    if (SSL_read_ex(ssl_, buf, sizeof buf, &n) != 1) return out;   // EOF, error or the 5 s receive timeout
    pending_.append(buf, n);
  }
}

std::optional<ErrorInfo> tls_login_error(int port, const std::string& user, const std::string& database,
                                         const std::string& cert, const std::string& key) {
  TlsRawClient client(port, cert, key);
  if (!client.send(startup_packet({{"user", user}, {"database", database}})))
    throw std::runtime_error("tls_login_error: send failed");
  auto messages = client.read_messages_until('Z');
  if (auto e = first_error(messages)) return e;
  if (messages.empty() || messages.back().type != 'Z')
    throw std::runtime_error("tls_login_error: neither an error nor ReadyForQuery for " + user);
  return std::nullopt;
}

}  // namespace pgrelay::it
