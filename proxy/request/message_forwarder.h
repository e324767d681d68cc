// Passing a message stream on, chunk by chunk, with some messages replaced or dropped.
//
// Both directions of a session use it. Most chunks go out exactly as read (no copy); only
// when a message must change (a renamed prepared statement, a hidden reply) is an output
// buffer built. Messages the Framer inspects arrive whole even when they straddle reads, so
// their raw bytes are never sent half: a partial header is kept for the next read, a partial
// inspected body is held back and re-encoded from the Framer's assembled copy. Skipped
// messages (rows, COPY data) stream through with constant memory. Pure: no I/O.
#pragma once

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

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

  // One pass: processes buf[0, held() + n) after n new bytes were read at buf + held().
  // decide(frame, replacement) sees each complete message in order (replacement is cleared
  // before each call). The returned bytes stay valid until the next process(); then call
  // keep_held(buf) before reading again. Errors are the Framer's (bad length, too large).
  // emitted(out_end), when given, is told after each message where its output ends in the
  // returned bytes (as emit() does).
  template <class Decide>
  Result<Chunk> process(std::span<std::byte> buf, size_t n, Decide&& decide) {
    return process(buf, n, std::forward<Decide>(decide), [](size_t) {});
  }
  template <class Decide, class Emitted>
  Result<Chunk> process(std::span<std::byte> buf, size_t n, Decide&& decide, Emitted&& emitted);

  // Two passes, for a caller that must see every message of a chunk before it decides any
  // (the client direction classifies a whole request before it takes a server connection):
  // scan() frames buf[0, held() + n) and records each complete message; on_frame(frame)
  // returning false stops before that message (as kStop). Then emit() builds the output:
  // decide(index, frame, replacement) -> kPass or kReplace for each recorded message in order,
  // and emitted(index, out_end) reports where that message's output ends in the returned
  // bytes. Bodies of recorded messages stay valid until the next scan().
  struct Scanned {
    protocol::Frame frame;
    size_t end = 0;                // offset in buf just past the message
    bool whole_here = false;       // all of its bytes are in buf (else it began in an earlier read)
  };
  template <class OnFrame>
  Result<void> scan(std::span<std::byte> buf, size_t n, OnFrame&& on_frame);
  const std::vector<Scanned>& scanned() const { return scanned_; }
  // The scanned chunk carries bytes past its last whole message (the start of one that streams).
  bool has_unscanned_bytes() const { return scan_limit_ > (scanned_.empty() ? 0 : scanned_.back().end); }
  template <class Decide, class Emitted>
  Chunk emit(Decide&& decide, Emitted&& emitted);

  // Moves the held header bytes to the front of `buf` (after the caller wrote the chunk).
  void keep_held(std::span<std::byte> buf) {
    if (held_ > 0 && hold_from_ != 0) std::memmove(buf.data(), buf.data() + hold_from_, held_);
  }

 private:
  // The output of one chunk under construction: the input bytes as they are until a message
  // must change, then a copy with replacements.
  class Output {
   public:
    Output(const std::byte* base, protocol::Buffer& out) : base_(base), out_(out) { out_.clear(); }
    // Applies kPass or kReplace to a message ending at `end`; returns where its output ends.
    size_t apply(const protocol::Frame& f, size_t end, bool whole_here, Verdict v, const protocol::Buffer& replacement) {
      const size_t length = 5 + size_t(f.body_length);
      if (v == Verdict::kPass && (whole_here || !f.inspected)) {
        return rewriting_ ? out_.size() + (end - raw_from_) : end;
      }
      // Replaced, or an inspected message whose first bytes were held back: build the output.
      if (!rewriting_) {
        rewriting_ = true;
        raw_from_ = 0;
      }
      flush_raw(whole_here ? end - length : 0);
      if (v == Verdict::kReplace) {
        out_.insert(out_.end(), replacement.begin(), replacement.end());
      } else {
        protocol::Writer w(out_);
        size_t mark = w.begin(f.type);
        w.bytes(f.body);
        w.end(mark);
      }
      raw_from_ = end;
      return out_.size();
    }
    protocol::Bytes finish(size_t limit) {
      if (limit < raw_from_) limit = raw_from_;
      if (!rewriting_) return protocol::Bytes(base_, limit);
      flush_raw(limit);
      return protocol::Bytes(out_);
    }

   private:
    void flush_raw(size_t upto) {
      if (upto > raw_from_) out_.insert(out_.end(), base_ + raw_from_, base_ + upto);
      raw_from_ = std::max(raw_from_, upto);
    }
    const std::byte* base_;
    protocol::Buffer& out_;
    bool rewriting_ = false;
    size_t raw_from_ = 0;    // bytes of the input before this were sent or replaced
  };

  // After a feed: how much of buf[0, total) goes out now, and what is held for the next read.
  size_t settle(size_t total, bool stopped, size_t stop_at);

  protocol::Framer framer_;
  protocol::Buffer out_;
  protocol::Buffer replacement_;
  size_t held_ = 0;
  size_t hold_from_ = 0;
  // scan() -> emit()
  std::vector<Scanned> scanned_;
  protocol::Buffer straddled_;          // the body of a scanned message that began in an earlier read
  const std::byte* scan_base_ = nullptr;
  size_t scan_limit_ = 0;
  bool scan_stopped_ = false;
};

inline size_t MessageForwarder::settle(size_t total, bool stopped, size_t stop_at) {
  if (stopped) {
    held_ = 0;
    return stop_at;
  }
  // A partial header is kept for the next read; a partial inspected body is held back (the
  // Framer has it and delivers it whole); a partial skipped body streams.
  size_t pending = framer_.pending_bytes();
  bool partial_header = framer_.in_partial_header();
  size_t in_buf = std::min(pending, total);
  size_t limit = total - in_buf;
  held_ = partial_header ? in_buf : 0;
  hold_from_ = limit;
  return limit;
}

template <class Decide, class Emitted>
Result<MessageForwarder::Chunk> MessageForwarder::process(std::span<std::byte> buf, size_t n, Decide&& decide,
                                                          Emitted&& emitted) {
  const size_t fresh_from = held_;
  const size_t total = held_ + n;
  Output output(buf.data(), out_);
  bool stopped = false;
  size_t stop_at = 0;
  auto fed = framer_.feed(protocol::Bytes(buf.data() + fresh_from, n), [&](const protocol::Frame& f, size_t end_fresh) {
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
    emitted(output.apply(f, end, whole_here, v, replacement_));
    return protocol::FrameAction::kContinue;
  });
  if (!fed.ok()) return fed.error();
  const size_t limit = settle(total, stopped, stop_at);
  return Chunk{output.finish(limit), stopped};
}

template <class OnFrame>
Result<void> MessageForwarder::scan(std::span<std::byte> buf, size_t n, OnFrame&& on_frame) {
  const size_t fresh_from = held_;
  const size_t total = held_ + n;
  scanned_.clear();
  scan_base_ = buf.data();
  scan_stopped_ = false;
  size_t stop_at = 0;
  auto fed = framer_.feed(protocol::Bytes(buf.data() + fresh_from, n), [&](const protocol::Frame& f, size_t end_fresh) {
    const size_t end = fresh_from + end_fresh;
    const size_t length = 5 + size_t(f.body_length);
    const bool whole_here = end >= length;
    if (!on_frame(f)) {
      scan_stopped_ = true;
      stop_at = whole_here ? end - length : 0;
      return protocol::FrameAction::kStop;
    }
    Scanned& s = scanned_.emplace_back(Scanned{f, end, whole_here});
    if (!whole_here && f.inspected) {
      // Assembled in the Framer's side buffer, which a partial message at the end of this read
      // would reuse before emit(): keep a copy (only the first message of a read can be one).
      straddled_.assign(f.body.begin(), f.body.end());
      s.frame.body = protocol::Bytes(straddled_);
    }
    return protocol::FrameAction::kContinue;
  });
  if (!fed.ok()) return fed.error();
  scan_limit_ = settle(total, scan_stopped_, stop_at);
  return {};
}

template <class Decide, class Emitted>
MessageForwarder::Chunk MessageForwarder::emit(Decide&& decide, Emitted&& emitted) {
  Output output(scan_base_, out_);
  for (size_t i = 0; i < scanned_.size(); ++i) {
    const Scanned& s = scanned_[i];
    replacement_.clear();
    const Verdict v = decide(i, s.frame, replacement_);
    emitted(i, output.apply(s.frame, s.end, s.whole_here, v == Verdict::kStop ? Verdict::kPass : v, replacement_));
  }
  return Chunk{output.finish(scan_limit_), scan_stopped_};
}

}  // namespace pgrelay::proxy
