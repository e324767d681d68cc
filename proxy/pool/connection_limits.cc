// Server-connection limits that span pools.
#include "proxy/pool/connection_limits.h"

#include <algorithm>

namespace pgrelay::proxy {

ConnectionLimits::Refusal ConnectionLimits::try_take(const Key& key, Caps caps) {
  std::lock_guard lock(mu_);
  int& db = per_database_[key.database];
  int& user = per_user_[key.user];
  if (caps.per_database > 0 && db >= caps.per_database) return Refusal::kDatabase;
  if (caps.per_user > 0 && user >= caps.per_user) return Refusal::kUser;
  ++db;
  ++user;
  return Refusal::kNone;
}

void ConnectionLimits::give_back(const Key& key) {
  std::lock_guard lock(mu_);
  if (auto it = per_database_.find(key.database); it != per_database_.end() && it->second > 0) --it->second;
  if (auto it = per_user_.find(key.user); it != per_user_.end() && it->second > 0) --it->second;
}

void ConnectionLimits::starve(const std::shared_ptr<Pool>& pool, const Key& key) {
  std::lock_guard lock(mu_);
  for (const auto& m : starved_)
    if (m.pool.lock() == pool) return;
  starved_.push_back({pool, key});
}

bool ConnectionLimits::rival_starving(const Key& key, const Pool* self) const {
  std::lock_guard lock(mu_);
  for (const auto& m : starved_) {
    if (m.key.database != key.database && m.key.user != key.user) continue;
    if (auto p = m.pool.lock(); p && p.get() != self) return true;
  }
  return false;
}

std::vector<std::shared_ptr<Pool>> ConnectionLimits::take_starved() {
  std::vector<Member> taken;
  {
    std::lock_guard lock(mu_);
    if (starved_.empty()) return {};
    taken.swap(starved_);
  }
  std::vector<std::shared_ptr<Pool>> out;
  for (auto& m : taken)
    if (auto p = m.pool.lock()) out.push_back(std::move(p));
  return out;
}

void ConnectionLimits::add_pool(const std::shared_ptr<Pool>& pool, const Key& key) {
  std::lock_guard lock(mu_);
  std::erase_if(members_, [](const Member& m) { return m.pool.expired(); });
  members_.push_back({pool, key});
}

std::vector<std::shared_ptr<Pool>> ConnectionLimits::rivals(const Key& key, Refusal refusal, const Pool* except) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& m : members_) {
    const bool shares = refusal == Refusal::kDatabase ? m.key.database == key.database : m.key.user == key.user;
    if (!shares) continue;
    if (auto p = m.pool.lock(); p && p.get() != except) out.push_back(std::move(p));
  }
  return out;
}

int ConnectionLimits::database_count(const std::string& database) const {
  std::lock_guard lock(mu_);
  auto it = per_database_.find(database);
  return it == per_database_.end() ? 0 : it->second;
}

int ConnectionLimits::user_count(const std::string& user) const {
  std::lock_guard lock(mu_);
  auto it = per_user_.find(user);
  return it == per_user_.end() ? 0 : it->second;
}

}  // namespace pgrelay::proxy
