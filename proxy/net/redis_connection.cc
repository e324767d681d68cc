// Redis connections: RESP through hiredis' codec, bytes through Transport, one reader and one
// writer coroutine per connection, calls matched to replies in order.
#include "proxy/net/redis_connection.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <deque>
#include <string>

#include "proxy/base/log.h"
#include "proxy/net/connect.h"
#include "proxy/net/redis_sentinel.h"
#include "proxy/net/resp_reader.h"
#include "proxy/net/transport.h"

namespace pgrelay::proxy {
namespace {

constexpr size_t kReadChunk = 16 * 1024;

// Appends one command in RESP (hiredis' encoder: binary-safe, lengths from the views).
bool encode(const RedisConnection::Args& args, std::string& out) {
  if (args.empty()) return false;   // "*0\r\n" gets no reply: it would shift every later one
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.empty() ? "" : a.data());
    lengths.push_back(a.size());
  }
  char* cmd = nullptr;
  const int n = redisFormatCommandArgv(&cmd, int(argv.size()), argv.data(), lengths.data());
  if (n < 0 || cmd == nullptr) return false;
  out.append(cmd, size_t(n));
  redisFreeCommand(cmd);
  return true;
}

void log_failure(const std::exception_ptr& e) {
  if (e) log_exception(e, "Redis connection");
}

}  // namespace

const char* to_string(RedisStatus s) {
  switch (s) {
    case RedisStatus::kOk: return "ok";
    case RedisStatus::kTimeout: return "timeout";
    case RedisStatus::kConnectionLost: return "connection lost";
    case RedisStatus::kProtocol: return "protocol error";
    case RedisStatus::kLogin: return "login refused";
  }
  return "?";
}

// One caller's commands and, as they come, their replies.
struct RedisConnection::Call {
  explicit Call(const asio::any_io_executor& ex) : done(ex) {}

  std::string request;              // the commands, encoded
  size_t expected = 0;              // replies owed
  std::vector<RedisResult> results;
  Event done;                       // notified when every reply (or a failure) is in
  std::vector<const char*> login;   // AUTH/SELECT/ROLE: their names; a refusal fails the link
  bool written = false;
  bool abandoned = false;           // its caller returned (timeout): never written, or replies dropped
};

// One connection, from its opening to its failure; never reused after that. Its coroutines
// hold it; RedisConnection drops it when it fails.
struct RedisConnection::Link : std::enable_shared_from_this<Link> {
  Link(const asio::any_io_executor& ex, std::shared_ptr<const RedisOptions> o, std::shared_ptr<RedisStats> s)
      : io(StreamSocket(ex)), options(std::move(o)), stats(std::move(s)), endpoint(options->endpoint) {}

  ServerTransport io;
  std::shared_ptr<const RedisOptions> options;
  std::shared_ptr<RedisStats> stats;
  RespReader reader;
  std::deque<std::shared_ptr<Call>> calls;   // in write order: the written ones first
  bool connected = false;                    // socket (and TLS) up: calls are written
  bool writing = false;
  bool broken = false;
  bool connect_timed_out = false;
  conf::RedisEndpoint endpoint;              // options' endpoint, at the master's address with Sentinel
  uint64_t generation = 0;                   // with Sentinel: the master's generation it connects to
  bool resolving = false;                    // asking the sentinels: kept whatever the generation

  std::string where() const { return "Redis " + conf::redacted_redis_url(endpoint); }

  conf::SentinelAddress address() const { return {.host = endpoint.host, .port = endpoint.port}; }

  void enqueue(std::shared_ptr<Call> call) {
    calls.push_back(std::move(call));
    start_writing();
  }

  void start_writing() {
    if (writing || broken || !connected) return;
    writing = true;
    asio::co_spawn(io.get_executor(), write_loop(shared_from_this()), log_failure);
  }

  // Ends the link: the socket closes (the reader and writer stop), every waiting call gets `status`.
  void fail(RedisStatus status, const std::string& why) {
    if (broken) return;
    broken = true;
    if (connected) ++stats->disconnects;
    log_debug(where(), ": ", to_string(status), ": ", why);
    error_code ignored;
    io.close(ignored);
    std::deque<std::shared_ptr<Call>> waiting;
    waiting.swap(calls);
    for (const auto& c : waiting) {
      if (c->abandoned || !c->login.empty()) continue;
      while (c->results.size() < c->expected) c->results.push_back(RedisResult::failed(status, why));
      c->done.notify();
    }
  }

  static bool is_push(const RedisReply& r) {
    return r.type == RedisReply::Type::kArray && r.elements.size() == 3 &&
           r.elements[0].type == RedisReply::Type::kString && r.elements[0].str == "message";
  }

  // The next reply belongs to the first call written and not yet answered (a subscriber's
  // published messages excepted).
  void deliver(RedisReply reply) {
    if (options->on_message && is_push(reply)) {
      options->on_message(reply);
      return;
    }
    if (calls.empty() || !calls.front()->written) {
      fail(RedisStatus::kProtocol, "a reply no command asked for");
      return;
    }
    Call& front = *calls.front();
    const bool readonly = options->sentinel && front.login.empty() && is_readonly_error(reply);
    front.results.push_back({RedisStatus::kOk, std::move(reply), {}});
    if (readonly) {
      // The master became a replica: this call keeps its READONLY reply, the connection goes,
      // and the next one asks the sentinels where the master is now.
      options->sentinel->not_master(address());
      fail(RedisStatus::kConnectionLost, where() + " is a replica now (READONLY)");
      return;
    }
    if (front.results.size() < front.expected) return;
    std::shared_ptr<Call> call = std::move(calls.front());
    calls.pop_front();
    for (size_t i = 0; i < call->login.size(); ++i) {
      if (std::string_view(call->login[i]) == "ROLE") {
        if (is_master_role(call->results[i].reply)) {
          options->sentinel->confirmed(address());
          continue;
        }
        // A sentinel's stale answer (or a failover under way): never used for anything.
        options->sentinel->not_master(address());
        fail(RedisStatus::kConnectionLost, where() + " is not the master (ROLE: " + role_name(call->results[i].reply) + ")");
        return;
      }
      if (call->results[i].reply.is_error()) {
        ++stats->login_failures;
        fail(RedisStatus::kLogin, where() + ": " + call->login[i] + " refused: " + call->results[i].reply.str);
        return;
      }
    }
    if (!call->abandoned && call->login.empty()) call->done.notify();
  }

  static awaitable<void> write_loop(std::shared_ptr<Link> self) {
    std::string out;
    while (!self->broken) {
      out.clear();
      for (auto it = self->calls.begin(); it != self->calls.end();) {
        Call& c = **it;
        if (c.written) {
          ++it;
        } else if (c.abandoned) {
          it = self->calls.erase(it);   // never sent: no reply to skip
        } else {
          out += c.request;
          c.written = true;
          self->stats->commands += c.expected;
          ++it;
        }
      }
      if (out.empty()) break;
      error_code ec;
      co_await self->io.async_write(asio::buffer(out), ec);
      if (ec) {
        self->fail(RedisStatus::kConnectionLost, "write: " + ec.message());
        break;
      }
    }
    self->writing = false;
  }

  awaitable<error_code> connect_socket() {
    const conf::RedisEndpoint& e = endpoint;
    std::string unix_path = e.kind == conf::RedisEndpoint::Kind::kUnix ? e.path : std::string();
    std::function<bool()> stop = [this] { return connect_timed_out || broken; };
    const error_code ec = co_await connect_stream(io.socket(), std::move(unix_path), e.host, e.port, std::move(stop));
    co_return ec;
  }

  awaitable<bool> handshake_tls(std::string& why) {
    if (!options->tls_ctx) {
      why = "no TLS context for rediss:// (server_tls_* failed to load)";
      co_return false;
    }
    std::string error;
    SSL* ssl = new_server_ssl(options->tls_ctx.get(), options->tls_mode, endpoint.host, error);
    if (ssl == nullptr) {
      why = "TLS setup: " + error;
      co_return false;
    }
    if (SSL_set_fd(ssl, io.socket().native_handle()) != 1) {
      SSL_free(ssl);
      why = "TLS setup: SSL_set_fd failed";
      co_return false;
    }
    error_code ec;
    co_await io.handshake(std::make_unique<TlsStream>(ssl), ec);
    if (ec) {
      const bool has_detail = io.tls() != nullptr && !io.tls()->last_error().empty();
      why = "TLS handshake failed: " + (has_detail ? io.tls()->last_error() : ec.message());
      co_return false;
    }
    co_return true;
  }

  // With Sentinel: the master's address, asked within connect_timeout. False (the link failed) when none.
  static awaitable<bool> resolve(std::shared_ptr<Link> self) {
    self->resolving = true;
    const auto deadline = std::chrono::steady_clock::now() + self->options->connect_timeout;
    auto master = co_await self->options->sentinel->resolve(self->io.get_executor(), deadline);
    self->resolving = false;
    if (self->broken) co_return false;
    if (!master) {
      ++self->stats->connect_failures;
      self->fail(RedisStatus::kConnectionLost, "Redis Sentinel: " + master.error().message);
      co_return false;
    }
    self->endpoint.host = master->address.host;
    self->endpoint.port = master->address.port;
    self->generation = master->generation;
    co_return true;
  }

  // Connects (and shakes hands), then writes what is queued and reads until the link fails.
  static awaitable<void> run(std::shared_ptr<Link> self) {
    if (self->options->sentinel) {
      const bool found = co_await resolve(self);
      if (!found) co_return;
    }
    std::string why;
    bool up = false;
    {
      Link* raw = self.get();
      Watchdog watchdog(self->io.get_executor(), self->options->connect_timeout, [raw] {
        raw->connect_timed_out = true;
        error_code ignored;
        raw->io.close(ignored);
      });
      const error_code ec = co_await self->connect_socket();
      if (ec) {
        why = "could not connect: " + ec.message();
      } else if (self->endpoint.kind == conf::RedisEndpoint::Kind::kTls) {
        up = co_await self->handshake_tls(why);
      } else {
        up = true;
      }
      if (self->connect_timed_out) {
        up = false;
        why = "no connection within connect_timeout";
      }
    }
    if (self->broken) co_return;   // closed meanwhile
    if (!up) {
      ++self->stats->connect_failures;
      self->fail(RedisStatus::kConnectionLost, self->where() + ": " + why);
      co_return;
    }
    ++self->stats->connects;
    if (self->endpoint.kind != conf::RedisEndpoint::Kind::kUnix) {
      int one = 1;
      ::setsockopt(self->io.socket().native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    self->connected = true;
    self->start_writing();
    co_await self->read_loop();
  }

  awaitable<void> read_loop() {
    std::vector<char> buf(kReadChunk);
    while (!broken) {
      error_code ec;
      const size_t n = co_await io.async_read_some(asio::buffer(buf), ec);
      if (broken) co_return;
      if (ec) {
        fail(RedisStatus::kConnectionLost, ec == asio::error::eof ? "connection closed by Redis" : "read: " + ec.message());
        co_return;
      }
      if (!reader.feed(buf.data(), n)) {
        fail(RedisStatus::kProtocol, "unreadable reply: " + reader.error());
        co_return;
      }
      for (;;) {
        RedisReply reply;
        const RespReader::Next next = reader.next(reply);
        if (next == RespReader::Next::kError) {
          fail(RedisStatus::kProtocol, "unreadable reply: " + reader.error());
          co_return;
        }
        if (next == RespReader::Next::kNeedMore) break;
        deliver(std::move(reply));
        if (broken) co_return;
      }
    }
  }
};

RedisConnection::RedisConnection(asio::any_io_executor ex, RedisOptions options)
    : ex_(std::move(ex)),
      options_(std::make_shared<const RedisOptions>(std::move(options))),
      stats_(std::make_shared<RedisStats>()) {}

RedisConnection::~RedisConnection() { close(); }

bool RedisConnection::active() const { return link_ && !link_->broken; }

void RedisConnection::close() {
  if (!link_) return;
  link_->fail(RedisStatus::kConnectionLost, "connection closed by pgrelay");
  link_.reset();
}

std::shared_ptr<RedisConnection::Link> RedisConnection::link() {
  const RedisSentinel* sentinel = options_->sentinel.get();
  if (link_ && !link_->broken) {
    // With Sentinel, a connection to a master that is no longer the one goes (a failover).
    if (!sentinel || link_->resolving || link_->generation == sentinel->generation()) return link_;
    link_->fail(RedisStatus::kConnectionLost, "the master moved (Redis Sentinel)");
  }
  link_ = std::make_shared<Link>(ex_, options_, stats_);
  if (sentinel) link_->generation = sentinel->generation();
  // AUTH and SELECT ride ahead of the first commands, in the same write.
  const conf::RedisEndpoint& e = options_->endpoint;
  auto login = std::make_shared<Call>(ex_);
  if (!e.password.empty()) {
    const Args auth = e.user.empty() ? Args{"AUTH", e.password} : Args{"AUTH", e.user, e.password};
    if (encode(auth, login->request)) login->login.push_back("AUTH");
  }
  const std::string db = std::to_string(e.db);
  if (e.db != 0 && encode(Args{"SELECT", db}, login->request)) login->login.push_back("SELECT");
  // With Sentinel, the first word from the server says it is the master (a sentinel may lag).
  if (sentinel && encode(Args{"ROLE"}, login->request)) login->login.push_back("ROLE");
  if (!login->login.empty()) {
    login->expected = login->login.size();
    link_->calls.push_back(std::move(login));
  }
  asio::co_spawn(ex_, Link::run(link_), log_failure);
  return link_;
}

awaitable<RedisResult> RedisConnection::command(Args args, Deadline deadline) {
  std::vector<Args> one;
  one.push_back(std::move(args));
  std::vector<RedisResult> results = co_await pipeline(std::move(one), deadline);
  co_return std::move(results.front());
}

awaitable<std::vector<RedisResult>> RedisConnection::pipeline(std::vector<Args> commands, Deadline deadline) {
  std::vector<RedisResult> results;
  if (commands.empty()) co_return results;
  auto call = std::make_shared<Call>(ex_);
  for (const Args& args : commands) {
    if (!encode(args, call->request)) {
      co_return std::vector<RedisResult>(commands.size(), RedisResult::failed(RedisStatus::kProtocol, "an empty command"));
    }
  }
  call->expected = commands.size();
  if (std::chrono::steady_clock::now() >= deadline) {
    ++stats_->timeouts;
    co_return std::vector<RedisResult>(commands.size(), RedisResult::failed(RedisStatus::kTimeout, "deadline already passed"));
  }
  std::shared_ptr<Link> l = link();
  l->enqueue(call);
  const bool answered = co_await call->done.wait_until(deadline);
  if (!answered) {
    call->abandoned = true;
    ++stats_->timeouts;
    // Its replies may still come: a connection that has sent them cannot be trusted to match
    // the next ones. One still opening has not sent them, and never will.
    if (l->connected) l->fail(RedisStatus::kConnectionLost, "an earlier command timed out");
    while (call->results.size() < call->expected) {
      call->results.push_back(RedisResult::failed(RedisStatus::kTimeout, "no reply within the deadline"));
    }
  }
  co_return std::move(call->results);
}

}  // namespace pgrelay::proxy
