// A client session as it crosses from one pgrelay process to the next (online restart): what the
// new process needs to adopt a logged-in client between transactions without a new login.
//
// The old process fills it from an idle session (ClientSession::hand_off) and sends it, with the
// client's socket, over the takeover channel (proxy/app/takeover_*.h); the new one decodes it and
// adopts the socket (ClientSession::adopt). Server connections never cross: the new process
// opens its own, and the client's settings and prepared statements are applied to them lazily,
// as they are after any change of server connection. Pure: no I/O. The encoding is versioned:
// decode() refuses what another version wrote, so the client stays with the old process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/bytes.h"
#include "protocol/messages.h"
#include "protocol/result.h"
#include "proxy/base/startup_params.h"

namespace pgrelay::proxy {

struct HandoffState {
  // A protocol-level prepared statement of the client: its name ("" = the unnamed one), the
  // query text and the Parse's parameter-type list as sent (count and OIDs).
  struct Statement {
    std::string name;
    std::string query;
    protocol::Buffer param_types;
    bool operator==(const Statement&) const = default;
  };

  uint64_t client_id = 0;                  // in the old process, for log lines
  std::string user, database;
  protocol::BackendKeyData key;            // the cancel key the client was given at login
  std::vector<Setting> startup;            // its startup packet's settings
  ParamMap reported;                       // ParameterStatus as the client last saw it
  SessionSets sets;                        // its SETs of unreported parameters (SessionTracker)
  std::vector<Statement> statements;
  // The credential its pool logs in with when the entry borrows the client's identity (a plain
  // password or forwarded SCRAM keys, entry_with_forwarded_credential); "" otherwise.
  std::string credential;

  bool operator==(const HandoffState&) const;
};

// Appends the encoding of `s` to `out`.
void encode(const HandoffState& s, protocol::Buffer& out);
// The state in `in` (exactly one encoding). Errors name what is wrong: another version, a
// truncated or oversized field, bytes left over.
Result<HandoffState> decode_handoff(protocol::Bytes in);

}  // namespace pgrelay::proxy
