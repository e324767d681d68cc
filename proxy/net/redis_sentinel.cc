// Redis Sentinel: asking the sentinels where the master is, and remembering the answer.
#include "proxy/net/redis_sentinel.h"

#include <charconv>

#include "proxy/base/log.h"
#include "proxy/net/redis_connection.h"

namespace pgrelay::proxy {

std::optional<conf::SentinelAddress> parse_master_address(const RedisReply& reply, std::string& why) {
  if (reply.is_nil()) {
    why = "it monitors no master by that name";
    return std::nullopt;
  }
  if (reply.is_error()) {
    why = reply.str;
    return std::nullopt;
  }
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 ||
      reply.elements[0].type != RedisReply::Type::kString || reply.elements[1].type != RedisReply::Type::kString ||
      reply.elements[0].str.empty()) {
    why = "its answer is not [host, port]";
    return std::nullopt;
  }
  const std::string& port = reply.elements[1].str;
  int value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
    why = "its answer's port is not a port: \"" + port + "\"";
    return std::nullopt;
  }
  return conf::SentinelAddress{.host = reply.elements[0].str, .port = value};
}

bool is_master_role(const RedisReply& reply) { return role_name(reply) == "master"; }

std::string role_name(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray || reply.elements.empty() ||
      reply.elements[0].type != RedisReply::Type::kString) {
    return reply.is_error() ? reply.str : "?";
  }
  return reply.elements[0].str;
}

bool is_readonly_error(const RedisReply& reply) { return reply.is_error() && reply.str.starts_with("READONLY"); }

std::optional<uint64_t> parse_config_epoch(const RedisReply& reply) {
  if (reply.type != RedisReply::Type::kArray) return std::nullopt;
  for (size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
    const RedisReply& field = reply.elements[i];
    const RedisReply& value = reply.elements[i + 1];
    if (field.type != RedisReply::Type::kString || field.str != "config-epoch") continue;
    if (value.type != RedisReply::Type::kString) return std::nullopt;
    uint64_t epoch = 0;
    const auto [end, ec] = std::from_chars(value.str.data(), value.str.data() + value.str.size(), epoch);
    if (ec != std::errc() || end != value.str.data() + value.str.size()) return std::nullopt;
    return epoch;
  }
  return std::nullopt;
}

std::optional<conf::SentinelAddress> choose_master(const std::vector<SentinelAnswer>& answers,
                                                   const std::optional<conf::SentinelAddress>& not_master) {
  const SentinelAnswer* best = nullptr;
  for (const auto& a : answers) {
    if (not_master && a.address == *not_master) continue;
    if (!best || a.config_epoch > best->config_epoch) best = &a;
  }
  if (best) return best->address;
  if (answers.empty()) return std::nullopt;
  return answers.front().address;
}

RedisSentinel::RedisSentinel(SentinelSettings settings) : settings_(std::move(settings)) {}

std::string RedisSentinel::master() const {
  std::lock_guard lock(mutex_);
  return master_ ? conf::to_string(*master_) : std::string();
}

void RedisSentinel::not_master(const conf::SentinelAddress& address) {
  std::lock_guard lock(mutex_);
  not_master_ = address;
}

void RedisSentinel::confirmed(const conf::SentinelAddress& address) {
  std::lock_guard lock(mutex_);
  if (not_master_ == address) not_master_.reset();
}

uint64_t RedisSentinel::record(const conf::SentinelAddress& address) {
  std::lock_guard lock(mutex_);
  if (master_ == address) return generation_.load(std::memory_order_acquire);
  if (master_) {
    failovers_.fetch_add(1, std::memory_order_relaxed);
    log_warning("query cache: Redis Sentinel: the master \"", settings_.master_name, "\" moved from ", conf::to_string(*master_),
                " to ", conf::to_string(address), ": following it");
  } else {
    log_info("query cache: Redis Sentinel: the master \"", settings_.master_name, "\" is at ", conf::to_string(address));
  }
  master_ = address;
  return generation_.fetch_add(1, std::memory_order_acq_rel) + 1;
}

awaitable<Result<SentinelAnswer>> RedisSentinel::ask(asio::any_io_executor ex, const conf::SentinelAddress& sentinel,
                                                            Deadline deadline) {
  conf::RedisEndpoint endpoint;
  endpoint.kind = conf::RedisEndpoint::Kind::kTcp;
  endpoint.host = sentinel.host;
  endpoint.port = sentinel.port;
  endpoint.password = settings_.password;
  const auto budget = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  RedisConnection conn(ex, RedisOptions{.endpoint = endpoint,
                                        .tls_ctx = nullptr,
                                        .tls_mode = conf::ServerTlsMode::kVerifyFull,
                                        .connect_timeout = std::max(budget, std::chrono::milliseconds(1)),
                                        .sentinel = nullptr,
                                        .on_message = nullptr});
  std::vector<RedisConnection::Args> commands;
  commands.push_back(redis_args("SENTINEL", "get-master-addr-by-name", settings_.master_name));
  commands.push_back(redis_args("SENTINEL", "master", settings_.master_name));
  const auto r = co_await conn.pipeline(std::move(commands), deadline);
  if (!r[0].ok()) {
    co_return Error{"08006", conf::to_string(sentinel) + ": " + to_string(r[0].status) + (r[0].error.empty() ? "" : " (" + r[0].error + ")")};
  }
  std::string why;
  auto address = parse_master_address(r[0].reply, why);
  if (!address) co_return Error{"08006", conf::to_string(sentinel) + ": " + why};
  const auto epoch = r.size() > 1 && r[1].ok() ? parse_config_epoch(r[1].reply) : std::nullopt;
  co_return SentinelAnswer{.address = *address, .config_epoch = epoch.value_or(0)};
}

awaitable<Result<RedisSentinel::Master>> RedisSentinel::resolve(asio::any_io_executor ex, Deadline deadline) {
  std::optional<conf::SentinelAddress> suspect;
  {
    std::lock_guard lock(mutex_);
    suspect = not_master_;
  }
  std::vector<SentinelAnswer> answers;
  std::string failures;
  const size_t n = settings_.sentinels.size();
  for (size_t i = 0; i < n; ++i) {
    // Each sentinel its share of what is left, so one that does not answer leaves time for the others.
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    const Deadline mine = now + (deadline - now) / int64_t(n - i);
    auto answer = co_await ask(ex, settings_.sentinels[i], mine);
    if (!answer) {
      failures += (failures.empty() ? "" : "; ") + answer.error().message;
      continue;
    }
    answers.push_back(*answer);   // every sentinel asked: one may not have heard of a failover yet
  }
  const auto chosen = choose_master(answers, suspect);
  if (!chosen) {
    co_return Error{"08006", "no sentinel named the master \"" + settings_.master_name + "\" (" +
                                 (failures.empty() ? std::string("no time left") : failures) + ")"};
  }
  const uint64_t generation = record(*chosen);
  co_return Master{.address = *chosen, .generation = generation};
}

}  // namespace pgrelay::proxy
