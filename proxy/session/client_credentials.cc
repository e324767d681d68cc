// Finding a client's secret (auth_file, database entries, auth_query) and the credential its pool uses.
#include "proxy/session/client_credentials.h"

#include "protocol/sqlstate.h"
#include "proxy/base/log.h"
#include "proxy/pool/pool.h"

namespace pgrelay::proxy {
namespace {

constexpr int kAuthPoolSize = 2;   // auth queries take a millisecond; a few connections serve many logins

// A configured password for `user`: the entry the client asked for first, then any other.
const std::string* entry_password(const conf::Config& config, const conf::DatabaseEntry& entry, std::string_view user) {
  if (entry.user == user && !entry.password.empty()) return &entry.password;
  for (const auto& [name, e] : config.databases) {
    if (e.user == user && !e.password.empty()) return &e.password;
  }
  return nullptr;
}

// How auth_user logs in: a plain password from the auth_file, a database entry's password, or a
// credential a client of auth_user forwarded; else none (the server may trust it).
std::string auth_user_password(AuthStore& store, const conf::Config& config, const conf::DatabaseEntry& entry) {
  if (auto it = config.auth_users.find(config.auth_user);
      it != config.auth_users.end() && conf::classify_secret(it->second) == conf::SecretKind::kPlain) {
    return it->second;
  }
  if (const std::string* p = entry_password(config, entry, config.auth_user)) return *p;
  return store.credential(server_user_key(entry, config.auth_user));
}

// auth_query for `user` on the entry's server: its secret, or nullopt when there is none.
awaitable<Result<std::optional<std::string>>> run_auth_query(Services& services, const conf::Config& config,
                                                             const conf::DatabaseEntry& entry,
                                                             const std::string& database, const std::string& user) {
  const std::string dbname = entry.dbname.empty() ? database : entry.dbname;
  const std::string cache_key = entry.host + ":" + std::to_string(entry.port) + "/" + dbname + "\n" + user;
  const auto cached = services.auth.cached_secret(cache_key, AuthStore::Clock::now(), config.auth_cache_ttl);
  if (cached) co_return *cached;

  conf::DatabaseEntry auth_entry = entry;
  auth_entry.dbname = dbname;
  auth_entry.user = config.auth_user;
  auth_entry.password = auth_user_password(services.auth, config, entry);
  auth_entry.pool.pool_size = kAuthPoolSize;
  auth_entry.pool.min_pool_size = 0;
  auth_entry.pool.max_pool_size = 0;
  auth_entry.pool.reserve_pool_size = 0;
  auth_entry.pool.pool_mode = conf::PoolMode::kTransaction;
  auth_entry.pool.server_reset_query.clear();
  auth_entry.replicas = {};   // auth_query reads the primary: no replica set, no lag poller of its own
  // A pool of its own, so auth_user's clients (if any) keep theirs whatever credential they bring.
  std::shared_ptr<Pool> pool =
      services.pools.pool_for(config, auth_entry, database + " (auth_query)", config.auth_user);

  auto ex = co_await asio::this_coro::executor;
  auto conn = co_await pool->acquire(ex, config.query_wait_timeout);
  if (!conn.ok()) {
    co_return Error{conn.error().sqlstate, "auth_query as \"" + config.auth_user + "\" failed: " + conn.error().message};
  }
  const std::vector<std::string> params = {user};
  auto rows = co_await (*conn)->query_rows(config.auth_query, params);
  pool->release(std::move(*conn));
  if (!rows.ok()) {
    co_return Error{rows.error().sqlstate.empty() ? sqlstate::kInternalError : rows.error().sqlstate,
                    "auth_query as \"" + config.auth_user + "\" failed: " + rows.error().message};
  }
  std::optional<std::string> secret;
  if (!rows->empty()) {
    const ServerConnection::Row& row = rows->front();
    if (row.size() != 2) {
      co_return Error{sqlstate::kInternalError, "auth_query must return two columns (user name, secret), got " +
                                                    std::to_string(row.size())};
    }
    if (row[1] && !row[1]->empty()) secret = *row[1];
  }
  services.auth.cache_secret(cache_key, secret, AuthStore::Clock::now());
  co_return secret;
}

}  // namespace

const char* to_string(ClientSecret::Source s) {
  switch (s) {
    case ClientSecret::Source::kNone: return "none";
    case ClientSecret::Source::kAuthFile: return "auth_file";
    case ClientSecret::Source::kDatabaseEntry: return "database entry";
    case ClientSecret::Source::kAuthQuery: return "auth_query";
  }
  return "unknown";
}

awaitable<Result<ClientSecret>> find_client_secret(Services& services, const conf::Config& config,
                                                   const conf::DatabaseEntry& entry, const std::string& database,
                                                   const std::string& user) {
  if (auto it = config.auth_users.find(user); it != config.auth_users.end()) {
    co_return ClientSecret{ClientSecret::Source::kAuthFile, it->second};
  }
  if (const std::string* p = entry_password(config, entry, user)) {
    co_return ClientSecret{ClientSecret::Source::kDatabaseEntry, *p};
  }
  if (config.auth_user.empty()) co_return ClientSecret{};
  auto secret = co_await run_auth_query(services, config, entry, database, user);
  if (!secret.ok()) co_return secret.error();
  if (!*secret) co_return ClientSecret{};
  co_return ClientSecret{ClientSecret::Source::kAuthQuery, std::move(**secret)};
}

std::string server_user_key(const conf::DatabaseEntry& entry, std::string_view user) {
  return entry.host + ":" + std::to_string(entry.port) + "\n" + std::string(user);
}

std::optional<conf::DatabaseEntry> forwarded_credential_entry(AuthStore& store, const conf::DatabaseEntry& entry,
                                                              std::string_view user, const std::string& credential) {
  if (!entry.password.empty() || (!entry.user.empty() && entry.user != user)) return std::nullopt;
  if (credential.empty() && !store.has_credentials()) return std::nullopt;   // none to borrow (trust logins)
  const std::string key = server_user_key(entry, user);
  if (!credential.empty()) store.remember_credential(key, credential);
  std::string password = store.credential(key);
  if (password.empty()) return std::nullopt;   // nothing to borrow: the entry's own "" it is
  std::optional<conf::DatabaseEntry> with(entry);
  with->password = std::move(password);
  return with;
}

conf::DatabaseEntry entry_with_forwarded_credential(AuthStore& store, const conf::DatabaseEntry& entry,
                                                    std::string_view user, const std::string& credential) {
  auto with = forwarded_credential_entry(store, entry, user, credential);
  return with ? std::move(*with) : entry;
}

}  // namespace pgrelay::proxy
