// Integration-test harness, the raw wire protocol: a blocking TCP client and the bytes it sends
// and reads (startup packets, typed messages, backend messages and their errors).
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace pgrelay::it {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Appends the whole backend messages at the front of `bytes` to `out`, up to and including the
// first of type `until` (0: all of them); returns how many bytes they took.
size_t split_messages(const std::string& bytes, std::vector<Message>& out, char until = 0) {
  size_t off = 0;
  while (bytes.size() - off >= 5) {
    const uint32_t len = load_be32(bytes.data() + off + 1);
    if (len < 4 || bytes.size() - off - 1 < len) break;
    out.push_back(Message{bytes[off], bytes.substr(off + 5, len - 4)});
    off += 1 + len;
    if (until != 0 && out.back().type == until) break;
  }
  return off;
}

}  // namespace

// ---- raw wire protocol -----------------------------------------------------------------------

RawClient::RawClient(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd_);
    throw std::runtime_error("RawClient: connect to port " + std::to_string(port) + ": " + std::strerror(e));
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

bool RawClient::read_some(std::string& out, Millis timeout, bool* eof) {
  pollfd p{fd_, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r <= 0) return false;
  char buf[65536];
  ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
  if (n > 0) {
    out.append(buf, static_cast<size_t>(n));
    return true;
  }
  if (n < 0 && errno == EINTR) return true;
  if (eof) *eof = true;  // 0 (orderly close) or an error such as ECONNRESET
  return false;
}

std::string RawClient::read_exact(size_t n, Millis timeout) {
  auto deadline = Clock::now() + timeout;
  std::string out = std::move(pending_);
  pending_.clear();
  bool eof = false;
  while (out.size() < n && !eof && remaining_ms(deadline) > 0) {
    read_some(out, Millis(remaining_ms(deadline)), &eof);
  }
  if (out.size() > n) {
    pending_ = out.substr(n);
    out.resize(n);
  }
  return out;
}

std::string RawClient::read_until_eof(Millis timeout, bool* eof) {
  auto deadline = Clock::now() + timeout;
  std::string out = std::move(pending_);
  pending_.clear();
  bool got_eof = false;
  while (!got_eof && remaining_ms(deadline) > 0) {
    read_some(out, Millis(remaining_ms(deadline)), &got_eof);
  }
  if (eof) *eof = got_eof;
  return out;
}

std::vector<Message> RawClient::read_messages_until(char until, Millis timeout, bool* eof) {
  auto deadline = Clock::now() + timeout;
  std::vector<Message> out;
  bool got_eof = false;
  for (;;) {
    // Take every complete message out of pending_.
    const size_t taken = out.size();
    pending_.erase(0, split_messages(pending_, out, until));
    if (out.size() > taken && out.back().type == until) {
      if (eof) *eof = false;
      return out;
    }
    if (got_eof || remaining_ms(deadline) == 0) break;
    read_some(pending_, Millis(remaining_ms(deadline)), &got_eof);
  }
  if (eof) *eof = got_eof;
  return out;
}

void RawClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string be32(uint32_t v) {
  uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}

uint32_t load_be32(const char* p) {
  // Not *reinterpret_cast<const uint32_t*>: a message's length sits at any offset (UBSan).
  uint32_t n;
  std::memcpy(&n, p, 4);
  return ntohl(n);
}

std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params, uint32_t version) {
  std::string body = be32(version);
  for (const auto& [k, v] : params) {
    body += k;
    body += '\0';
    body += v;
    body += '\0';
  }
  body += '\0';
  return be32(static_cast<uint32_t>(body.size() + 4)) + body;
}

std::string ssl_request() { return be32(8) + be32(80877103); }
std::string gssenc_request() { return be32(8) + be32(80877104); }

std::string typed_message(char type, const std::string& payload) {
  return std::string(1, type) + be32(static_cast<uint32_t>(payload.size() + 4)) + payload;
}

std::string query_message(const std::string& sql) { return typed_message('Q', sql + std::string(1, '\0')); }

void raw_login(RawClient& c, const std::string& db, const std::string& user) {
  if (!c.send(startup_packet({{"user", user}, {"database", db}}))) throw std::runtime_error("raw_login: send failed");
  auto msgs = c.read_messages_until('Z', std::chrono::seconds(5));
  if (auto e = first_error(msgs)) throw std::runtime_error("raw_login: " + e->sqlstate + " " + e->message);
  if (msgs.empty() || msgs.back().type != 'Z') throw std::runtime_error("raw_login: no ReadyForQuery");
}

std::vector<Message> parse_messages(const std::string& bytes) {
  std::vector<Message> out;
  (void)split_messages(bytes, out);
  return out;
}

std::optional<ErrorInfo> parse_error(const Message& m) {
  if (m.type != 'E' && m.type != 'N') return std::nullopt;
  ErrorInfo e;
  e.type = m.type;
  size_t off = 0;
  while (off < m.payload.size() && m.payload[off] != '\0') {
    char code = m.payload[off++];
    size_t end = m.payload.find('\0', off);
    if (end == std::string::npos) break;
    e.fields[code] = m.payload.substr(off, end - off);
    off = end + 1;
  }
  e.severity = e.fields.count('V') ? e.fields['V'] : e.fields['S'];
  e.sqlstate = e.fields['C'];
  e.message = e.fields['M'];
  return e;
}

std::optional<ErrorInfo> first_error(const std::vector<Message>& messages) {
  for (const auto& m : messages) {
    if (m.type == 'E') return parse_error(m);
  }
  return std::nullopt;
}

std::optional<ErrorInfo> first_error(const std::string& bytes) { return first_error(parse_messages(bytes)); }

}  // namespace pgrelay::it
