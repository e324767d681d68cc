// Where a client's secret comes from (auth_file, a database entry's password, auth_query), and
// which credential its pool logs in to the server with.
//
// Coroutines run on the calling session's executor; the shared state they touch (AuthStore, the
// pools) is thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "protocol/result.h"
#include "proxy/net/asio.h"
#include "proxy/session/services.h"

namespace pgrelay::proxy {

struct ClientSecret {
  enum class Source { kNone, kAuthFile, kDatabaseEntry, kAuthQuery };
  Source source = Source::kNone;
  std::string text;   // as stored: a SCRAM secret, an MD5 secret or the password itself
};
const char* to_string(ClientSecret::Source s);

// Looks `user` up, first hit wins:
//  1. the auth_file;
//  2. the password of a database entry that logs in as `user` (`entry` first, then the others);
//  3. auth_query, when auth_user is set: run on `entry`'s server and database as auth_user, over
//     a small pool of its own ("<database> (auth_query)"), answers cached for auth_cache_ttl.
// An unknown user (or one without a password, or expired) is Source::kNone, not an error. Errors
// only when auth_query could not run: then no client of that user can be checked.
awaitable<Result<ClientSecret>> find_client_secret(Services& services, const conf::Config& config,
                                                   const conf::DatabaseEntry& entry, const std::string& database,
                                                   const std::string& user);

// Key of a (server, role) pair in AuthStore's credential map; roles are cluster-wide.
std::string server_user_key(const conf::DatabaseEntry& entry, std::string_view user);

// The entry a client's pool logs in with. An entry with no password that logs in as the client's
// own user borrows the client's identity: `credential` (a plain password or
// forwarded_scram_password(), "" when the client gave none) is remembered for its server and
// user, and the last one remembered becomes the entry's password, so clients of one user share
// one pool whatever method let each of them in. Other entries are returned as they are.
conf::DatabaseEntry entry_with_forwarded_credential(AuthStore& store, const conf::DatabaseEntry& entry,
                                                    std::string_view user, const std::string& credential);
// The same, without a copy when the entry stays as it is (nullopt): a login's pool needs one
// only when a credential is borrowed.
std::optional<conf::DatabaseEntry> forwarded_credential_entry(AuthStore& store, const conf::DatabaseEntry& entry,
                                                              std::string_view user, const std::string& credential);

}  // namespace pgrelay::proxy
