// Client authentication state shared by all sessions: derived secrets, caches, forwarded credentials.
#include "proxy/session/auth_store.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace pgrelay::proxy {
namespace {

constexpr size_t kSaltBytes = 16;   // as PostgreSQL's SCRAM_DEFAULT_SALT_LEN

std::string random_key() {
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), int(key.size())) != 1) {
    // Without a usable CSPRNG fake secrets would be guessable: refuse to run rather than leak.
    std::abort();
  }
  return key;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace

AuthStore::AuthStore() : process_key_(random_key()) {}

AuthStore::AuthStore(std::string process_key) : process_key_(std::move(process_key)) {}

std::string AuthStore::derive(std::string_view label, std::string_view user) const {
  std::string data(label);
  data += '\0';
  data += user;
  return hmac_sha256(process_key_, data);
}

protocol::ScramSecret AuthStore::fake_scram_secret(std::string_view user) const {
  protocol::ScramSecret s;
  s.iterations = kIterations;
  s.salt = derive("salt", user).substr(0, kSaltBytes);
  // StoredKey is not H(anything we know): no proof can match it.
  s.stored_key = derive("fake stored key", user);
  s.server_key = derive("fake server key", user);
  return s;
}

protocol::ScramSecret AuthStore::scram_secret_for_password(std::string_view user, std::string_view password) {
  std::string id(user);
  id += '\0';
  id += password;
  const std::string key = hmac_sha256(process_key_, id);   // the password itself is not kept as a key
  {
    std::lock_guard lock(mu_);
    if (auto it = derived_.find(key); it != derived_.end()) return it->second;
  }
  // PBKDF2 outside the lock: it takes milliseconds.
  protocol::ScramSecret secret =
      protocol::scram_secret_from_password(password, derive("salt", user).substr(0, kSaltBytes), kIterations);
  std::lock_guard lock(mu_);
  if (derived_.size() >= kMaxCachedEntries) derived_.clear();
  derived_.emplace(key, secret);
  return secret;
}

std::optional<std::optional<std::string>> AuthStore::cached_secret(const std::string& key, Clock::time_point now,
                                                                   Clock::duration ttl) const {
  if (ttl <= Clock::duration::zero()) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = query_cache_.find(key);
  if (it == query_cache_.end() || now - it->second.fetched >= ttl || now < it->second.fetched) return std::nullopt;
  return it->second.secret;
}

void AuthStore::cache_secret(const std::string& key, std::optional<std::string> secret, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (query_cache_.size() >= kMaxCachedEntries && !query_cache_.contains(key)) query_cache_.clear();
  query_cache_[key] = Cached{std::move(secret), now};
}

void AuthStore::remember_credential(const std::string& key, std::string credential) {
  std::lock_guard lock(mu_);
  if (credentials_.size() >= kMaxCachedEntries && !credentials_.contains(key)) credentials_.clear();
  credentials_[key] = std::move(credential);
  has_credentials_.store(true, std::memory_order_release);
}

std::string AuthStore::credential(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = credentials_.find(key);
  return it == credentials_.end() ? std::string() : it->second;
}

}  // namespace pgrelay::proxy
