// Read buffers lent to sessions while they have bytes in hand, so idle clients hold none.
//
// One pool per worker thread (thread_local): a session takes a buffer when its socket is
// readable and gives it back once the bytes are written on, so memory follows the number of
// busy clients, not connected ones.
#pragma once

#include <vector>

#include "protocol/bytes.h"

namespace pgrelay::proxy {

class BufferPool {
 public:
  static constexpr size_t kBufferSize = 32 * 1024;
  static constexpr size_t kMaxFree = 64;   // beyond this, returned buffers are freed

  // The calling thread's pool.
  static BufferPool& local() {
    thread_local BufferPool pool;
    return pool;
  }

  protocol::Buffer take() {
    if (free_.empty()) return protocol::Buffer(kBufferSize);
    protocol::Buffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(protocol::Buffer b) {
    if (free_.size() < kMaxFree && b.size() == kBufferSize) free_.push_back(std::move(b));
  }

 private:
  std::vector<protocol::Buffer> free_;
};

// A buffer from the local pool, returned when it goes out of scope.
class PooledBuffer {
 public:
  PooledBuffer() : buf_(BufferPool::local().take()) {}
  ~PooledBuffer() { BufferPool::local().give(std::move(buf_)); }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  protocol::Buffer& get() { return buf_; }

 private:
  protocol::Buffer buf_;
};

}  // namespace pgrelay::proxy
