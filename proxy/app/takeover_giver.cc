// Online restart, the process being replaced: its clients sent to the new process.
#include "proxy/app/takeover_giver.h"

#include "proxy/base/log.h"

namespace pgrelay::proxy {

TakeoverGiver::TakeoverGiver(asio::any_io_executor ex, takeover::Channel channel,
                             std::function<void(protocol::BackendKeyData)> on_cancel)
    : ex_(ex), channel_(std::move(channel)), on_cancel_(std::move(on_cancel)), wake_(ex) {
  wake_.expires_at(asio::steady_timer::time_point::max());
}

TakeoverGiver::~TakeoverGiver() { *alive_ = false; }

void TakeoverGiver::send(int fd, protocol::Buffer state, std::function<void(bool)> done) {
  asio::post(ex_, [this, alive = alive_, fd, state = std::move(state), done = std::move(done)]() mutable {
    if (!*alive || ended_) {
      done(false);
      return;
    }
    queue_.push_back(Outgoing{.fd = fd, .state = std::move(state), .done = std::move(done)});
    wake_.cancel();
  });
}

void TakeoverGiver::start() {
  auto on_error = [](std::exception_ptr e) { log_exception(e, "takeover channel"); };
  asio::co_spawn(ex_, write_loop(), on_error);
  asio::co_spawn(ex_, read_loop(), on_error);
}

awaitable<void> TakeoverGiver::write_loop() {
  while (!ended_) {
    if (queue_.empty()) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      error_code ec;
      co_await wake_.async_wait(ec_awaitable(ec));   // cancelled by send() and end()
      continue;
    }
    Outgoing out = std::move(queue_.front());
    queue_.pop_front();
    const uint64_t seq = next_seq_++;
    protocol::Buffer body;
    takeover::put_u64(body, seq);
    body.insert(body.end(), out.state.begin(), out.state.end());
    if (body.size() + 1 > takeover::kMaxMessage) {   // too large to pass: this process keeps it
      out.done(false);
      continue;
    }
    waiting_.emplace(seq, std::move(out.done));
    const int fds[1] = {out.fd};
    auto sent = co_await channel_.send(takeover::kClient, protocol::Bytes(body), fds);
    if (!sent.ok()) {
      end(sent.error().message);
      co_return;
    }
  }
}

awaitable<void> TakeoverGiver::read_loop() {
  while (!ended_) {
    auto m = co_await channel_.receive();
    if (!m.ok()) {
      end(m.error().message);
      co_return;
    }
    protocol::Reader r{protocol::Bytes(m->body)};
    if (m->type == takeover::kCancel) {
      protocol::BackendKeyData key;
      if (r.i32(key.pid) && r.i32(key.secret) && on_cancel_) on_cancel_(key);
      continue;
    }
    uint64_t seq = 0;
    uint8_t ok = 0;
    if (m->type != takeover::kAdopted || !takeover::get_u64(r, seq) || !r.u8(ok)) {
      end("unexpected message from the new process");
      co_return;
    }
    auto it = waiting_.find(seq);
    if (it == waiting_.end()) continue;
    auto done = std::move(it->second);
    waiting_.erase(it);
    ++(ok ? adopted_ : refused_);
    done(ok != 0);
  }
}

void TakeoverGiver::close() { end(""); }

void TakeoverGiver::end(const std::string& why) {
  if (ended_) return;
  ended_ = true;
  if (!why.empty() && why != "closed") log_error("takeover channel: ", why);
  channel_.close();
  wake_.cancel();
  // Sent but not answered: the new process may or may not have the client. It has gone (or is
  // going: the channel is its lifeline), so the client is this process' again.
  for (auto& [seq, done] : waiting_) done(false);
  waiting_.clear();
  for (auto& out : queue_) out.done(false);
  queue_.clear();
}

}  // namespace pgrelay::proxy
