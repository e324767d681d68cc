#!/usr/bin/env bash
# Read routing on vs off, same machine, interleaved: pgbench -S throughput and latency percentiles
# through pgrelay (transaction pooling) in front of a primary and two streaming replicas, and the
# cost a write pays for read-your-writes (single-row UPDATEs, routing on vs off).
#
#   bench/read_routing.sh [--clients N] [--duration S] [--rounds N] [--pgrelay-binary PATH] [--keep-work]
#
# Starts the replica set of the integration tests (tests/integration/replicas.sh: a primary and
# two hot standbys on free loopback ports), pgbench -i -s 10 on the primary, and two pgrelay
# processes with the same settings but read_routing "off" and "on". Each round runs, for each of
# them, pgbench -S and then the UPDATE script with per-transaction logs (-l); it prints the
# median tps and p50/p99 latency over rounds. On 2 cores three servers share the machine: this
# shows the overhead of routing, not scale-out.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pgbench)")}
CLIENTS=8
DURATION=8
ROUNDS=3
PGRELAY_BIN=""
KEEP_WORK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    --keep-work) KEEP_WORK=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "read_routing.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

BENCH_NAME=routingbench
. "$BENCH_DIR/standalone.sh"   # WORK, PIDS, log, cleanup on exit, free_port, wait_ready
mkdir -p "$WORK"/{pgrelay,out}
chmod 777 "$WORK/out"
rs="$WORK/rs"
trap '"$REPO/tests/integration/replicas.sh" cleanup "$rs" >/dev/null 2>&1; cleanup' EXIT

"$REPO/tests/integration/replicas.sh" setup "$rs" >"$WORK/out/replicas.log" 2>&1 ||
  { cat "$WORK/out/replicas.log" >&2; exit 1; }
P=$(cat "$rs/primary/port"); R1=$(cat "$rs/replica1/port"); R2=$(cat "$rs/replica2/port")
"$PGBIN/pgbench" -i -q -s 10 -h 127.0.0.1 -p "$P" -U postgres postgres >"$WORK/out/init.log" 2>&1 ||
  { cat "$WORK/out/init.log" >&2; exit 1; }
lsn=$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$P" -U postgres -d postgres -c "select pg_current_wal_lsn()")
for p in "$R1" "$R2"; do
  for _ in $(seq 1 600); do
    [ "$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$p" -U postgres -d postgres \
         -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break
    sleep 0.1
  done
done

build_pgrelay_unless_given
declare -A PORT
for mode in off on; do
  PORT[$mode]=$(free_port)
  cat >"$WORK/pgrelay/$mode.toml" <<EOT
[pgrelay]
listen_addr = "127.0.0.1"
listen_port = ${PORT[$mode]}
unix_socket_dir = ""
pool_mode = "transaction"
pool_size = $CLIENTS
auth_type = "trust"
metrics_listen = ""

[databases.postgres]
host = "127.0.0.1"
port = $P
replicas = ["127.0.0.1:$R1", "127.0.0.1:$R2"]
read_routing = "$mode"
EOT
  "$PGRELAY_BIN" -c "$WORK/pgrelay/$mode.toml" >"$WORK/pgrelay/$mode.log" 2>&1 &
  PIDS+=("$!")
  wait_ready "${PORT[$mode]}" || true
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "${PORT[$mode]}" -U postgres -d postgres -c 'select 1' >/dev/null ||
    { tail "$WORK/pgrelay/$mode.log" >&2; log "pgrelay ($mode) failed to start"; exit 1; }
done
cat >"$WORK/out/update.sql" <<'EOT'
\set aid random(1, 1000000)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
EOT

# run MODE WORKLOAD ROUND: pgbench through pgrelay MODE; prints "tps p50 p99" (ms).
run() {
  local mode=$1 workload=$2 round=$3 prefix="$WORK/out/$2-$1-$3" args=(-S)
  [ "$workload" = update ] && args=(-f "$WORK/out/update.sql")
  (cd "$WORK/out" && "$PGBIN/pgbench" -n "${args[@]}" -c "$CLIENTS" -j 2 -T "$DURATION" -l --log-prefix="$prefix" \
     -h 127.0.0.1 -p "${PORT[$mode]}" -U postgres postgres >"$prefix.out" 2>&1)
  local tps; tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$prefix.out")
  cat "$prefix".* 2>/dev/null | awk 'NF >= 3 && $3 ~ /^[0-9]+$/ {print $3}' | sort -n >"$prefix.lat"
  local n; n=$(wc -l <"$prefix.lat")
  local p50 p99
  p50=$(awk -v n="$n" 'NR == int(n * 0.50) + 1 {printf "%.2f", $1 / 1000}' "$prefix.lat")
  p99=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 {printf "%.2f", $1 / 1000}' "$prefix.lat")
  echo "${tps:-0} ${p50:-0} ${p99:-0}"
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A RES
for round in $(seq 1 "$ROUNDS"); do
  for workload in select update; do
    for mode in off on; do
      RES[$workload-$mode-$round]=$(run "$mode" "$workload" "$round")
      log "round $round $workload routing $mode: tps p50 p99 = ${RES[$workload-$mode-$round]}"
    done
  done
done
echo
echo "| workload | read_routing | tps (median) | p50 ms | p99 ms |"
echo "|---|---|--:|--:|--:|"
for workload in select update; do
  for mode in off on; do
    vals=(); for round in $(seq 1 "$ROUNDS"); do vals+=("${RES[$workload-$mode-$round]}"); done
    col() { for v in "${vals[@]}"; do echo "$v" | awk -v c="$1" '{print $c}'; done | median; }
    echo "| $([ "$workload" = select ] && echo "pgbench -S" || echo "single-row UPDATE") | $mode | $(col 1) | $(col 2) | $(col 3) |"
  done
done
