#!/usr/bin/env bash
# Cache warming (docs/cache.md, "Warming"): a restarted pgrelay's query-cache hit ratio over its
# first seconds with and without warming, under a steady hot-reads load.
#
#   bench/cache_warming.sh [--keys N] [--rate TPS] [--seconds S] [--warm-statements N]
#                          [--warm-rate N] [--pgrelay-binary PATH]
#
# Starts a throwaway PostgreSQL 15 (scripts/pg-temp) with a table of --keys rows, and pgrelay (the
# cache on, warm_file set) on free ports. Phase 1 serves --seconds of pgbench reads (one row by
# key, Zipfian over the keys, --rate transactions/s, simple protocol) and stops pgrelay (SIGTERM:
# warm_file written). Then twice the same load against a freshly started pgrelay, once with
# warm_on_start = true and once false, reading the database's memory hits and misses
# (pgrelay_cache_database_lookups_total, warm replays not included) at 10 s and at the end.
# Prints one line per phase. Run as root (PostgreSQL runs as postgres).
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
KEYS=5000
RATE=1000
SECONDS_=60
WARM_STATEMENTS=1000
WARM_RATE=50
PGRELAY_BIN="$REPO/build/proxy/pgrelay"

while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --seconds) SECONDS_=$2; shift ;;
    --warm-statements) WARM_STATEMENTS=$2; shift ;;
    --warm-rate) WARM_RATE=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cache_warming.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$PGRELAY_BIN" ] || { echo "no pgrelay binary at $PGRELAY_BIN (build it, or --pgrelay-binary)" >&2; exit 1; }

. "$BENCH_DIR/tools/temp_setup.sh"
bench_workdir pgrelay-warming

PGPORT=$("$REPO/scripts/pg-temp" start "$WORK/pg") || exit 1
psql -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE TABLE kv (k int PRIMARY KEY, v int)" \
  -c "INSERT INTO kv SELECT g, g * 7 FROM generate_series(1, $KEYS) g" || exit 1
RELAY_PORT=$(free_port)
METRICS_PORT=$(free_port)
cat >"$WORK/reads.sql" <<SQL
\set k random_zipfian(1, $KEYS, 1.1)
SELECT v FROM kv WHERE k = :k;
SQL

start_relay() {   # $1: warm_on_start
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
metrics_listen = "127.0.0.1:$METRICS_PORT"

[cache]
enabled = true
default_ttl = "10min"
warm_statements = $WARM_STATEMENTS
warm_rate = $WARM_RATE
warm_file = "$WORK/warm.list"
warm_on_start = $1

[databases.postgres]
host = "127.0.0.1"
port = $PGPORT
user = "postgres"
TOML
  "$PGRELAY_BIN" -c "$WORK/pgrelay.toml" 2>>"$WORK/pgrelay.log" &
  RELAY_PID=$!
  for _ in $(seq 100); do
    psql -X -At "host=127.0.0.1 port=$RELAY_PORT dbname=pgrelay user=postgres" -c "SHOW VERSION" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "pgrelay did not start:" >&2; cat "$WORK/pgrelay.log" >&2; exit 1
}
stop_relay() {
  kill -TERM "$RELAY_PID"; wait "$RELAY_PID"; RELAY_PID=""
}
# "hits misses" of the database's memory tier, from /metrics.
lookups() {
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '
    /^pgrelay_cache_database_lookups_total/ && /database="postgres"/ && /tier="memory"/ {
      if ($0 ~ /result="hit"/) h = $NF; else if ($0 ~ /result="miss"/) m = $NF }
    END { printf "%d %d\n", h, m }'
}
ratio() { awk -v h="$1" -v m="$2" 'BEGIN { if (h + m == 0) print "n/a"; else printf "%.4f", h / (h + m) }'; }
load() {   # $1: seconds
  pgbench -n -M simple -c 8 -j 2 -R "$RATE" -T "$1" -f "$WORK/reads.sql" \
    "host=127.0.0.1 port=$RELAY_PORT dbname=postgres user=postgres" >"$WORK/pgbench.out" 2>&1
}
phase() {   # $1: name, $2: warm_on_start
  start_relay "$2"
  load 10
  read -r h10 m10 < <(lookups)
  load $((SECONDS_ - 10))
  read -r h m < <(lookups)
  warm=$(psql -X -At "host=127.0.0.1 port=$RELAY_PORT dbname=pgrelay user=postgres" -c "SHOW CACHE" | awk -F'|' '{ print $(NF-2) " replayed, " $(NF-1) " filled" }')
  stop_relay
  echo "$1: first 10 s hit ratio $(ratio "$h10" "$m10") ($h10 hits, $m10 misses); first $SECONDS_ s $(ratio "$h" "$m") ($h hits, $m misses); warming: $warm"
}

phase "serving (fills warm_file)" false
phase "restart with warming" true
phase "restart without warming" false
grep "cache warming" "$WORK/pgrelay.log" | sed 's/^/  log: /'
