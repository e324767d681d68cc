// Telling the service manager how pgrelay is doing: systemd's sd_notify (Type=notify units).
//
// READY=1 once the listeners accept, RELOADING=1 ... READY=1 around a reload, STOPPING=1 at the
// start of a shutdown, STATUS= lines for `systemctl status`, and WATCHDOG=1 pings when the unit
// sets WatchdogSec=. Built on libsystemd when CMake found it (PGRELAY_HAVE_SYSTEMD); without it,
// or when pgrelay was not started by a service manager ($NOTIFY_SOCKET unset), every call is a
// no-op. Thread-safe: each call is one datagram, so the console's RELOAD may call it from a worker.
#pragma once

#include <chrono>
#include <string>

namespace pgrelay::proxy {

class ServiceNotifier {
 public:
  ServiceNotifier();   // reads $NOTIFY_SOCKET and $WATCHDOG_USEC (for this pid) once

  // True when a service manager listens ($NOTIFY_SOCKET is set and libsystemd is built in).
  bool active() const { return active_; }
  // The unit's WatchdogSec= (zero when off, or not under a service manager): ping at least twice
  // within it.
  std::chrono::microseconds watchdog_interval() const { return watchdog_; }

  void ready(const std::string& status);
  void reloading(const std::string& status);
  void stopping(const std::string& status);
  void status(const std::string& status);
  void watchdog_ping();
  // Online restart: the process that took over is the service's main process from now on.
  void main_pid(int pid);
  // In a process started by the one it takes over from (SIGUSR2): the unit's watchdog, whose
  // $WATCHDOG_PID names that process; this one pings once it is the main process.
  void inherit_watchdog();

 private:
  void send(const std::string& assignments);

  bool active_ = false;
  std::chrono::microseconds watchdog_{0};
};

}  // namespace pgrelay::proxy
