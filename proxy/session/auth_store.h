// Client authentication state every session shares: secrets derived per process, the auth_query
// cache, the credentials forwarded to servers, and the counters of logins.
//
// One AuthStore lives in Services for the life of the process. Every method is thread-safe
// (sessions on all workers call them); none blocks on I/O. Times are passed in, so the TTL
// logic is testable without sleeping.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/scram_server.h"

namespace pgrelay::proxy {

// Counters for the metrics exporter (pgrelay_client_auth_*_total); they only grow.
struct ClientAuthStats {
  std::atomic<uint64_t> successes{0};   // clients that passed (trust included)
  std::atomic<uint64_t> failures{0};    // wrong password, unknown user, bad SCRAM exchange
  std::atomic<uint64_t> rejected{0};    // turned away by an hba rule, a reject method or a missing TLS
};

class AuthStore {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kIterations = 4096;           // PostgreSQL's default scram_iterations
  static constexpr size_t kMaxCachedEntries = 10000;  // beyond this a cache starts over

  // Draws the per-process key that fake secrets and derived salts come from.
  AuthStore();
  // For tests: a fixed key.
  explicit AuthStore(std::string process_key);

  ClientAuthStats& stats() { return stats_; }

  // A secret for a user pgrelay has no secret for, so the exchange runs exactly as for a known
  // user and fails at the proof. Stable per user for the life of the process (a client probing
  // twice sees the same salt), unrelated across processes, and no password matches it.
  protocol::ScramSecret fake_scram_secret(std::string_view user) const;

  // The SCRAM secret of a plain password (auth_file, a database entry's password), with a salt
  // derived from the process key and the user, so it is stable too. PBKDF2 runs once per
  // (user, password); later logins reuse the result.
  protocol::ScramSecret scram_secret_for_password(std::string_view user, std::string_view password);

  // auth_query answers by `key` (server, database and user): the secret, or nullopt when the
  // server had none (no such role, expired, no password). Absent or older than `ttl` (0: never
  // cached): nothing.
  std::optional<std::optional<std::string>> cached_secret(const std::string& key, Clock::time_point now,
                                                          Clock::duration ttl) const;
  void cache_secret(const std::string& key, std::optional<std::string> secret, Clock::time_point now);

  // The credential a pool logs in to the server with on behalf of clients of `key` (server and
  // user): a plain password or forwarded_scram_password(). The last client to authenticate
  // with one sets it; "" when none has.
  void remember_credential(const std::string& key, std::string credential);
  std::string credential(const std::string& key) const;
  // False until the first remember_credential(): a trust login then needs no key nor lock.
  bool has_credentials() const { return has_credentials_.load(std::memory_order_acquire); }

 private:
  std::string derive(std::string_view label, std::string_view user) const;   // HMAC(process key, ...)

  const std::string process_key_;
  ClientAuthStats stats_;
  mutable std::mutex mu_;
  std::map<std::string, protocol::ScramSecret> derived_;                   // by HMAC(user, password)
  struct Cached {
    std::optional<std::string> secret;
    Clock::time_point fetched;
  };
  std::map<std::string, Cached> query_cache_;
  std::map<std::string, std::string> credentials_;
  std::atomic<bool> has_credentials_{false};
};

}  // namespace pgrelay::proxy
