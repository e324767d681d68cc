#!/usr/bin/env bash
# What an online restart costs clients: pgbench latency percentiles through pgrelay (transaction
# pooling) with and without pgrelay being replaced (pgrelay --takeover) during the run.
#
#   bench/online_restart.sh [--clients N] [--threads N] [--duration S] [--restarts N] [--pgrelay-binary PATH] [--keep-work]
#
# Starts a throwaway PostgreSQL 15 (scripts/pg-temp) and pgrelay (transaction pooling, 20 server
# connections). For each query mode (simple, prepared) it runs, one after the other,
#   pgbench -n -c CLIENTS -j THREADS -T DURATION -M MODE -l   (TPC-B-like, scale 1)
# once undisturbed (baseline) and once while a new pgrelay process takes over RESTARTS times, at
# even intervals. From the per-transaction logs it prints p50/p99/p99.9/max latency of both runs,
# the failed transactions, and the latency of the transactions under way while the old process
# handed its clients over (from its "accepts now" log line to its last client gone): the pause a
# restart adds. Run as root or as a user that may `setpriv` to `postgres`.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pgbench)")}
PY=/usr/bin/python3
CLIENTS=16
THREADS=2
DURATION=30
RESTARTS=3
PGRELAY_BIN=""
KEEP_WORK=0

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --restarts) RESTARTS=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    --keep-work) KEEP_WORK=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "online_restart.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

BENCH_NAME=restartbench
. "$BENCH_DIR/standalone.sh"   # WORK, PIDS, log, cleanup on exit, free_port, wait_ready
mkdir -p "$WORK"/{pg,pgrelay,out}

# ---- PostgreSQL ----------------------------------------------------------------------------------
PGPORT=$(PGTEMP_MAX_CONN=$(( CLIENTS * 2 + 100 )) "$REPO/scripts/pg-temp" start "$WORK/pg") ||
  { log "PostgreSQL failed to start"; exit 1; }
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres bench || exit 1
"$PGBIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$PGPORT" -U postgres bench >"$WORK/out/init.log" 2>&1 ||
  { cat "$WORK/out/init.log" >&2; exit 1; }

# ---- pgrelay -------------------------------------------------------------------------------------
build_pgrelay_unless_given
RELAY_PORT=$(free_port)
cat >"$WORK/pgrelay/pgrelay.toml" <<EOF
[pgrelay]
listen_addr = "127.0.0.1"
listen_port = $RELAY_PORT
unix_socket_dir = ""
takeover_socket = "$WORK/pgrelay/takeover.sock"
pool_mode = "transaction"
pool_size = 20
auth_type = "trust"
metrics_listen = ""

[databases."*"]
host = "127.0.0.1"
port = $PGPORT
EOF
GEN=0
"$PGRELAY_BIN" -c "$WORK/pgrelay/pgrelay.toml" >"$WORK/pgrelay/gen0.log" 2>&1 &
PIDS+=("$!")
wait_ready "$RELAY_PORT" || { tail "$WORK/pgrelay/gen0.log" >&2; log "pgrelay failed to start"; exit 1; }

# Replaces the running pgrelay: a new process with --takeover; returns once the old one has exited.
# Prints the takeover's start and end (epoch µs) and the old process' log.
takeover() {
  local old=${PIDS[-1]} start end oldlog=$WORK/pgrelay/gen$GEN.log
  GEN=$(( GEN + 1 ))
  start=$(date +%s%6N)
  "$PGRELAY_BIN" --takeover -c "$WORK/pgrelay/pgrelay.toml" >"$WORK/pgrelay/gen$GEN.log" 2>&1 &
  PIDS+=("$!")
  while kill -0 "$old" 2>/dev/null; do sleep 0.01; done
  end=$(date +%s%6N)
  echo "$start $end $oldlog"
}

# ---- measuring -----------------------------------------------------------------------------------
log "pgbench -n -c $CLIENTS -j $THREADS -T $DURATION, $RESTARTS takeovers in the second run of each mode; pgrelay $("$PGRELAY_BIN" --version | awk '{print $2}') ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))"
for mode in simple prepared; do
  for run in baseline restarts; do
    dir=$WORK/out/$mode.$run
    mkdir -p "$dir"
    (cd "$dir" && exec timeout $(( DURATION + 120 )) "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$RELAY_PORT" -U postgres \
      -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M "$mode" -l bench >"$dir/pgbench.txt" 2>&1) &
    bench=$!
    : >"$dir/takeovers"
    if [ "$run" = restarts ]; then
      step=$(awk -v d="$DURATION" -v n="$RESTARTS" 'BEGIN {print d / (n + 1)}')
      for _ in $(seq 1 "$RESTARTS"); do
        sleep "$step"
        takeover >>"$dir/takeovers"
      done
    fi
    wait "$bench"
    log "$mode $run: $(grep -E '^(number of failed|tps)' "$dir/pgbench.txt" | tr '\n' ' ')"
  done
done

echo
echo "Online restart: \`pgbench -n -c $CLIENTS -j $THREADS -T $DURATION\` (TPC-B-like, scale 1) through pgrelay in transaction pooling; latency in ms"
echo
"$PY" - "$WORK/out" <<'PYEOF'
import datetime, glob, os, re, sys
out = sys.argv[1]

def stamp(line):   # "2026-12-04 16:30:11.728 UTC ..." -> epoch µs
    t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1000000)

def handover_window(log):
    # From "accepts now" (the old process starts handing clients over) to its last client gone.
    start = end = None
    for line in open(log):
        if "accepts now; handing over" in line: start = stamp(line)
        if re.search(r"client\(s\) handed over", line): end = stamp(line)
    return (start, end) if start and end else None
def pct(xs, p):
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else float('nan')
print("| mode | run | transactions | failed | p50 | p99 | p99.9 | max | transactions under way during a hand-over: p50 / max |")
print("|---|---|---|---|---|---|---|---|---|")
for mode in ("simple", "prepared"):
    for run in ("baseline", "restarts"):
        d = os.path.join(out, mode + "." + run)
        lat, spans = [], []
        for f in glob.glob(os.path.join(d, "pgbench_log.*")):
            for line in open(f):
                c = line.split()
                if len(c) < 6 or c[2] == "failed":
                    continue
                us, end = int(c[2]), int(c[4]) * 1000000 + int(c[5])
                lat.append(us / 1000.0)
                spans.append((end - us, end, us / 1000.0))
        lat.sort()
        text = open(os.path.join(d, "pgbench.txt")).read()
        failed = next((l.split(":")[1].split()[0] for l in text.splitlines() if l.startswith("number of failed")), "?")
        worst = "-"
        windows = [handover_window(l.split()[2]) for l in open(os.path.join(d, "takeovers")) if l.strip()]
        windows = [w for w in windows if w]
        if windows:
            hit = sorted(ms for (s, e, ms) in spans if any(s <= w_end and e >= w_start for (w_start, w_end) in windows))
            worst = "%.1f / %.1f (%d tx)" % (pct(hit, 50), hit[-1], len(hit)) if hit else "none"
            hand = ", ".join("%.0f" % ((w_end - w_start) / 1000.0) for (w_start, w_end) in windows)
            worst += "; hand-overs took %s ms" % hand
        print("| %s | %s | %d | %s | %.2f | %.2f | %.2f | %.1f | %s |" % (
            mode, run, len(lat), failed, pct(lat, 50), pct(lat, 99), pct(lat, 99.9), lat[-1] if lat else float('nan'), worst))
PYEOF
echo
for mode in simple prepared; do
  echo "$mode: takeovers took $(awk '{printf "%s%.0f ms", (NR > 1 ? ", " : ""), ($2 - $1) / 1000}' "$WORK/out/$mode.restarts/takeovers") (start of the new process to exit of the old; clients are served by the old one until the hand-over)"
done
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
