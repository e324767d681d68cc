#!/usr/bin/env bash
# The query cache's Redis tier (docs/cache.md, "The Redis tier"): what a read answered from Redis
# costs a client, next to a memory hit and a server read in the same run, and how small LZ4 makes
# the answers Redis stores.
#
#   bench/redis_tier.sh [--keys N] [--rounds R] [--redis-timeout D] [--pgrelay-binary PATH] [--keep-work]
#
# Starts a throwaway PostgreSQL 15 (scripts/pg-temp, pgbench -i scale 1: 100,000 accounts), one
# redis-server and two pgrelay instances A and B sharing it (transaction pooling, default [cache]
# settings but default_ttl = 10min and redis_timeout = --redis-timeout, default 50ms: on a loaded
# machine the default 5 ms times out now and then, and each reconnect bumps the epochs, which
# would empty the caches mid-run). Latency, one client, simple protocol, R rounds of N reads
# each, one account each, every key read once per kind:
#   server   through A, the read hinted /* pgrelay:nocache */: the full path to PostgreSQL
#   memory   through A, which filled every key first: memory hits (under A's lease)
#   redis    through B, which never read those keys: a miss in B's memory, the answer A stored
#            taken from Redis (B's pgrelay_cache_database_lookups_total{tier="redis"} checks it)
# Each read walks to the next key with \gset (pgbench -D k=START), so no key is read twice by one
# kind; per-transaction logs give p50/p99 per round, and the median over the rounds is printed.
# Compression: through A, 20 reads of pgbench_accounts for each of 1, 10, 100 and 1000 rows, as
# whole rows (the filler column is 84 blanks) and as (aid, bid, abalance); for the values each
# size added to Redis: the answers' size uncompressed (A's pgrelay_cache_raw_bytes grew by it),
# the stored payload (STRLEN less the 96-byte header and 16 bytes per table) and MEMORY USAGE.
# Run as root (PostgreSQL runs as postgres).
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pgbench)")}
PY=/usr/bin/python3
KEYS=5000
ROUNDS=3
REDIS_TIMEOUT=50ms
PGRELAY_BIN="$REPO/build/proxy/pgrelay"
KEEP_WORK=0

while [ $# -gt 0 ]; do
  case "$1" in
    --keys) KEYS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --redis-timeout) REDIS_TIMEOUT=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    --keep-work) KEEP_WORK=1 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "redis_tier.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$PGRELAY_BIN" ] || { echo "no pgrelay binary at $PGRELAY_BIN (build it, or --pgrelay-binary)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server not installed (scripts/install-deps)" >&2; exit 1; }
[ $(( KEYS * ROUNDS )) -le 100000 ] || { echo "--keys x --rounds must be at most 100000 (the accounts)" >&2; exit 2; }

BENCH_NAME=redistier
. "$BENCH_DIR/standalone.sh"   # WORK, PIDS, log, cleanup on exit, free_port, wait_ready
mkdir -p "$WORK"/{pg,out}

# ---- PostgreSQL and Redis --------------------------------------------------------------------------
PGPORT=$("$REPO/scripts/pg-temp" start "$WORK/pg") || { log "PostgreSQL failed to start"; exit 1; }
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres bench || exit 1
"$PGBIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$PGPORT" -U postgres bench >"$WORK/out/init.log" 2>&1 ||
  { cat "$WORK/out/init.log" >&2; exit 1; }
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  --logfile "$WORK/out/redis.log" >/dev/null 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# ---- pgrelay A and B ----------------------------------------------------------------------------------
start_relay() {   # start_relay NAME: its port in PORT_<NAME>, its metrics in METRICS_<NAME>
  local port metrics
  port=$(free_port); metrics=$(free_port)
  cat >"$WORK/$1.toml" <<EOF
[pgrelay]
listen_addr = "127.0.0.1"
listen_port = $port
unix_socket_dir = ""
workers = 2
auth_type = "trust"
pool_mode = "transaction"
pool_size = 8
metrics_listen = "127.0.0.1:$metrics"

[cache]
enabled = true
default_ttl = "10min"
redis_url = "redis://127.0.0.1:$REDIS_PORT"
redis_timeout = "$REDIS_TIMEOUT"
redis_key_prefix = "bench"

[databases.bench]
host = "127.0.0.1"
port = $PGPORT
user = "postgres"
EOF
  "$PGRELAY_BIN" -c "$WORK/$1.toml" >"$WORK/out/$1.log" 2>&1 &
  PIDS+=("$!")
  wait_ready "$port" || { tail "$WORK/out/$1.log" >&2; log "pgrelay $1 failed to start"; exit 1; }
  printf -v "PORT_$1" '%s' "$port"
  printf -v "METRICS_$1" '%s' "$metrics"
}
start_relay A
start_relay B

# A counter or gauge of one instance's /metrics, summed over the lines that match `filter` (awk).
metric() {   # metric METRICS_PORT NAME [FILTER]
  curl -s "http://127.0.0.1:$1/metrics" | awk -v name="$2" -v filter="${3:-}" '
    $1 ~ "^" name "({|$)" && (filter == "" || $0 ~ filter) { s += $NF }
    END { printf "%.0f\n", s }'
}

# ---- latency -----------------------------------------------------------------------------------------
READ='SELECT abalance, :k + 1 AS k FROM pgbench_accounts WHERE aid = :k \gset'
echo "$READ" >"$WORK/cached.sql"
echo "/* pgrelay:nocache */ $READ" >"$WORK/server.sql"
walk() {   # walk PORT SCRIPT START COUNT LOGPREFIX
  "$PGBIN/pgbench" -n -M simple -c 1 -j 1 -t "$4" -D k="$3" -f "$2" -l --log-prefix="$5" \
    -h 127.0.0.1 -p "$1" -U postgres bench >"$5.out" 2>&1 || { cat "$5.out" >&2; exit 1; }
}
log "filling $(( KEYS * ROUNDS )) keys through A"
walk "$PORT_A" "$WORK/cached.sql" 1 $(( KEYS * ROUNDS )) "$WORK/out/fill"
# Redis stores in the background: wait until it holds every answer.
for _ in $(seq 1 100); do
  [ "$(rcli --scan --pattern 'bench:a*' | wc -l)" -ge $(( KEYS * ROUNDS )) ] && break
  sleep 0.1
done
log "Redis holds $(rcli --scan --pattern 'bench:a*' | wc -l) answers"

redis_hits_b() { metric "$METRICS_B" pgrelay_cache_database_lookups_total 'tier="redis".*result="hit"|result="hit".*tier="redis"'; }
memory_hits() { metric "$1" pgrelay_cache_database_lookups_total 'tier="memory".*result="hit"|result="hit".*tier="memory"'; }
for r in $(seq 1 "$ROUNDS"); do
  start=$(( (r - 1) * KEYS + 1 ))
  log "round $r: keys $start..$(( start + KEYS - 1 ))"
  walk "$PORT_A" "$WORK/server.sql" "$start" "$KEYS" "$WORK/out/server.$r"
  mem_before=$(memory_hits "$METRICS_A")
  walk "$PORT_A" "$WORK/cached.sql" "$start" "$KEYS" "$WORK/out/memory.$r"
  echo "$(( $(memory_hits "$METRICS_A") - mem_before ))" >"$WORK/out/memory.$r.hits"
  l2_before=$(redis_hits_b); bmem_before=$(memory_hits "$METRICS_B")
  walk "$PORT_B" "$WORK/cached.sql" "$start" "$KEYS" "$WORK/out/redis.$r"
  echo "$(( $(redis_hits_b) - l2_before )) $(( $(memory_hits "$METRICS_B") - bmem_before ))" >"$WORK/out/redis.$r.hits"
  curl -s "http://127.0.0.1:$METRICS_A/metrics" >"$WORK/out/metrics.A.$r"
  curl -s "http://127.0.0.1:$METRICS_B/metrics" >"$WORK/out/metrics.B.$r"
done

# Redis failures make a round meaningless: a reconnect bumps the epochs (both tiers' answers stale).
for i in A B; do
  m=METRICS_$i
  echo "$i $(metric "${!m}" pgrelay_cache_redis_events_total 'event="failure"') $(metric "${!m}" pgrelay_cache_redis_events_total 'event="bump"')"
done >"$WORK/out/failures.txt"

# ---- compression ---------------------------------------------------------------------------------------
psql_a() { "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT_A" -U postgres -d bench -v ON_ERROR_STOP=1 "$@"; }
rcli --scan --pattern 'bench:a*' | sort >"$WORK/out/keys.before"
: >"$WORK/out/compression.txt"
for shape in '*' 'aid, bid, abalance'; do
  for rows in 1 10 100 1000; do
    raw_before=$(metric "$METRICS_A" pgrelay_cache_raw_bytes)
    for i in $(seq 0 19); do
      from=$(( 50000 + i * 1000 ))
      echo "SELECT $shape FROM pgbench_accounts WHERE aid BETWEEN $from AND $(( from + rows - 1 ));"
    done >"$WORK/size.sql"
    psql_a -f "$WORK/size.sql" >/dev/null || exit 1
    sleep 0.5   # the background SETs
    raw=$(( $(metric "$METRICS_A" pgrelay_cache_raw_bytes) - raw_before ))
    rcli --scan --pattern 'bench:a*' | sort >"$WORK/out/keys.after"
    comm -13 "$WORK/out/keys.before" "$WORK/out/keys.after" >"$WORK/out/keys.new"
    n=$(wc -l <"$WORK/out/keys.new")
    strlen=0; usage=0
    while read -r k; do
      strlen=$(( strlen + $(rcli STRLEN "$k") ))
      usage=$(( usage + $(rcli MEMORY USAGE "$k") ))
    done <"$WORK/out/keys.new"
    echo "$shape|$rows|$n|$raw|$strlen|$usage" >>"$WORK/out/compression.txt"
    mv "$WORK/out/keys.after" "$WORK/out/keys.before"
  done
done

# ---- report --------------------------------------------------------------------------------------------
"$PY" - "$WORK/out" "$ROUNDS" "$KEYS" <<'PYEOF'
import glob, os, statistics, sys
out, rounds, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def latencies(prefix):
    us = []
    for f in glob.glob(prefix + ".*"):
        if f.endswith(".out") or f.endswith(".hits"):
            continue
        with open(f) as fh:
            us += [int(line.split()[2]) for line in fh if line.strip()]
    return sorted(us)

def pct(us, p):
    return us[min(len(us) - 1, int(len(us) * p / 100))] / 1000.0

print(f"latency, one client, {keys} reads per round, {rounds} rounds (ms; per round, then the median):")
medians = {}
for kind in ("server", "memory", "redis"):
    p50s, p99s = [], []
    for r in range(1, rounds + 1):
        us = latencies(os.path.join(out, f"{kind}.{r}"))
        p50s.append(pct(us, 50)); p99s.append(pct(us, 99))
    medians[kind] = (statistics.median(p50s), statistics.median(p99s))
    rounds_text = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(p50s, p99s))
    print(f"  {kind:7s} p50/p99 {rounds_text}   median p50 {medians[kind][0]:.3f} p99 {medians[kind][1]:.3f}")
for r in range(1, rounds + 1):
    with open(os.path.join(out, f"memory.{r}.hits")) as fh:
        mem = fh.read().split()
    with open(os.path.join(out, f"redis.{r}.hits")) as fh:
        red = fh.read().split()
    print(f"  round {r}: A's memory hits {mem[0]} of {keys}; B's Redis hits {red[0]}, memory hits {red[1]}")
with open(os.path.join(out, "failures.txt")) as fh:
    for line in fh:
        name, failures, bumps = line.split()
        print(f"  instance {name}: {failures} failed Redis calls, {bumps} epoch bumps (each empties the caches: "
              f"a round with fewer hits than reads is not what it says)")
print("compression (20 answers each; ratio = uncompressed / stored payload, and / Redis MEMORY USAGE):")
print("  columns             rows  values  raw B/answer  payload B/answer  ratio  usage B/answer  raw/usage")
with open(os.path.join(out, "compression.txt")) as fh:
    for line in fh:
        shape, rows, n, raw, strlen, usage = line.rstrip("\n").split("|")
        n, raw, strlen, usage = int(n), int(raw), int(strlen), int(usage)
        if n == 0:
            print(f"  {shape:18s} {rows:>5s}  no value stored"); continue
        payload = strlen - n * (96 + 16)
        print(f"  {shape:18s} {rows:>5s}  {n:6d}  {raw / n:12.0f}  {payload / n:16.0f}  {raw / payload:5.2f}  {usage / n:14.0f}  {raw / usage:9.2f}")
PYEOF
