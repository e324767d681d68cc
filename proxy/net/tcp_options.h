// The TCP options pgrelay sets on every client and server socket over TCP.
#pragma once

#include "conf/config.h"

namespace pgrelay::proxy {

// TCP_NODELAY: a protocol message goes out at once, not when the next one fills a segment.
void set_tcp_nodelay(int fd);

// SO_KEEPALIVE as tcp.keepalive says and, for each of TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT and
// TCP_USER_TIMEOUT set in `tcp` (non-zero), that value; what is zero keeps the system's default.
// Returns the name of the first option the kernel refused, or nullptr (the socket stays usable
// either way: these only shorten how long a dead peer goes unnoticed).
const char* set_tcp_keepalive(int fd, const conf::TcpSettings& tcp);

// A warning, once per process for each `side` ("client", "server"), that the kernel refused `option`.
void warn_tcp_option_refused(const char* option, const char* side);

}  // namespace pgrelay::proxy
