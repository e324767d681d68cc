// Incremental framing of typed PostgreSQL v3 messages: any split of bytes in, message boundaries out.
//
// Protocol: https://www.postgresql.org/docs/15/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS
// Every message after the startup phase is: type byte, Int32 length (counting itself, not the
// type byte), body. The Framer walks a byte stream chunk by chunk without copying it. For types
// the caller asked to inspect it delivers the whole body contiguously (assembling it in a
// bounded side buffer only when it straddles chunks); every other message is skipped over,
// which is how a 1 GiB result streams through with constant memory.
#pragma once

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <string>

#include "protocol/bytes.h"
#include "protocol/result.h"

namespace pgrelay::protocol {

inline constexpr uint32_t kDefaultMaxMessageSize = 256u << 20;   // DataRow, CopyData
inline constexpr uint32_t kDefaultMaxStartupSize = 10u << 10;    // startup-phase packets

// One message boundary. `body` is the whole body for inspected types and empty for skipped
// ones, except that a peeked type's body is there when it is whole in the chunk being fed (the
// message still streams as a skipped one: `inspected` is false). Valid only during the callback.
struct Frame {
  char type = 0;
  uint32_t body_length = 0;     // excludes the type byte and the length field
  Bytes body;
  bool inspected = false;
};

enum class FrameAction { kContinue, kStop };

class Framer {
 public:
  explicit Framer(uint32_t max_message_size = kDefaultMaxMessageSize)
      : max_message_size_(max_message_size) {}

  // Deliver whole bodies of messages of this type to the callback.
  void inspect(char type) { inspect_.set(uint8_t(type)); }
  void inspect_all() { inspect_.set(); }
  // Deliver bodies of messages of this type when they arrive whole in one chunk, without ever
  // copying: a glimpse of DataRows for observers, at no cost to a large result streaming through.
  void peek(char type) { peek_.set(uint8_t(type)); }

  // Consumes `in` from its start. For each message that ends inside `in`, calls
  // on_frame(const Frame&, size_t end) where `end` is the offset in `in` just past it; the
  // callback returns kStop to stop right there. Returns the number of bytes consumed: all of
  // `in` unless stopped. A length below 4 or above the limit is an error (SQLSTATE 08P01 or
  // 54000) and leaves the Framer failed: every later call returns the same error.
  template <class OnFrame>
  Result<size_t> feed(Bytes in, OnFrame&& on_frame);

  // True between messages: nothing of a partial message has been consumed.
  bool at_boundary() const { return state_ == State::kHeader && header_have_ == 0; }
  // Bytes of the incomplete message at the end of the input so far that a caller forwarding
  // whole messages must hold back: a partial header (type unknown yet), or a partial inspected
  // body (delivered whole later). 0 at a boundary and inside a skipped body, which streams.
  size_t pending_bytes() const {
    if (state_ == State::kHeader) return header_have_;
    if (state_ == State::kBody && inspecting_) return 5 + size_t(body_have_);
    return 0;
  }
  // True while a header is incomplete (its type may not be known yet).
  bool in_partial_header() const { return state_ == State::kHeader && header_have_ > 0; }
  // Bytes held in the side buffer for a straddling inspected message.
  size_t buffered() const { return assembly_.capacity(); }
  void release_memory() { Buffer().swap(assembly_); }

 private:
  enum class State : uint8_t { kHeader, kBody, kFailed };
  Result<size_t> fail(Error e) { state_ = State::kFailed; error_ = e; return e; }
  Error length_error(char type, uint32_t length) const;

  uint32_t max_message_size_;
  std::bitset<256> inspect_;
  std::bitset<256> peek_;
  State state_ = State::kHeader;
  std::array<std::byte, 5> header_{};
  uint8_t header_have_ = 0;
  char type_ = 0;
  uint32_t body_length_ = 0;
  uint32_t body_have_ = 0;
  bool inspecting_ = false;
  Buffer assembly_;
  Error error_;
};

template <class OnFrame>
Result<size_t> Framer::feed(Bytes in, OnFrame&& on_frame) {
  if (state_ == State::kFailed) return error_;
  size_t pos = 0;
  const size_t n = in.size();
  while (pos < n) {
    if (state_ == State::kHeader) {
      if (header_have_ == 0 && n - pos >= 5) {
        // Fast path: the header is contiguous.
        type_ = char(in[pos]);
        uint32_t length = load_u32(&in[pos + 1]);
        if (length < 4 || length > max_message_size_) return fail(length_error(type_, length));
        body_length_ = length - 4;
        pos += 5;
      } else {
        while (header_have_ < 5 && pos < n) header_[header_have_++] = in[pos++];
        if (header_have_ < 5) break;
        type_ = char(header_[0]);
        uint32_t length = load_u32(&header_[1]);
        if (length < 4 || length > max_message_size_) return fail(length_error(type_, length));
        body_length_ = length - 4;
        header_have_ = 0;
      }
      inspecting_ = inspect_.test(uint8_t(type_));
      body_have_ = 0;
      if ((inspecting_ || peek_.test(uint8_t(type_))) && n - pos >= body_length_) {
        // Fast path: the whole body is contiguous in `in`; no copy.
        Frame f{type_, body_length_, in.subspan(pos, body_length_), inspecting_};
        pos += body_length_;
        if (on_frame(f, pos) == FrameAction::kStop) return pos;
        continue;
      }
      state_ = State::kBody;
      if (inspecting_) assembly_.clear();
    }
    // State::kBody: take what is here of the rest of the body.
    size_t take = std::min<size_t>(body_length_ - body_have_, n - pos);
    if (inspecting_) assembly_.insert(assembly_.end(), in.begin() + pos, in.begin() + pos + take);
    body_have_ += uint32_t(take);
    pos += take;
    if (body_have_ < body_length_) break;
    state_ = State::kHeader;
    Frame f{type_, body_length_, inspecting_ ? Bytes(assembly_) : Bytes(), inspecting_};
    if (on_frame(f, pos) == FrameAction::kStop) return pos;
  }
  return pos;
}

}  // namespace pgrelay::protocol
