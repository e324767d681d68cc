// A connection's byte stream: the TLS half (OpenSSL over the non-blocking socket) and its error codes.
#include "proxy/net/transport.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>

namespace pgrelay::proxy {
namespace {

class TlsCategory : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }
  std::string message(int value) const override {
    if (value == 0) return "TLS error";
    char text[256];
    ERR_error_string_n(static_cast<unsigned long>(static_cast<unsigned int>(value)), text, sizeof text);
    return text;
  }
};

}  // namespace

const boost::system::error_category& tls_category() {
  static const TlsCategory category;
  return category;
}

// ---- TlsStream ---------------------------------------------------------------------------------

TlsStream::TlsStream(SSL* ssl) : ssl_(ssl) {}

TlsStream::~TlsStream() { SSL_free(ssl_); }

TlsStream::Want TlsStream::failed(int ret, error_code& ec) {
  const int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return Want::kRead;
    case SSL_ERROR_WANT_WRITE: return Want::kWrite;
    case SSL_ERROR_ZERO_RETURN:
      ec = asio::error::eof;   // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a plain close
      return Want::kNothing;
    case SSL_ERROR_SYSCALL:
      if (errno != 0 && errno != EAGAIN) {
        ec = error_code(errno, boost::system::system_category());
        last_error_ = ec.message();
      } else {
        ec = asio::error::eof;
        last_error_ = "connection closed";
      }
      ERR_clear_error();
      return Want::kNothing;
    default: {
      const unsigned long code = ERR_peek_last_error();
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      last_error_ = code ? text : "TLS error " + std::to_string(err);
      if (ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        last_error_ += std::string(": ") + X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
      }
      ERR_clear_error();
      ec = error_code(static_cast<int>(static_cast<unsigned int>(code)), tls_category());
      return Want::kNothing;
    }
  }
}

TlsStream::Want TlsStream::handshake(error_code& ec) {
  ERR_clear_error();
  errno = 0;
  const int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    established_ = true;
    return Want::kNothing;
  }
  return failed(ret, ec);
}

size_t TlsStream::read(void* data, size_t size, Want& want, error_code& ec) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  const int ret = SSL_read_ex(ssl_, data, size, &n);
  if (ret == 1) return n;
  want = failed(ret, ec);
  return 0;
}

size_t TlsStream::write(const void* data, size_t size, Want& want, error_code& ec) {
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  const int ret = SSL_write_ex(ssl_, data, size, &n);
  if (ret == 1) return n;
  want = failed(ret, ec);
  return 0;
}

void TlsStream::shutdown_now() {
  if (!established_) return;
  ERR_clear_error();
  (void)SSL_shutdown(ssl_);   // sends close_notify; never waits for the peer's
  ERR_clear_error();
}

// ---- Transport, TLS half -----------------------------------------------------------------------

template <class Socket>
bool Transport<Socket>::tls_usable(error_code& ec) const {
  if (socket_.is_open()) return true;
  ec = asio::error::bad_descriptor;
  return false;
}

template <class Socket>
awaitable<void> Transport<Socket>::handshake(std::unique_ptr<TlsStream> tls, error_code& ec) {
  tls_ = std::move(tls);
  socket_.non_blocking(true, ec);   // OpenSSL reads and writes the descriptor itself
  if (ec) co_return;
  for (;;) {
    if (!tls_usable(ec)) co_return;
    const Want want = tls_->handshake(ec);
    if (ec || want == Want::kNothing) co_return;
    co_await tls_wait(want, ec);
    if (ec) co_return;
  }
}

template <class Socket>
awaitable<void> Transport<Socket>::tls_wait(Want want, error_code& ec) {
  const auto what = want == Want::kWrite ? Socket::wait_write : Socket::wait_read;
  co_await socket_.async_wait(what, ec_awaitable(ec));
}

template <class Socket>
awaitable<void> Transport<Socket>::tls_wait_readable(error_code& ec) {
  if (tls_->has_pending()) co_return;
  co_await tls_wait(read_wants_, ec);
}

template <class Socket>
size_t Transport<Socket>::tls_read_now(asio::mutable_buffer b, error_code& ec) {
  if (!tls_usable(ec)) return 0;
  auto* data = static_cast<std::byte*>(b.data());
  size_t total = 0;
  // Record by record until the buffer is full or the socket has nothing more: as many bytes
  // per call as a plain read_some would give.
  while (total < b.size()) {
    Want want = Want::kNothing;
    error_code e;
    const size_t n = tls_->read(data + total, b.size() - total, want, e);
    if (e) {
      if (total == 0) ec = e;   // otherwise the next call reports it (OpenSSL repeats it)
      break;
    }
    if (n == 0) {
      read_wants_ = want;
      if (total == 0) ec = asio::error::would_block;
      break;
    }
    total += n;
  }
  return total;
}

template <class Socket>
awaitable<size_t> Transport<Socket>::tls_async_read_some(asio::mutable_buffer b, error_code& ec) {
  for (;;) {
    const size_t n = tls_read_now(b, ec);
    if (ec != asio::error::would_block) co_return n;
    ec = {};
    co_await tls_wait(read_wants_, ec);
    if (ec) co_return 0;
  }
}

template <class Socket>
awaitable<size_t> Transport<Socket>::tls_async_read(asio::mutable_buffer b, error_code& ec) {
  size_t done = 0;
  while (done < b.size()) {
    const size_t n = co_await tls_async_read_some(b + done, ec);
    if (ec) co_return done;
    done += n;
  }
  co_return done;
}

template <class Socket>
awaitable<size_t> Transport<Socket>::tls_async_write(asio::const_buffer b, error_code& ec) {
  const auto* data = static_cast<const std::byte*>(b.data());
  size_t done = 0;
  while (done < b.size()) {
    if (!tls_usable(ec)) co_return done;
    Want want = Want::kNothing;
    // After a want, OpenSSL must be called again with the same bytes: it is, as `done` stays.
    const size_t n = tls_->write(data + done, b.size() - done, want, ec);
    if (ec) co_return done;
    done += n;
    if (n == 0) {
      co_await tls_wait(want, ec);
      if (ec) co_return done;
    }
  }
  co_return done;
}

template <class Socket>
size_t Transport<Socket>::plain_send_now(asio::const_buffer b, error_code& ec) {
  const ssize_t rc = ::send(socket_.native_handle(), b.data(), b.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (rc >= 0) return size_t(rc);
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ec = error_code(errno, asio::error::get_system_category());
  return 0;
}

template <class Socket>
awaitable<size_t> Transport<Socket>::plain_async_write(asio::const_buffer b, error_code& ec) {
  // Asio's async_write would send at once too, but hand its completion to the event loop: one
  // more dispatch and coroutine resumption for each reply, when the socket nearly always has room.
  ec.clear();
  size_t done = 0;
  if (socket_.is_open()) {
    done = plain_send_now(b, ec);
    if (ec) co_return 0;
    if (done == b.size()) co_return done;
  }
  const size_t rest = co_await asio::async_write(socket_, b + done, ec_awaitable(ec));
  co_return done + rest;
}

template <class Socket>
void Transport<Socket>::try_write_now(asio::const_buffer b) {
  if (!socket_.is_open()) return;
  if (!tls_) {
    error_code ignored;
    (void)plain_send_now(b, ignored);
    return;
  }
  if (!tls_->established()) return;
  Want want = Want::kNothing;
  error_code ec;
  (void)tls_->write(b.data(), b.size(), want, ec);
}

template <class Socket>
void Transport<Socket>::shutdown() {
  if (!socket_.is_open()) return;
  if (tls_) tls_->shutdown_now();
  error_code ec;
  socket_.shutdown(Socket::shutdown_both, ec);
}

template class Transport<StreamSocket>;

}  // namespace pgrelay::proxy
