// Read buffers lent to sessions while they have bytes in hand, so idle clients hold none.
//
// One pool per worker thread (thread_local): a session takes a buffer when its socket is
// readable and gives it back once the bytes are written on, so memory follows the number of
// busy clients, not connected ones.
#pragma once

#include <atomic>
#include <cstdint>
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
    lent_total.fetch_add(1, std::memory_order_relaxed);
    if (free_.empty()) return protocol::Buffer(kBufferSize);
    free_total.fetch_sub(1, std::memory_order_relaxed);
    protocol::Buffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(protocol::Buffer b) {
    lent_total.fetch_sub(1, std::memory_order_relaxed);
    if (free_.size() < kMaxFree && b.size() == kBufferSize) {
      free_total.fetch_add(1, std::memory_order_relaxed);
      free_.push_back(std::move(b));
    }
  }

  // Buffers lent out and kept for reuse, over every thread (SHOW MEM).
  static inline std::atomic<int64_t> lent_total{0};
  static inline std::atomic<int64_t> free_total{0};

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
