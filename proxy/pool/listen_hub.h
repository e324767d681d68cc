// LISTEN/NOTIFY under transaction and statement pooling: one listening server connection per
// database, shared by every client that LISTENs.
//
// A client's LISTEN cannot stay on a server connection it gives back after each transaction,
// and pinning it there costs a connection per listener. Instead pgrelay keeps one connection
// per database that LISTENs on the union of its clients' channels; each NotificationResponse
// it receives (with the sending backend's pid, as PostgreSQL reports it) goes to every client
// registered for the channel, in the order the server sent them. NOTIFY itself is untouched:
// a statement of the sender's transaction, delivered by PostgreSQL at commit, dropped on
// rollback.
//
// Thread-safe: sessions on any worker register and unregister; the listening connection runs on
// the executor the hub was created with; deliveries are posted to each subscriber's executor
// (so one subscriber gets them in order). If the connection is lost, the hub reconnects and
// LISTENs again; what was notified in between is lost (logged).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"

namespace pgrelay::proxy {

class Pool;
class ServerConnection;

class ListenHub : public std::enable_shared_from_this<ListenHub> {
 public:
  // One whole NotificationResponse message, as the server sent it.
  using Message = std::shared_ptr<const protocol::Buffer>;
  struct Subscriber {
    uint64_t id = 0;                        // the client's id
    asio::any_io_executor executor;         // deliver runs there
    std::function<void(Message)> deliver;
  };

  // `pool` gives the login (and TLS) of the listening connection, which runs on `ex`.
  ListenHub(std::string database, std::shared_ptr<Pool> pool, asio::any_io_executor ex);
  ~ListenHub();

  const std::string& database() const { return database_; }

  // Registers `s` for `channel` (a channel name as PostgreSQL folds it); completes once the
  // server listens on it, so anything notified after this returns reaches `s`. Awaited on
  // `s.executor`. An error is the server's (or the login's): then `s` is not registered.
  awaitable<Result<void>> listen(const std::string& channel, Subscriber s);
  void unlisten(const std::string& channel, uint64_t id);
  void unlisten_all(uint64_t id);

  // Channels with their number of subscribers, for SHOW LISTENERS.
  std::vector<std::pair<std::string, size_t>> channels() const;

 private:
  struct Waiter;
  struct Channel {
    std::map<uint64_t, Subscriber> subscribers;
    bool listening = false;                       // the server's LISTEN completed
    std::vector<std::shared_ptr<Waiter>> waiters;   // listen() calls waiting for it
  };
  struct Command {
    std::string sql;
    std::string channel;   // a LISTEN's channel: its waiters complete with the outcome
  };

  // On ex_: queue a command; the connection runs them one at a time.
  void enqueue(Command c);
  awaitable<void> run();
  awaitable<bool> connect();
  awaitable<bool> send_next();
  void on_message(char type, protocol::Bytes body, protocol::Bytes whole);
  void finish_command(const std::optional<Error>& error);
  void lost(const std::string& why);

  const std::string database_;
  const std::shared_ptr<Pool> pool_;
  const asio::any_io_executor ex_;

  mutable std::mutex mu_;                      // channels_
  std::map<std::string, Channel> channels_;

  // On ex_ only.
  std::unique_ptr<ServerConnection> conn_;
  std::deque<Command> queue_;
  std::optional<Command> in_flight_;
  std::optional<Error> in_flight_error_;
  bool running_ = false;
  bool writing_ = false;
};

// The hubs, one per database, created on a client's first LISTEN.
class ListenHubs {
 public:
  std::shared_ptr<ListenHub> hub_for(const std::string& database, const std::shared_ptr<Pool>& pool,
                                     const asio::any_io_executor& ex);
  std::vector<std::shared_ptr<ListenHub>> hubs() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ListenHub>> hubs_;
};

}  // namespace pgrelay::proxy
