// Online restart, the process being replaced: sends its idle clients to the new process over the
// takeover channel, one kClient message each (the socket attached), and completes each send
// with the new process' kAdopted answer.
//
// Made by the App once the new process accepts on the listening sockets (App::give_over), and
// set as Services::handoff, which sessions call from their worker threads; everything else runs
// on the App's control thread. Sends are pipelined: answers come back by sequence number, in
// whatever order the new process' workers adopt them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

#include "protocol/messages.h"
#include "proxy/app/takeover_channel.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

class TakeoverGiver : public HandoffSink {
 public:
  // `on_cancel`: a CancelRequest the new process received for a key it does not know (a client
  // still here), run on the control thread.
  TakeoverGiver(asio::any_io_executor ex, takeover::Channel channel,
                std::function<void(protocol::BackendKeyData)> on_cancel);
  ~TakeoverGiver() override;

  // From any thread; `done` runs on the control thread.
  void send(int fd, protocol::Buffer state, std::function<void(bool adopted)> done) override;

  // Runs the channel (spawn once, on the control executor): writes what send() queues, reads the
  // answers. Ends when the channel fails or close() is called; every send then completes false.
  void start();
  void close();
  // The channel has ended (the new process went away, or close()).
  bool ended() const { return ended_; }
  uint64_t adopted() const { return adopted_; }
  uint64_t refused() const { return refused_; }

 private:
  struct Outgoing {
    int fd;
    protocol::Buffer state;
    std::function<void(bool)> done;
  };
  awaitable<void> write_loop();
  awaitable<void> read_loop();
  void end(const std::string& why);

  asio::any_io_executor ex_;
  takeover::Channel channel_;
  std::function<void(protocol::BackendKeyData)> on_cancel_;
  std::deque<Outgoing> queue_;                                        // control thread only
  std::unordered_map<uint64_t, std::function<void(bool)>> waiting_;   // sent, answer to come
  asio::steady_timer wake_;                                           // the write loop's doorbell
  uint64_t next_seq_ = 1;
  uint64_t adopted_ = 0, refused_ = 0;
  bool ended_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);        // send()'s posts check it
};

}  // namespace pgrelay::proxy
