// Integration-test harness: the shared PostgreSQL cluster, pgrelay child processes, libpq helpers,
// a raw wire-protocol client (harness_wire.cc) and a command runner.
//
// Environment (set by tests/integration/CMakeLists.txt): PGRELAY_BIN is the pgrelay binary,
// PGRELAY_IT_DIR the cluster directory made by cluster.sh (its `port` file holds the port).
// Failures throw std::runtime_error; doctest reports them as a failed test case.
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgrelay::it {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// ---- the shared cluster ----------------------------------------------------------------------

int cluster_port();                            // from $PGRELAY_IT_DIR/port
std::string pgrelay_binary();                  // $PGRELAY_BIN
int free_port();                               // a loopback TCP port nobody listens on right now
int closed_port();                             // a port with nothing behind it (for "backend down")
std::string conninfo(int port, const std::string& db = "postgres", const std::string& user = "postgres",
                     const std::string& extra = "");
std::string direct_conninfo(const std::string& db = "postgres", const std::string& user = "postgres",
                            const std::string& extra = "");

// ---- pgrelay as a child process --------------------------------------------------------------

// A pgrelay configuration. `settings` are the [pgrelay] keys with TOML literal values (strings
// quoted), `databases` is raw TOML for the [databases.*] tables. The defaults point
// [databases.postgres] and [databases."*"] at the shared cluster.
struct RelayConfig {
  std::map<std::string, std::string> settings;
  std::string databases;

  RelayConfig();
  RelayConfig& set(const std::string& key, const std::string& toml_value);
  RelayConfig& pool(const std::string& mode, int pool_size);   // pool_mode and pool_size
  RelayConfig& without_databases();            // drops the default entries
  RelayConfig& add_database(const std::string& name, const std::string& body);  // body: "key = value\n..."
  std::string render(int listen_port) const;
};

// One pgrelay process on a free port, with its config in a temp file and stderr in a log file.
// The constructor returns once the port accepts connections (or throws with the log). The
// destructor kills it (SIGKILL) if it is still running and removes its files. The child also gets
// SIGKILL if the test process dies (PR_SET_PDEATHSIG), so a CTest timeout leaves no orphan.
class PgrelayProcess {
 public:
  explicit PgrelayProcess(const RelayConfig& config = RelayConfig(), Millis ready_timeout = 10s);
  ~PgrelayProcess();
  PgrelayProcess(const PgrelayProcess&) = delete;
  PgrelayProcess& operator=(const PgrelayProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }
  std::string conninfo(const std::string& db = "postgres", const std::string& user = "postgres",
                       const std::string& extra = "") const;

  void write_config(const RelayConfig& config);          // rewrites the file (same listen port)
  void write_config_text(const std::string& toml);       // raw, e.g. a broken file
  void signal(int signo);
  bool running();                                        // reaps the child if it has exited
  // Waits for the exit; returns the exit code (128+N for death by signal N), nullopt on timeout.
  std::optional<int> wait_exit(Millis timeout);
  std::string log() const;
  long rss_kib() const;                                  // VmRSS, -1 when the process is gone

 private:
  void cleanup();                                        // SIGKILL if running, remove the files
  int port_ = 0;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string config_path_;
  std::string log_path_;
};

// ---- libpq -----------------------------------------------------------------------------------

struct ConnDeleter { void operator()(PGconn* c) const { PQfinish(c); } };
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter { void operator()(PGresult* r) const { PQclear(r); } };
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// Always returns a connection object; check PQstatus. connect_timeout=5 unless given.
Conn connect(const std::string& conninfo);
// Returns a connected connection or throws with PQerrorMessage.
Conn connect_ok(const std::string& conninfo);

using Row = std::vector<std::optional<std::string>>;
// Every row of `r`, values as bytes (NULL as nullopt).
std::vector<Row> result_rows(PGresult* r);
struct QueryResult {
  ExecStatusType status = PGRES_FATAL_ERROR;
  std::vector<Row> rows;
  std::string command_tuples;                  // PQcmdTuples: "3" for INSERT 0 3
  std::string sqlstate;                        // set on errors
  std::string message;
  std::string severity;
  bool ok() const { return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK; }
};
QueryResult to_query_result(PGconn* c, PGresult* r);
QueryResult exec(PGconn* c, const std::string& sql);
QueryResult exec_params(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params);
// First column of the first row; throws if the statement fails or returns no row.
std::string scalar(PGconn* c, const std::string& sql);
// Waits until the connection's socket is readable (or timeout); false on timeout.
bool wait_readable(PGconn* c, Millis timeout);
// The (last) result of a query sent with PQsendQuery, waiting up to `timeout`; throws when none
// came in time.
QueryResult await_result(PGconn* c, Millis timeout);

// ---- raw wire protocol -----------------------------------------------------------------------

struct Message {
  char type = 0;
  std::string payload;                         // without type and length
};
struct ErrorInfo {
  char type = 0;                               // 'E' or 'N'
  std::string severity, sqlstate, message;
  std::map<char, std::string> fields;
};

// A blocking TCP client speaking raw bytes. Reads treat a reset connection as end of stream
// (the peer may close with our unread bytes still in its buffer).
class RawClient {
 public:
  explicit RawClient(int port);                // throws if the connect fails
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool send(const std::string& bytes);         // false if the peer has gone (EPIPE, ECONNRESET)
  std::string read_exact(size_t n, Millis timeout);          // may return fewer on EOF/timeout
  // Reads everything until EOF; `eof` says whether EOF came before the timeout.
  std::string read_until_eof(Millis timeout, bool* eof = nullptr);
  // Reads whole messages until one of type `until` arrives (included) or EOF/timeout.
  std::vector<Message> read_messages_until(char until, Millis timeout, bool* eof = nullptr);
  void shutdown_write();
  int fd() const { return fd_; }

 private:
  bool read_some(std::string& out, Millis timeout, bool* eof);
  int fd_ = -1;
  std::string pending_;                        // bytes read but not yet returned as messages
};

// True when something is listening on 127.0.0.1:port (a TCP connect succeeds).
bool port_accepts(int port);

std::string be32(uint32_t v);
// The big-endian Int32 at `p`, at any alignment (message lengths inside a received stream).
uint32_t load_be32(const char* p);
std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params,
                           uint32_t version = 196608);
std::string ssl_request();
std::string gssenc_request();
std::string typed_message(char type, const std::string& payload);
std::string query_message(const std::string& sql);
// Splits bytes into backend messages; a trailing incomplete message is ignored.
std::vector<Message> parse_messages(const std::string& bytes);
std::optional<ErrorInfo> parse_error(const Message& m);
std::optional<ErrorInfo> first_error(const std::vector<Message>& messages);
std::optional<ErrorInfo> first_error(const std::string& bytes);
// Logs `c` in (trust) and reads up to its first ReadyForQuery; throws when that fails.
void raw_login(RawClient& c, const std::string& db = "postgres", const std::string& user = "postgres");

// ---- external commands -----------------------------------------------------------------------

// A plain HTTP GET of pgrelay's metrics listener on loopback `port` (Connection: close).
struct HttpReply {
  int status = 0;
  std::string body;
};
HttpReply http_get(int port, const std::string& path);

struct CommandResult {
  int exit_code = -1;
  std::string output;                          // stdout and stderr interleaved
};
// Runs `bash -c command` with stderr merged into stdout, killed after `timeout`.
CommandResult run_command(const std::string& command, Millis timeout = 120s);
std::string shell_quote(const std::string& s);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

}  // namespace pgrelay::it
