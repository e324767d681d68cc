// Cache warming: replaying the hottest cached statements through sessions of their own.
#include "proxy/app/cache_warmer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "protocol/bytes.h"
#include "proxy/app/worker.h"
#include "proxy/base/log.h"
#include "proxy/session/client_credentials.h"

namespace pgrelay::proxy {

namespace {

constexpr auto kReplayTimeout = std::chrono::seconds(30);   // one statement's answer
constexpr auto kRedisTimeout = std::chrono::milliseconds(500);
constexpr auto kRedisKeep = std::chrono::hours(24 * 7);     // a list nobody saved for a week is gone

uint64_t fills(const CacheDatabaseStats& s) { return s.fill_seconds.snapshot().count; }

}  // namespace

struct CacheWarmer::Link {
  explicit Link(asio::any_io_executor ex) : socket(ex) {}
  asio::local::stream_protocol::socket socket;
};

CacheWarmer::CacheWarmer(asio::any_io_executor ex, Services& services, std::vector<Worker*> workers)
    : ex_(std::move(ex)), services_(services), workers_(std::move(workers)), settings_(services.config.get()->cache) {}

CacheWarmer::~CacheWarmer() = default;

std::string CacheWarmer::redis_key(const std::string& prefix, const std::string& database) {
  return prefix + ":warm:" + database;
}

RedisConnection* CacheWarmer::redis() {
  const auto& shared = services_.cache->shared();
  if (!shared) return nullptr;
  if (!redis_) {
    redis_ = std::make_unique<RedisConnection>(ex_, RedisOptions{.endpoint = shared->endpoint,
                                                                 .tls_ctx = services_.tls.server(),
                                                                 .tls_mode = conf::ServerTlsMode::kVerifyFull,
                                                                 .connect_timeout = std::chrono::milliseconds(1000),
                                                                 .sentinel = shared->sentinel,
                                                                 .on_message = nullptr});
  }
  return redis_.get();
}

void CacheWarmer::start() {
  if (!services_.cache->warm_list().enabled()) return;
  asio::co_spawn(ex_, main_loop(), [](std::exception_ptr e) { log_exception(e, "cache warming"); });
}

awaitable<void> CacheWarmer::main_loop() {
  WarmList& list = services_.cache->warm_list();
  // What earlier runs and other instances found hot: counted here too, so what this instance
  // saves keeps them.
  std::vector<WarmStatement> saved = load_file();
  std::vector<WarmStatement> shared = co_await load_redis();
  saved.insert(saved.end(), std::make_move_iterator(shared.begin()), std::make_move_iterator(shared.end()));
  const size_t loaded = saved.size();
  list.seed(std::move(saved));
  if (loaded > 0 && settings_.warm_on_start && !stopping_ && !running_.exchange(true))
    co_await run(list.top(""), "at start");
  asio::steady_timer tick(ex_);
  while (!stopping_) {
    tick.expires_after(settings_.warm_save_interval);
    error_code ec;
    co_await tick.async_wait(ec_awaitable(ec));
    if (stopping_) break;
    save_file();
    co_await save_redis();
  }
}

Result<size_t> CacheWarmer::warm_now(const std::string& database) {
  WarmList& list = services_.cache->warm_list();
  if (!list.enabled()) return Error{"55000", "cache warming is off (warm_statements = 0 in [cache])"};
  std::vector<WarmStatement> statements = list.top(database);
  if (statements.empty())
    return Error{"55000", database.empty() ? "no cached statement has been hit yet: nothing to warm"
                                           : "no statement of database \"" + database + "\" has been hit yet: nothing to warm"};
  if (stopping_) return Error{"55000", "pgrelay is shutting down"};
  if (running_.exchange(true)) return Error{"55000", "a warm run is in progress; try again when it has ended"};
  const size_t n = statements.size();
  asio::co_spawn(ex_, run(std::move(statements), database.empty() ? "CACHE WARM" : "CACHE WARM " + database),
                 [](std::exception_ptr e) { log_exception(e, "cache warming"); });
  return n;
}

awaitable<void> CacheWarmer::run(std::vector<WarmStatement> list, std::string what) {
  // running_ is set by the caller: one run at a time.
  WarmCounters& counters = services_.cache->warm_list().counters();
  counters.runs.fetch_add(1, std::memory_order_relaxed);
  RunCounts counts;
  const auto started = std::chrono::steady_clock::now();
  co_await replay_all(list, counts);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  log_info("cache warming (", what, "): ", counts.replayed, " of ", list.size(), " statements replayed in ", ms, " ms: ",
           counts.filled, " filled, ", counts.cached, " already cached, ", counts.failed, " failed, ", counts.skipped,
           " skipped (their user's server login needs a client's own credential)");
  running_ = false;
}

awaitable<void> CacheWarmer::replay_all(const std::vector<WarmStatement>& list, RunCounts& counts) {
  WarmCounters& counters = services_.cache->warm_list().counters();
  // One session per distinct recorded session (database, user, settings), made on first use.
  std::map<std::string, std::shared_ptr<Link>> links;
  std::map<std::string, bool> refused;   // by session: skipped (true) or failed (false)
  const auto config = services_.config.get();
  const auto interval = std::chrono::nanoseconds(std::chrono::seconds(1)) / std::max<uint32_t>(1, config->cache.warm_rate);
  auto next = std::chrono::steady_clock::now();
  asio::steady_timer pace(ex_);
  for (const WarmStatement& s : list) {
    if (stopping_) break;
    protocol::Buffer encoded;
    encode(*s.session, encoded);
    std::string id(reinterpret_cast<const char*>(encoded.data()), encoded.size());
    if (auto r = refused.find(id); r != refused.end()) {
      (r->second ? counts.skipped : counts.failed)++;
      (r->second ? counters.skipped : counters.failed).fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    std::shared_ptr<Link>& link = links[id];
    if (!link) {
      HandoffState state = *s.session;
      const conf::DatabaseEntry* entry = config->find_database(state.database);
      std::string why;
      if (!entry) {
        why = "no database \"" + state.database + "\" in this configuration";
      } else if (entry->password.empty() && (entry->user.empty() || entry->user == state.user)) {
        // The pool borrows its clients' identity: the credential a client of that user lent
        // here, if one has. Without one the login is tried as it is (trust, peer, a .pgpass);
        // a server that asks for a password refuses it and the user's statements are skipped.
        state.credential = services_.auth.credential(server_user_key(*entry, state.user));
      }
      if (why.empty()) link = co_await open_link(state, why);
      if (!link) {
        log_warning("cache warming: no session for ", state.user, "@", state.database, ": ", why);
        refused[id] = false;
        links.erase(id);
        ++counts.failed;
        counters.failed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
    }
    error_code ec;
    pace.expires_at(next);
    co_await pace.async_wait(ec_awaitable(ec));
    next = std::max(next + interval, std::chrono::steady_clock::now());   // behind: no burst to catch up
    const Outcome outcome = co_await replay(link, s);
    if (outcome == Outcome::kLoginRefused) {
      log_info("cache warming: the server refused ", s.session->user, "@", s.session->database,
               " without a client's credential: its statements are skipped");
      refused[id] = true;
      ++counts.skipped;
      counters.skipped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (outcome == Outcome::kFailed) {
      ++counts.failed;
      counters.failed.fetch_add(1, std::memory_order_relaxed);
      if (!link->socket.is_open()) links.erase(id);   // the session ended: the next statement makes another
      continue;
    }
    ++counts.replayed;
    counters.replayed.fetch_add(1, std::memory_order_relaxed);
    if (outcome == Outcome::kFilled) {
      ++counts.filled;
      counters.filled.fetch_add(1, std::memory_order_relaxed);
    } else if (outcome == Outcome::kCached) {
      ++counts.cached;
      counters.cached.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (auto& [id, link] : links) {   // the sessions end with their sockets (a Terminate is not needed)
    error_code ec;
    if (link) link->socket.close(ec);
  }
  links_.clear();
}

awaitable<std::shared_ptr<CacheWarmer::Link>> CacheWarmer::open_link(const HandoffState& state, std::string& why) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    why = std::string("socketpair: ") + std::strerror(errno);
    co_return nullptr;
  }
  auto link = std::make_shared<Link>(ex_);
  error_code ec;
  link->socket.assign(asio::local::stream_protocol(), fds[0], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    why = "socketpair: " + ec.message();
    co_return nullptr;
  }
  auto adopted = std::make_shared<Event>(ex_);
  auto refused = std::make_shared<std::string>();
  Worker* worker = workers_[next_worker_++ % workers_.size()];
  auto ex = ex_;
  worker->adopt_session(
      fds[1], state,
      [ex, adopted, refused](std::string r) {
        asio::post(ex, [adopted, refused, r = std::move(r)] {
          *refused = r;
          adopted->notify();
        });
      },
      /*warming=*/true);
  co_await adopted->wait();
  if (!refused->empty()) {
    why = *refused;
    co_return nullptr;
  }
  links_.push_back(link);
  co_return link;
}

protocol::Buffer CacheWarmer::request_of(const WarmStatement& s) {
  protocol::Buffer out;
  if (!s.extended) {
    protocol::encode(protocol::Query{.sql = s.text}, out);
    return out;
  }
  const WarmExtended& e = *s.extended;
  {
    // The parameter types exactly as the client's Parse had them (count and OIDs): the key holds them so.
    protocol::Writer w(out);
    const size_t mark = w.begin('P');
    w.cstr("");
    w.cstr(s.text);
    w.bytes(e.param_types);
    w.end(mark);
  }
  protocol::Bind bind{.portal = {}, .statement = {}, .param_formats = e.param_formats, .params = {}, .result_formats = e.result_formats};
  for (const auto& v : e.params) {
    if (v) bind.params.emplace_back(protocol::Bytes(*v));
    else bind.params.emplace_back(std::nullopt);
  }
  protocol::encode(bind, out);
  if (e.describe) protocol::encode(protocol::Describe{.kind = 'P', .name = {}}, out);
  protocol::encode(protocol::Execute{.portal = {}, .max_rows = 0}, out);
  protocol::encode(protocol::Sync{}, out);
  return out;
}

awaitable<CacheWarmer::Outcome> CacheWarmer::replay(std::shared_ptr<Link> held, const WarmStatement& statement) {
  Link& link = *held;
  CacheDatabaseStats& stats = services_.cache->warm_stats();
  const uint64_t hits = stats.hits.load(), redis_hits = stats.redis_hits.load(), filled = fills(stats);
  const protocol::Buffer query = request_of(statement);
  // A watchdog: an answer that never comes closes the socket (and ends the session).
  asio::steady_timer watchdog(ex_, kReplayTimeout);
  watchdog.async_wait([weak = std::weak_ptr<Link>(held)](error_code e) {
    error_code ignored;
    if (auto link = weak.lock(); link && !e) link->socket.close(ignored);
  });
  error_code ec;
  co_await asio::async_write(link.socket, asio::buffer(query), ec_awaitable(ec));
  // Read until ReadyForQuery, skipping every message's body.
  bool error = false, ready = false;
  std::string error_fields;   // the first ErrorResponse's body (bounded): its SQLSTATE
  std::array<uint8_t, 5> header{};
  size_t have = 0, skip = 0;
  char type = 0;
  std::array<uint8_t, 16384> chunk{};
  while (!ec && !ready) {
    const size_t n = co_await link.socket.async_read_some(asio::buffer(chunk), ec_awaitable(ec));
    for (size_t i = 0; i < n && !ready;) {
      if (skip > 0) {
        const size_t k = std::min(skip, n - i);
        if (type == 'E' && error_fields.size() < 4096) error_fields.append(reinterpret_cast<const char*>(&chunk[i]), k);
        i += k;
        skip -= k;
      } else {
        header[have++] = chunk[i++];
        if (have < header.size()) continue;
        have = 0;
        type = char(header[0]);
        const uint32_t length = uint32_t(header[1]) << 24 | uint32_t(header[2]) << 16 | uint32_t(header[3]) << 8 | header[4];
        if (length < 4) {
          ec = asio::error::invalid_argument;
          break;
        }
        skip = length - 4;
        if (type == 'E') error = true;
      }
      if (skip == 0 && have == 0 && type == 'Z') ready = true;
    }
  }
  watchdog.cancel();
  if (!ready || error) {
    if (!ready) {
      error_code ignored;
      link.socket.close(ignored);   // out of step with its session: not used again
    }
    // Class 28 (invalid authorization): the server wanted a credential only a client has.
    for (size_t at = 0; at + 1 < error_fields.size();) {
      const size_t end = error_fields.find('\0', at + 1);
      if (end == std::string::npos) break;
      if (error_fields[at] == 'C') {
        if (error_fields.compare(at + 1, 2, "28") == 0) co_return Outcome::kLoginRefused;
        break;
      }
      at = end + 1;
    }
    co_return Outcome::kFailed;
  }
  const uint64_t new_hits = stats.hits.load() - hits, new_redis = stats.redis_hits.load() - redis_hits;
  if (fills(stats) > filled || new_redis > 0) co_return Outcome::kFilled;   // from the server, or Redis's copy into memory
  if (new_hits > 0) co_return Outcome::kCached;
  co_return Outcome::kNotFilled;
}

std::vector<WarmStatement> CacheWarmer::load_file() const {
  std::vector<WarmStatement> out;
  if (settings_.warm_file.empty()) return out;
  std::ifstream in(settings_.warm_file, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) log_warning("cache warming: cannot read ", settings_.warm_file, " (warm_file): ", std::strerror(errno));
    return out;
  }
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto list = decode_warm_list(protocol::as_bytes(bytes));
  if (!list.ok()) {
    log_warning("cache warming: ignoring ", settings_.warm_file, " (warm_file): ", list.error().message);
    return out;
  }
  log_info("cache warming: ", list->size(), " statements loaded from ", settings_.warm_file);
  return std::move(list).value();
}

void CacheWarmer::save_file() {
  if (settings_.warm_file.empty()) return;
  protocol::Buffer bytes;
  encode_warm_list(services_.cache->warm_list().top(""), bytes);
  std::lock_guard lock(file_mu_);
  // Written beside it and renamed: a crash mid-write never leaves half a list.
  const std::string temp = settings_.warm_file + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) {
      log_warning("cache warming: cannot write ", temp, " (warm_file): ", std::strerror(errno));
      return;
    }
  }
  if (std::rename(temp.c_str(), settings_.warm_file.c_str()) != 0)
    log_warning("cache warming: cannot rename ", temp, " to ", settings_.warm_file, " (warm_file): ", std::strerror(errno));
}

awaitable<std::vector<WarmStatement>> CacheWarmer::load_redis() {
  std::vector<WarmStatement> out;
  RedisConnection* r = redis();
  if (!r) co_return out;
  // Every database's list, including those a "*" entry serves (their names are not in the config).
  const std::string prefix = redis_key(settings_.redis_key_prefix, "");
  const std::string pattern = prefix + "*";
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    RedisResult scanned = co_await r->command(redis_args("SCAN", cursor, "MATCH", pattern, "COUNT", "1000"),
                                              std::chrono::steady_clock::now() + kRedisTimeout);
    if (!scanned.ok() || scanned.reply.type != RedisReply::Type::kArray || scanned.reply.elements.size() != 2) {
      log_warning("cache warming: cannot list the saved lists in Redis: ", scanned.ok() ? "an unexpected reply" : scanned.error);
      co_return out;
    }
    cursor = scanned.reply.elements[0].str;
    for (const RedisReply& key : scanned.reply.elements[1].elements) keys.push_back(key.str);
  } while (cursor != "0" && keys.size() < 10'000);
  for (const std::string& key : keys) {
    RedisResult got = co_await r->command(redis_args("GET", key), std::chrono::steady_clock::now() + kRedisTimeout);
    if (!got.ok()) {
      log_warning("cache warming: cannot read ", key, " from Redis: ", got.error);
      co_return out;
    }
    if (got.reply.type != RedisReply::Type::kString) continue;
    auto list = decode_warm_list(protocol::as_bytes(got.reply.str));
    if (!list.ok()) {
      log_warning("cache warming: ignoring Redis's ", key, ": ", list.error().message);
      continue;
    }
    const std::string database = key.substr(prefix.size());
    log_info("cache warming: ", list->size(), " statements of ", database, " loaded from Redis");
    for (auto& s : *list) {
      if (s.session->database == database) out.push_back(std::move(s));
    }
  }
  co_return out;
}

awaitable<void> CacheWarmer::save_redis() {
  RedisConnection* r = redis();
  if (!r) co_return;
  const WarmList& list = services_.cache->warm_list();
  const std::string ttl_ms = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(kRedisKeep).count());
  for (const std::string& database : list.databases()) {
    protocol::Buffer bytes;
    encode_warm_list(list.top(database), bytes);
    const std::string key = redis_key(settings_.redis_key_prefix, database);
    const std::string_view value(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    RedisResult set = co_await r->command(redis_args("SET", key, value, "PX", ttl_ms),
                                          std::chrono::steady_clock::now() + kRedisTimeout);
    if (!set.ok()) {
      log_debug("cache warming: cannot save ", key, " to Redis: ", set.error);
      co_return;
    }
  }
}

void CacheWarmer::save_now() {
  if (!services_.cache->warm_list().enabled()) return;
  save_file();
  asio::co_spawn(ex_, save_redis(), [](std::exception_ptr e) { log_exception(e, "cache warming: saving to Redis"); });
}

void CacheWarmer::stop() {
  if (!services_.cache->warm_list().enabled() || stopping_.exchange(true)) return;
  save_file();
  asio::post(ex_, [this] {
    for (auto& weak : links_) {
      error_code ec;
      if (auto link = weak.lock()) link->socket.close(ec);
    }
  });
}

}  // namespace pgrelay::proxy
