// Transport writes (at once, or the rest when the socket has room) and cancel keys, over real sockets.
#include <doctest/doctest.h>

#include <sys/socket.h>

#include <set>
#include <string>
#include <vector>

#include "proxy/net/transport.h"
#include "proxy/server/cancel_registry.h"

namespace pgrelay::proxy {
namespace {

// A connected pair of Unix-domain stream sockets on `io`.
std::pair<StreamSocket, StreamSocket> socket_pair(asio::io_context& io) {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  StreamSocket a(io, asio::generic::stream_protocol(AF_UNIX, 0), fds[0]);
  StreamSocket b(io, asio::generic::stream_protocol(AF_UNIX, 0), fds[1]);
  return {std::move(a), std::move(b)};
}

std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = std::byte(uint8_t(i * 131 + (i >> 12)));
  return out;
}

TEST_CASE("Transport::async_write: a small write completes at once and clears an earlier error") {
  asio::io_context io;
  auto [a, b] = socket_pair(io);
  ClientTransport writer(std::move(a));
  const auto bytes = pattern(100);
  size_t written = 0;
  error_code ec = asio::error::broken_pipe;   // left over from an earlier call: must not stick
  asio::co_spawn(io, [&]() -> awaitable<void> {
    written = co_await writer.async_write(asio::buffer(bytes), ec);
  }, asio::detached);
  io.run();
  CHECK_FALSE(ec);
  CHECK(written == bytes.size());
  std::vector<std::byte> got(bytes.size());
  CHECK(asio::read(b, asio::buffer(got)) == bytes.size());
  CHECK(got == bytes);
}

TEST_CASE("Transport::async_write: more than the socket takes at once waits for room, in order") {
  asio::io_context io;
  auto [a, b] = socket_pair(io);
  ClientTransport writer(std::move(a));
  const auto bytes = pattern(8u << 20);   // far more than a socket buffer: the rest goes through the event loop
  size_t written = 0;
  error_code write_ec, read_ec;
  std::vector<std::byte> got(bytes.size());
  size_t got_n = 0;
  asio::co_spawn(io, [&]() -> awaitable<void> {
    written = co_await writer.async_write(asio::buffer(bytes), write_ec);
  }, asio::detached);
  // The reader starts only after the writer has filled the socket.
  asio::co_spawn(io, [&]() -> awaitable<void> {
    asio::steady_timer pause(io, std::chrono::milliseconds(20));
    error_code ignored;
    co_await pause.async_wait(ec_awaitable(ignored));
    got_n = co_await asio::async_read(b, asio::buffer(got), ec_awaitable(read_ec));
  }, asio::detached);
  io.run();
  CHECK_FALSE(write_ec);
  CHECK_FALSE(read_ec);
  CHECK(written == bytes.size());
  CHECK(got_n == bytes.size());
  CHECK(got == bytes);
}

TEST_CASE("Transport::async_write: a peer that is gone is an error, not a crash or a signal") {
  asio::io_context io;
  auto [a, b] = socket_pair(io);
  ClientTransport writer(std::move(a));
  b.close();
  const auto bytes = pattern(4096);
  error_code ec;
  asio::co_spawn(io, [&]() -> awaitable<void> { (void)co_await writer.async_write(asio::buffer(bytes), ec); },
                 asio::detached);
  io.run();
  CHECK(ec);   // EPIPE (MSG_NOSIGNAL: no SIGPIPE)
}

TEST_CASE("CancelRegistry: keys are unique and their secrets unpredictable; a session pid is kept") {
  CancelRegistry registry;
  std::set<uint64_t> keys;
  std::set<int32_t> secrets;
  std::vector<protocol::BackendKeyData> issued;
  for (int i = 0; i < 3000; ++i) {   // more than one 4 KiB draw from the CSPRNG
    auto slot = std::make_shared<CancelSlot>();
    const auto key = registry.register_client(slot);
    CHECK(key.pid > 0);
    keys.insert((uint64_t(uint32_t(key.pid)) << 32) | uint32_t(key.secret));
    secrets.insert(key.secret);
    issued.push_back(key);
    CHECK(registry.find(key) == slot);
  }
  CHECK(keys.size() == 3000);
  CHECK(secrets.size() > 2990);   // 32 random bits each: a handful of collisions at most
  const auto with_pid = registry.register_client(std::make_shared<CancelSlot>(), 4242);
  CHECK(with_pid.pid == 4242);
  registry.unregister(issued.front());
  CHECK(registry.find(issued.front()) == nullptr);
}

TEST_CASE("CancelRegistry: a client registered without a slot is bound to one later") {
  CancelRegistry registry;
  const auto key = registry.register_client(nullptr);   // logged in, no server connection yet
  CHECK(registry.find(key) == nullptr);
  auto slot = std::make_shared<CancelSlot>();
  registry.bind(key, slot);
  CHECK(registry.find(key) == slot);
  registry.unregister(key);
  CHECK(registry.find(key) == nullptr);
  registry.bind(key, slot);   // gone: binding does not bring it back
  CHECK(registry.find(key) == nullptr);
}

}  // namespace
}  // namespace pgrelay::proxy
