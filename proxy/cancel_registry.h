// Cancel routing: the BackendKeyData pgrelay gives each client, and which server it points at now.
//
// A client's key is pgrelay's own (random, never the server's), so a CancelRequest can only
// reach the server connection that client is using at that moment. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "protocol/messages.h"
#include "proxy/server_connection.h"

namespace pgrelay::proxy {

// What a CancelRequest for one client must be turned into. The session updates it as it
// takes and gives back server connections; the registry reads it from any thread.
class CancelSlot {
 public:
  void set(const ServerTarget& target, protocol::BackendKeyData key);
  void clear();
  struct Target { ServerTarget server; protocol::BackendKeyData key; };
  std::optional<Target> get() const;

 private:
  mutable std::mutex mu_;
  std::optional<Target> target_;
};

class CancelRegistry {
 public:
  // A fresh, unique key for a new client, bound to `slot` until unregister().
  protocol::BackendKeyData register_client(std::shared_ptr<CancelSlot> slot);
  void unregister(const protocol::BackendKeyData& key);
  // The slot for a CancelRequest's key, or nullptr (unknown key, or the client has gone).
  std::shared_ptr<CancelSlot> find(const protocol::BackendKeyData& key) const;

 private:
  static uint64_t pack(const protocol::BackendKeyData& k) { return (uint64_t(uint32_t(k.pid)) << 32) | uint32_t(k.secret); }
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<CancelSlot>> slots_;
};

}  // namespace pgrelay::proxy
