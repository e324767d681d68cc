// Opening a stream socket to a Unix-domain socket, an IP address, or a host name.
#pragma once

#include <functional>
#include <string>

#include "proxy/net/asio.h"

namespace pgrelay::proxy {

// Connects `socket` to the Unix-domain socket `unix_path` when it is not empty, else to `host`
// (an IP address, or a name tried address by address as it resolves) on `port`. `stop`, when
// given, is asked before each further address: true ends the tries with timed_out.
awaitable<error_code> connect_stream(StreamSocket& socket, std::string unix_path, std::string host, int port,
                                     std::function<bool()> stop = {});

}  // namespace pgrelay::proxy
