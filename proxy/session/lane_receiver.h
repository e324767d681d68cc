// The session side of a lane's hand-off (lane.h), apart so that ClientSession can be one
// without including the lane.
#pragma once

namespace pgrelay::proxy {

struct LaneEntry;

// A session waiting for its entry's end with nothing of its own to write first: the lane hands
// it the whole answer as soon as the ReadyForQuery is read, so that the client has it before the
// event loop's next turn (the session's own wake-up, observers and counters come after).
class LaneReceiver {
 public:
  virtual void answer_ready(LaneEntry& e) = 0;

 protected:
  ~LaneReceiver() = default;
};

}  // namespace pgrelay::proxy
