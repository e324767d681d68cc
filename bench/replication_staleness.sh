#!/usr/bin/env bash
# Staleness bound of the query cache for writes made directly on PostgreSQL (docs/cache.md, the
# replication listener): p50/p90/p99/max of (a COMMIT made straight on PostgreSQL -> the first read
# through pgrelay's cache that shows it), while --rate other writes per second are committed
# straight on PostgreSQL (loopback).
#
#   bench/replication_staleness.sh [--rate N] [--seconds S] [--probe-interval S] [--pgrelay-binary PATH]
#
# Starts a throwaway PostgreSQL 15 (scripts/pg-temp, wal_level = logical, synchronous_commit = on:
# with pg-temp's default of off, the walsender sends a commit only once the WAL writer flushed it,
# up to wal_writer_delay = 200 ms later, and that is what would be measured) and pgrelay (the cache on,
# replication = true, 2 workers) on free ports, runs bench/tools/replication_staleness.py (Debian's
# python3-psycopg), prints its JSON line and SHOW REPLICATION, and stops everything on exit.
# Run as root (PostgreSQL runs as postgres). Target (issue 16): p99 < 100 ms at 1,000 writes/s.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
RATE=1000
SECONDS_=30
PROBE_INTERVAL=0.02
PGRELAY_BIN="$REPO/build/proxy/pgrelay"

while [ $# -gt 0 ]; do
  case "$1" in
    --rate) RATE=$2; shift ;;
    --seconds) SECONDS_=$2; shift ;;
    --probe-interval) PROBE_INTERVAL=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "replication_staleness.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$PGRELAY_BIN" ] || { echo "no pgrelay binary at $PGRELAY_BIN (build it, or --pgrelay-binary)" >&2; exit 1; }

. "$BENCH_DIR/tools/temp_setup.sh"
bench_workdir pgrelay-staleness

PGPORT=$(PGTEMP_CONF=$'synchronous_commit = on\nwal_level = logical\nmax_replication_slots = 10\nmax_wal_senders = 10' \
         "$REPO/scripts/pg-temp" start "$WORK/pg") || exit 1
RELAY_PORT=$(free_port)
cat >"$WORK/pgrelay.toml" <<TOML
[pgrelay]
listen_addr = "127.0.0.1"
listen_port = $RELAY_PORT
unix_socket_dir = ""
workers = 2
auth_type = "trust"
admin_users = ["postgres"]
pool_mode = "transaction"
pool_size = 8

[cache]
enabled = true
default_ttl = "10min"

[databases.postgres]
host = "127.0.0.1"
port = $PGPORT
user = "postgres"

[databases.postgres.cache]
replication = true
TOML
"$PGRELAY_BIN" -c "$WORK/pgrelay.toml" 2>"$WORK/pgrelay.log" &
RELAY_PID=$!
CONSOLE="host=127.0.0.1 port=$RELAY_PORT dbname=pgrelay user=postgres"
for _ in $(seq 100); do
  state=$(psql -X -At "$CONSOLE" -c "SHOW REPLICATION" 2>/dev/null | cut -d'|' -f5)
  [ "$state" = streaming ] && break
  sleep 0.1
done
[ "${state:-}" = streaming ] || { echo "the replication listener did not stream:" >&2; cat "$WORK/pgrelay.log" >&2; exit 1; }

/usr/bin/python3 "$BENCH_DIR/tools/replication_staleness.py" \
  --direct "host=127.0.0.1 port=$PGPORT dbname=postgres user=postgres" \
  --relay "host=127.0.0.1 port=$RELAY_PORT dbname=postgres user=postgres" \
  --console "$CONSOLE" --rate "$RATE" --seconds "$SECONDS_" --probe-interval "$PROBE_INTERVAL"
status=$?
psql -X "$CONSOLE" -c "SHOW REPLICATION"
exit $status
