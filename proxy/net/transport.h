// A connection's byte stream: in clear over its socket, or through OpenSSL (TLS) over the same socket.
//
// Transport<Socket> owns the socket and, once TLS is on, the TlsStream. The plain path is the
// socket's own operations behind one predictable branch per call (no virtual calls; reads return
// Asio's awaitable directly, writes first send what the socket takes at once); the TLS path runs
// OpenSSL on the non-blocking descriptor and waits for readiness with async_wait. Single executor: like
// the socket, a Transport is used from one thread at a time (moving between workers is fine, see
// ServerConnection::attach). One read and one write may be outstanding at once (a session's two
// directions); OpenSSL calls never overlap because they never block.
//
// OpenSSL uses the descriptor number, so every TLS call first checks the socket is still open:
// a watchdog that closed it must not let OpenSSL touch a descriptor number reused since.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "proxy/net/asio.h"

namespace pgrelay::proxy {

// OpenSSL errors as error_codes; message() is OpenSSL's text for the code.
const boost::system::error_category& tls_category();

// One TLS session over a connected socket's descriptor. Owns its SSL, never the descriptor.
// Every call returns at once: what it did, or what it waits for.
class TlsStream {
 public:
  enum class Want { kNothing, kRead, kWrite };

  explicit TlsStream(SSL* ssl);   // takes ownership; SSL_set_fd already done
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  SSL* ssl() const { return ssl_; }
  // One step of the handshake: kNothing once it is done (or failed: `ec`).
  Want handshake(error_code& ec);
  bool established() const { return established_; }
  // Up to `size` bytes; 0 with `want` set when it must wait; eof on close_notify or a closed socket.
  size_t read(void* data, size_t size, Want& want, error_code& ec);
  size_t write(const void* data, size_t size, Want& want, error_code& ec);
  // Decrypted bytes, or a record read from the socket but not yet decrypted, are waiting.
  bool has_pending() const { return SSL_has_pending(ssl_) == 1; }
  // Sends close_notify if it can without waiting.
  void shutdown_now();
  // What the last failure was, in OpenSSL's words (with the certificate verification result).
  const std::string& last_error() const { return last_error_; }

 private:
  Want failed(int ret, error_code& ec);

  SSL* ssl_;
  bool established_ = false;
  std::string last_error_;
};

template <class Socket>
class Transport {
 public:
  using Want = TlsStream::Want;

  explicit Transport(Socket socket) : socket_(std::move(socket)) {}

  Socket& socket() { return socket_; }
  const Socket& socket() const { return socket_; }
  // The socket's own names, for code that only closes or cancels.
  auto get_executor() { return socket_.get_executor(); }
  bool is_open() const { return socket_.is_open(); }
  void close(error_code& ec) { socket_.close(ec); }
  void cancel(error_code& ec) { socket_.cancel(ec); }

  bool is_tls() const { return tls_ != nullptr; }
  TlsStream* tls() const { return tls_.get(); }

  // Runs the TLS handshake over the connected socket; from then on every byte goes through
  // `tls`. Nothing may be pending on the socket. On failure `ec` is set (tls_category: see
  // tls()->last_error()) and the transport must only be closed.
  awaitable<void> handshake(std::unique_ptr<TlsStream> tls, error_code& ec);

  // Bytes can be read without waiting for the socket (TLS holds them).
  bool has_buffered() const { return tls_ && tls_->has_pending(); }

  // Returns when read_some() may find bytes. Cancelled by cancel()/close() (operation_aborted).
  awaitable<void> wait_readable(error_code& ec) {
    if (!tls_) return socket_.async_wait(Socket::wait_read, ec_awaitable(ec));
    return tls_wait_readable(ec);
  }
  // Non-blocking read: would_block when nothing is there. TLS fills `b` as far as it can.
  size_t read_some(asio::mutable_buffer b, error_code& ec) {
    if (!tls_) return socket_.read_some(b, ec);
    return tls_read_now(b, ec);
  }
  // Waits for and reads at least one byte.
  awaitable<size_t> async_read_some(asio::mutable_buffer b, error_code& ec) {
    if (!tls_) return socket_.async_read_some(b, ec_awaitable(ec));
    return tls_async_read_some(b, ec);
  }
  // Reads exactly b.size() bytes.
  awaitable<size_t> async_read(asio::mutable_buffer b, error_code& ec) {
    if (!tls_) return asio::async_read(socket_, b, ec_awaitable(ec));
    return tls_async_read(b, ec);
  }
  // Writes all of `b`. What the socket takes at once is written at once (usually all of it):
  // no trip through the event loop; only the rest waits for the socket.
  awaitable<size_t> async_write(asio::const_buffer b, error_code& ec) {
    if (!tls_) return plain_async_write(b, ec);
    return tls_async_write(b, ec);
  }

  // Best effort, never waits (an error before closing, Terminate): as much of `b` as the socket
  // takes now; nothing while a TLS handshake is unfinished.
  void try_write_now(asio::const_buffer b);
  // Plain (not TLS) and open: what the socket takes of `b` now, without waiting (0 when it is
  // full); `ec` only on a real failure. The rest goes with async_write. TLS: nothing, no error.
  size_t send_now(asio::const_buffer b, error_code& ec) {
    ec.clear();
    if (tls_ || !socket_.is_open()) return 0;
    return plain_send_now(b, ec);
  }
  // Ends the stream: close_notify (TLS, best effort), then shutdown of both directions.
  void shutdown();

 private:
  bool tls_usable(error_code& ec) const;
  awaitable<void> tls_wait(Want want, error_code& ec);
  awaitable<void> tls_wait_readable(error_code& ec);
  size_t tls_read_now(asio::mutable_buffer b, error_code& ec);
  awaitable<size_t> tls_async_read_some(asio::mutable_buffer b, error_code& ec);
  awaitable<size_t> tls_async_read(asio::mutable_buffer b, error_code& ec);
  awaitable<size_t> tls_async_write(asio::const_buffer b, error_code& ec);
  awaitable<size_t> plain_async_write(asio::const_buffer b, error_code& ec);
  // What the open plain socket takes of `b` now, without waiting (0 when it is full); `ec` only
  // on a real failure. No SIGPIPE.
  size_t plain_send_now(asio::const_buffer b, error_code& ec);

  Socket socket_;
  std::unique_ptr<TlsStream> tls_;
  Want read_wants_ = Want::kRead;   // what the last TLS read that found nothing waits for
};

// Client and server sockets alike are TCP or Unix-domain (StreamSocket), instantiated once in
// transport.cc.
using ClientTransport = Transport<StreamSocket>;
using ServerTransport = Transport<StreamSocket>;
extern template class Transport<StreamSocket>;

}  // namespace pgrelay::proxy
