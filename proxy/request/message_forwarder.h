// Passing a message stream on, chunk by chunk, with some messages replaced or dropped.
//
// Both directions of a session use it. Most chunks go out exactly as read (no copy); only
// when a message must change (a renamed prepared statement, a hidden reply) is an output
// buffer built. Messages the Framer inspects arrive whole even when they straddle reads, so
// their raw bytes are never sent half: a partial header is kept for the next read, a partial
// inspected body is held back and re-encoded from the Framer's assembled copy. Skipped
// messages (rows, COPY data) stream through with constant memory. Pure: no I/O.
#pragma once

#include <cstring>
#include <span>

#include "protocol/framer.h"

namespace pgrelay::proxy {

// kReplace and kStop are exact only for types the Framer inspects: the start of a skipped
// message may have gone out with an earlier chunk before its end is seen.
enum class Verdict {
  kPass,       // send the message as it came
  kReplace,    // send the replacement bytes instead (empty: drop it)
  kStop,       // stop before this message: send what came before it, process nothing after
};

class MessageForwarder {
 public:
  explicit MessageForwarder(uint32_t max_message_size = protocol::kDefaultMaxMessageSize) : framer_(max_message_size) {}

  protocol::Framer& framer() { return framer_; }
  const protocol::Framer& framer() const { return framer_; }

  // Bytes of an incomplete header kept at the front of the read buffer: read new bytes
  // into buf + held().
  size_t held() const { return held_; }

  struct Chunk {
    protocol::Bytes send;          // what to write now
    bool stopped = false;          // decide() returned kStop
  };

  // Processes buf[0, held() + n) after n new bytes were read at buf + held(). decide(frame,
  // replacement) sees each complete message in order (replacement is cleared before each
  // call). The returned bytes stay valid until the next process(); then call
  // keep_held(buf) before reading again. Errors are the Framer's (bad length, too large).
  template <class Decide>
  Result<Chunk> process(std::span<std::byte> buf, size_t n, Decide&& decide);

  // Moves the held header bytes to the front of `buf` (after the caller wrote the chunk).
  void keep_held(std::span<std::byte> buf) {
    if (held_ > 0 && hold_from_ != 0) std::memmove(buf.data(), buf.data() + hold_from_, held_);
  }

 private:
  protocol::Framer framer_;
  protocol::Buffer out_;
  protocol::Buffer replacement_;
  size_t held_ = 0;
  size_t hold_from_ = 0;
};

template <class Decide>
Result<MessageForwarder::Chunk> MessageForwarder::process(std::span<std::byte> buf, size_t n, Decide&& decide) {
  const size_t fresh_from = held_;
  const size_t total = held_ + n;
  const std::byte* base = buf.data();
  out_.clear();
  bool rewriting = false;
  size_t raw_from = 0;       // bytes of buf before this were sent or replaced
  bool stopped = false;
  size_t stop_at = 0;
  auto flush_raw = [&](size_t upto) {
    if (upto > raw_from) out_.insert(out_.end(), base + raw_from, base + upto);
    raw_from = std::max(raw_from, upto);
  };
  auto fed = framer_.feed(protocol::Bytes(base + fresh_from, n), [&](const protocol::Frame& f, size_t end_fresh) {
    const size_t end = fresh_from + end_fresh;
    const size_t length = 5 + size_t(f.body_length);
    const bool whole_here = end >= length;          // all of its bytes are in buf
    replacement_.clear();
    Verdict v = decide(f, replacement_);
    if (v == Verdict::kStop) {
      stopped = true;
      stop_at = whole_here ? end - length : 0;
      return protocol::FrameAction::kStop;
    }
    if (v == Verdict::kPass && (whole_here || !f.inspected)) return protocol::FrameAction::kContinue;
    // Replaced, or an inspected message whose first bytes were held back: build the output.
    if (!rewriting) {
      rewriting = true;
      raw_from = 0;
    }
    flush_raw(whole_here ? end - length : 0);
    if (v == Verdict::kReplace) {
      out_.insert(out_.end(), replacement_.begin(), replacement_.end());
    } else {
      protocol::Writer w(out_);
      size_t mark = w.begin(f.type);
      w.bytes(f.body);
      w.end(mark);
    }
    raw_from = end;
    return protocol::FrameAction::kContinue;
  });
  if (!fed.ok()) return fed.error();

  size_t limit;
  if (stopped) {
    limit = stop_at;
    held_ = 0;
  } else {
    // A partial header is kept for the next read; a partial inspected body is held back (the
    // Framer has it and delivers it whole); a partial skipped body streams.
    size_t pending = framer_.pending_bytes();
    bool partial_header = framer_.in_partial_header();
    size_t in_buf = std::min(pending, total);
    limit = total - in_buf;
    held_ = partial_header ? in_buf : 0;
    hold_from_ = limit;
  }
  if (limit < raw_from) limit = raw_from;
  if (!rewriting) return Chunk{protocol::Bytes(base, limit), stopped};
  flush_raw(limit);
  return Chunk{protocol::Bytes(out_), stopped};
}

}  // namespace pgrelay::proxy
