// Cancel routing: the BackendKeyData pgrelay gives each client, and which server it points at now.
//
// A client's key is pgrelay's own (random, never the server's), so a CancelRequest can only
// reach the server connection that client is using at that moment. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "protocol/messages.h"
#include "proxy/server/server_connection.h"

namespace pgrelay::proxy {

// What a CancelRequest for one client must be turned into. The session updates it as it
// takes and gives back server connections; the registry reads it from any thread.
//
// A server connection with a cancel on its way must not go to another client (the cancel
// would hit that client's query): begin_cancel() pins the target until end_cancel(), and
// try_clear() refuses while one is pending; end_cancel() then calls the owner's `recheck`
// on the owner's executor so it can give the connection back.
class CancelSlot {
 public:
  // `target` is shared with the server connection: setting it on every hand-off copies no strings.
  void set(std::shared_ptr<const ServerTarget> target, protocol::BackendKeyData key);
  // Forgets the target unless a cancel is pending; false then.
  bool try_clear();
  struct Target { std::shared_ptr<const ServerTarget> server; protocol::BackendKeyData key; };
  std::optional<Target> get() const;

  // The session that owns the slot: where and what to call when a pending cancel is done.
  void set_owner(asio::any_io_executor ex, std::function<void()> recheck);
  // The target, pinned until end_cancel(); nullopt when no server is attached.
  std::optional<Target> begin_cancel();
  void end_cancel();
  bool cancel_pending() const;

  // While the client's statement waits in a shared pipeline (session/lane.h) it has no server
  // connection of its own: between set_pipelined(true) and (false), a CancelRequest posts the
  // handler (set once) to the owner's executor instead.
  void set_pipeline_handler(std::function<void()> on_cancel);
  void set_pipelined(bool on) { pipelined_.store(on, std::memory_order_release); }
  bool cancel_pipelined();   // true: posted

 private:
  mutable std::mutex mu_;
  std::optional<Target> target_;
  int pending_ = 0;
  std::optional<asio::any_io_executor> owner_;
  std::function<void()> recheck_;
  std::atomic<bool> pipelined_{false};
  std::function<void()> on_pipelined_cancel_;
};

class CancelRegistry {
 public:
  // A fresh, unique key for a new client, bound to `slot` until unregister(): random, or with
  // `pid` (a server's real one, in session mode) and a random secret. `slot` may be null (a
  // client that has no server connection yet, so nothing to cancel): bind() it later.
  protocol::BackendKeyData register_client(std::shared_ptr<CancelSlot> slot, std::optional<int32_t> pid = std::nullopt);
  // Online restart: `key`, given by the process this client came from, bound to `slot` (may be
  // null) as register_client() does. False when another client of this process has it.
  bool adopt(const protocol::BackendKeyData& key, std::shared_ptr<CancelSlot> slot);
  void bind(const protocol::BackendKeyData& key, std::shared_ptr<CancelSlot> slot);
  void unregister(const protocol::BackendKeyData& key);
  // The slot for a CancelRequest's key, or nullptr (unknown key, the client has gone, or it
  // never had a server connection).
  std::shared_ptr<CancelSlot> find(const protocol::BackendKeyData& key) const;

 private:
  static uint64_t pack(const protocol::BackendKeyData& k) { return (uint64_t(uint32_t(k.pid)) << 32) | uint32_t(k.secret); }
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<CancelSlot>> slots_;
};

}  // namespace pgrelay::proxy
