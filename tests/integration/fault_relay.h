// A TCP relay for fault injection: listens on a free loopback port and forwards each connection
// to 127.0.0.1:target, on one thread of its own, until told to blackhole.
//
// Blackholed, it keeps every connection open and keeps reading both sides (so the kernel
// acknowledges everything), but forwards nothing and answers nothing: to pgrelay, the server
// stops answering without closing, as after a network partition or a hung host. New
// connections are accepted and get the same silence. heal() forwards new connections again;
// the blackholed ones stay silent, as connections whose state a firewall or NAT lost.
//
// reset_on(marker) arms a one-shot fault instead: the first bytes pgrelay sends that contain
// `marker` are not forwarded, and their connection is reset, as if the server died just as the
// request reached it. silence_on(marker) is the same, but the connection goes silent (as a
// blackholed one) instead: a server that hangs on that one request.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace pgrelay::it {

class FaultRelay {
 public:
  explicit FaultRelay(int target_port);        // throws if it cannot listen
  ~FaultRelay();                               // stops the thread, closes every connection
  FaultRelay(const FaultRelay&) = delete;
  FaultRelay& operator=(const FaultRelay&) = delete;

  int port() const { return port_; }
  void blackhole() { blackholed_ = true; }
  void heal() { blackholed_ = false; }
  void reset_on(std::string marker) { arm(std::move(marker), /*silence=*/false); }
  void silence_on(std::string marker) { arm(std::move(marker), /*silence=*/true); }
  bool reset_done() const { return reset_done_; }   // the armed fault has struck (either kind)
  int connections() const { return connections_; }   // open client-side connections, silent ones too

 private:
  void arm(std::string marker, bool silence);
  void loop();
  int target_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};                     // a pipe: the destructor wakes the loop's poll()
  std::atomic<bool> blackholed_{false};
  std::atomic<bool> stopping_{false};
  std::mutex reset_mutex_;
  std::string reset_marker_;                   // armed while non-empty
  bool silence_ = false;                       // the armed fault silences rather than resets
  std::atomic<bool> reset_done_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

}  // namespace pgrelay::it
