// The reply to a request answered without a server: the messages PostgreSQL would send for its shape.
//
// https://www.postgresql.org/docs/15/protocol-flow.html
// A simple Query gets its answer then ReadyForQuery. An extended batch gets one reply per
// message in order (ParseComplete, BindComplete, CloseComplete; nothing for Flush); at the
// message that fails, ErrorResponse, and the server would skip everything after it up to Sync,
// which gets ReadyForQuery. The transaction status in ReadyForQuery is the client's real one:
// an error inside a transaction block leaves it failed ('E'); outside one ('I') it stays idle.
// A FATAL error ends the session: no ReadyForQuery follows it.
//
// Pure: appends to a Buffer.
#pragma once

#include <span>
#include <string_view>

#include "protocol/bytes.h"
#include "protocol/error_fields.h"

namespace pgrelay::proxy {

// The status a client is left in after an error, from the one it was in.
inline char status_after_error(char tx_status) { return tx_status == 'I' ? 'I' : 'E'; }

// Appends the reply to a request made of messages of `types` (frontend type bytes, in order)
// that fails with `error` at message `error_at`, starting in transaction status `tx_status`.
// Messages before error_at may only be Parse, Bind, Close and Flush (anything else needs a
// server to answer it): returns false, appending nothing, when one is not.
// Appends the reply to a request that runs one command answered here, made of messages of
// `types`: a simple Query (CommandComplete `tag`, ReadyForQuery `tx_status`), or an extended
// batch of a statement without parameters or rows: ParseComplete, BindComplete, NoData for a
// Describe of the portal, CommandComplete `tag` for the Execute, ReadyForQuery at Sync. False
// (nothing appended) for any other shape.
[[nodiscard]] bool encode_command_reply(std::span<const char> types, std::string_view tag, char tx_status,
                                        protocol::Buffer& out);

[[nodiscard]] bool encode_error_reply(std::span<const char> types, size_t error_at, const protocol::ErrorSpec& error,
                                      char tx_status, protocol::Buffer& out);

}  // namespace pgrelay::proxy
