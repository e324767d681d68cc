// Opening a stream socket to a Unix-domain socket, an IP address, or a host name.
#include "proxy/net/connect.h"

namespace pgrelay::proxy {

awaitable<error_code> connect_stream(StreamSocket& socket, std::string unix_path, std::string host, int port,
                                     std::function<bool()> stop) {
  error_code ec;
  if (!unix_path.empty()) {
    co_await socket.async_connect(asio::local::stream_protocol::endpoint(unix_path), ec_awaitable(ec));
    co_return ec;
  }
  const auto addr = asio::ip::make_address(host, ec);
  if (!ec) {
    co_await socket.async_connect(tcp::endpoint(addr, uint16_t(port)), ec_awaitable(ec));
    co_return ec;
  }
  tcp::resolver resolver(socket.get_executor());
  auto results = co_await resolver.async_resolve(host, std::to_string(port), ec_awaitable(ec));
  if (ec) co_return ec;
  for (const auto& entry : results) {
    if (stop && stop()) co_return asio::error::timed_out;
    if (socket.is_open()) socket.close(ec);
    co_await socket.async_connect(entry.endpoint(), ec_awaitable(ec));
    if (!ec) break;
  }
  co_return ec;
}

}  // namespace pgrelay::proxy
