// Cancel routing between client keys and server connections.
#include "proxy/server/cancel_registry.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>
#include <random>

namespace pgrelay::proxy {

void CancelSlot::set(std::shared_ptr<const ServerTarget> target, protocol::BackendKeyData key) {
  std::lock_guard lock(mu_);
  target_ = Target{std::move(target), key};
}

bool CancelSlot::try_clear() {
  std::lock_guard lock(mu_);
  if (pending_ > 0) return false;
  target_.reset();
  return true;
}

void CancelSlot::set_owner(asio::any_io_executor ex, std::function<void()> recheck) {
  std::lock_guard lock(mu_);
  owner_ = std::move(ex);
  recheck_ = std::move(recheck);
}

std::optional<CancelSlot::Target> CancelSlot::begin_cancel() {
  std::lock_guard lock(mu_);
  if (!target_) return std::nullopt;
  ++pending_;
  return target_;
}

void CancelSlot::end_cancel() {
  std::lock_guard lock(mu_);
  if (--pending_ == 0 && owner_ && recheck_) asio::post(*owner_, recheck_);
}

bool CancelSlot::cancel_pending() const {
  std::lock_guard lock(mu_);
  return pending_ > 0;
}

void CancelSlot::set_pipeline_handler(std::function<void()> on_cancel) {
  std::lock_guard lock(mu_);
  on_pipelined_cancel_ = std::move(on_cancel);
}

bool CancelSlot::cancel_pipelined() {
  if (!pipelined_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(mu_);
  if (!on_pipelined_cancel_ || !owner_) return false;
  asio::post(*owner_, on_pipelined_cancel_);
  return true;
}

std::optional<CancelSlot::Target> CancelSlot::get() const {
  std::lock_guard lock(mu_);
  return target_;
}

namespace {

// Eight unpredictable bytes from the calling thread's supply, which is filled from the CSPRNG 4 KiB
// at a time: RAND_bytes costs about as much for 8 bytes as for 4,096 (its locks and reseed
// checks), and a connect storm would pay that for every login.
void random_bytes(uint32_t (&out)[2]) {
  struct Supply {
    unsigned char bytes[4096];
    size_t used = sizeof bytes;
  };
  thread_local Supply supply;
  if (supply.used + sizeof out > sizeof supply.bytes) {
    if (RAND_bytes(supply.bytes, sizeof supply.bytes) != 1) {
      std::random_device rd;
      out[0] = rd();
      out[1] = rd();
      return;
    }
    supply.used = 0;
  }
  std::memcpy(out, supply.bytes + supply.used, sizeof out);
  OPENSSL_cleanse(supply.bytes + supply.used, sizeof out);   // handed out once, then gone from here
  supply.used += sizeof out;
}

}  // namespace

protocol::BackendKeyData CancelRegistry::register_client(std::shared_ptr<CancelSlot> slot, std::optional<int32_t> pid) {
  for (;;) {
    // The secret is what stops other clients from cancelling this one's queries: it must be
    // unpredictable, so it comes from the CSPRNG.
    uint32_t raw[2];
    random_bytes(raw);
    protocol::BackendKeyData key{pid ? *pid : int32_t(raw[0] & 0x7fffffff) | 1, int32_t(raw[1])};
    std::lock_guard lock(mu_);
    if (slots_.emplace(pack(key), slot).second) return key;
  }
}

bool CancelRegistry::adopt(const protocol::BackendKeyData& key, std::shared_ptr<CancelSlot> slot) {
  std::lock_guard lock(mu_);
  return slots_.emplace(pack(key), std::move(slot)).second;
}

void CancelRegistry::bind(const protocol::BackendKeyData& key, std::shared_ptr<CancelSlot> slot) {
  std::lock_guard lock(mu_);
  if (auto it = slots_.find(pack(key)); it != slots_.end()) it->second = std::move(slot);
}

void CancelRegistry::unregister(const protocol::BackendKeyData& key) {
  std::lock_guard lock(mu_);
  slots_.erase(pack(key));
}

std::shared_ptr<CancelSlot> CancelRegistry::find(const protocol::BackendKeyData& key) const {
  std::lock_guard lock(mu_);
  auto it = slots_.find(pack(key));
  return it == slots_.end() ? nullptr : it->second;
}

}  // namespace pgrelay::proxy
