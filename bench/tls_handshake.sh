#!/usr/bin/env bash
# Handshake throughput: `pgbench -C -S` (a new connection per transaction) through pgrelay and PgBouncer, with and without TLS.
#
#   bench/tls_handshake.sh [--clients N] [--threads N] [--duration S] [--rounds N] [--pgrelay-binary PATH] [--keep-work]
#
# Starts a throwaway PostgreSQL 15 (scripts/pg-temp, no TLS: only the client side is measured),
# PgBouncer 1.18 (Debian's) and pgrelay, both in transaction mode with auth_type trust and the
# same certificate (EC P-256, made here with openssl; client_tls_sslmode prefer for both, default
# protocols and ciphers: TLS 1.3 with TLS_AES_256_GCM_SHA384). Then, round by round, interleaved
# (pgbouncer plain, pgbouncer TLS, pgrelay plain, pgrelay TLS, ...), runs
#   PGSSLMODE=disable|require pgbench -n -C -S -c CLIENTS -j THREADS -T DURATION bench
# and prints a Markdown table of the median tps (connections per second) over the rounds, with the
# range. Run as root (PgBouncer runs as postgres); everything it starts is stopped on exit.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v pgbench)")}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
CLIENTS=8
THREADS=2
DURATION=5
ROUNDS=3
PGRELAY_BIN=""
KEEP_WORK=0

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) CLIENTS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --pgrelay-binary) PGRELAY_BIN=$2; shift ;;
    --keep-work) KEEP_WORK=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tls_handshake.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

BENCH_NAME=tlsbench
. "$BENCH_DIR/standalone.sh"   # WORK, PIDS, log, cleanup on exit, free_port, wait_ready
mkdir -p "$WORK"/{pg,pgbouncer,pgrelay,certs,out}
AS_POSTGRES=()
[ "$(id -u)" = 0 ] && AS_POSTGRES=(setpriv --reuid=postgres --regid=postgres --init-groups --)

# ---- certificate: one CA, one server certificate for both poolers --------------------------------
(
  cd "$WORK/certs" || exit 1
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key &&
  openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=tls bench CA" &&
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key &&
  openssl req -new -key server.key -out server.csr -subj "/CN=localhost" &&
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext &&
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
    -extfile server.ext
) >"$WORK/out/certs.log" 2>&1 || { cat "$WORK/out/certs.log" >&2; log "openssl failed"; exit 1; }
chmod 600 "$WORK/certs/server.key"
[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK/certs"

# ---- PostgreSQL ----------------------------------------------------------------------------------
MAXCONN=$(( CLIENTS * 4 + 100 ))
PGPORT=$(PGTEMP_MAX_CONN=$MAXCONN "$REPO/scripts/pg-temp" start "$WORK/pg") || { log "PostgreSQL failed to start"; exit 1; }
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres bench || exit 1
"$PGBIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$PGPORT" -U postgres bench >"$WORK/out/init.log" 2>&1 ||
  { cat "$WORK/out/init.log" >&2; exit 1; }

# ---- PgBouncer -----------------------------------------------------------------------------------
BOUNCER_PORT=$(free_port)
cat >"$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$PGPORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
pidfile = $WORK/pgbouncer/pgbouncer.pid
logfile = $WORK/pgbouncer/pgbouncer.log
auth_type = trust
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = 20
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
log_connections = 0
log_disconnections = 0
client_tls_sslmode = prefer
client_tls_key_file = $WORK/certs/server.key
client_tls_cert_file = $WORK/certs/server.pem
EOF
echo '"postgres" ""' >"$WORK/pgbouncer/userlist.txt"
chown -R postgres: "$WORK/pgbouncer" 2>/dev/null
"${AS_POSTGRES[@]}" "$PGBOUNCER" "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer/stderr.log" 2>&1 &
PIDS+=("$!")
wait_ready "$BOUNCER_PORT" || { tail "$WORK/pgbouncer/"*.log >&2; log "PgBouncer failed to start"; exit 1; }

# ---- pgrelay -------------------------------------------------------------------------------------
build_pgrelay_unless_given
RELAY_PORT=$(free_port)
cat >"$WORK/pgrelay/pgrelay.toml" <<EOF
[pgrelay]
listen_addr = "127.0.0.1"
listen_port = $RELAY_PORT
pool_mode = "transaction"
pool_size = 20
max_client_conn = 2000
log_level = "warning"
auth_type = "trust"
client_tls_sslmode = "prefer"
client_tls_cert_file = "$WORK/certs/server.pem"
client_tls_key_file = "$WORK/certs/server.key"

[databases."*"]
host = "127.0.0.1"
port = $PGPORT
EOF
"$PGRELAY_BIN" -c "$WORK/pgrelay/pgrelay.toml" >"$WORK/pgrelay/pgrelay.log" 2>&1 &
PIDS+=("$!")
wait_ready "$RELAY_PORT" || { tail "$WORK/pgrelay/pgrelay.log" >&2; log "pgrelay failed to start"; exit 1; }

# ---- measuring -----------------------------------------------------------------------------------
declare -A PORT=([pgbouncer]=$BOUNCER_PORT [pgrelay]=$RELAY_PORT)
declare -A TPS
log "pgbench -n -C -S -c $CLIENTS -j $THREADS -T $DURATION, $ROUNDS rounds, pgbouncer $("$PGBOUNCER" --version | head -1 | awk '{print $2}'), pgrelay $("$PGRELAY_BIN" --version | awk '{print $2}') ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))"
for r in $(seq 1 "$ROUNDS"); do
  for t in pgbouncer pgrelay; do
    for mode in disable require; do
      out=$WORK/out/$t.$mode.$r.txt
      PGSSLMODE=$mode timeout $(( DURATION + 60 )) "$PGBIN/pgbench" -n -C -S -h 127.0.0.1 -p "${PORT[$t]}" -U postgres \
        -c "$CLIENTS" -j "$THREADS" -T "$DURATION" bench >"$out" 2>&1
      tps=$(awk '/^tps = /{print $3; exit}' "$out")
      failed=$(awk '/^number of failed transactions:/{print $5; exit}' "$out")
      if [ -z "$tps" ] || [ "${failed:-0}" != 0 ]; then log "$t $mode round $r failed: $(tail -2 "$out" | tr '\n' ' ')"; tps=0; fi
      TPS[$t.$mode]="${TPS[$t.$mode]:-} $tps"
      log "round $r: $t sslmode=$mode: $tps tps"
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}'; }
# Where PgBouncer also did TLS, check both really did (one session through each, PGSSLMODE=require).
tls_of() { PGSSLMODE=require "$PGBIN/psql" -X -h 127.0.0.1 -p "$1" -U postgres -d bench -c '\conninfo' 2>&1 | grep -o 'SSL connection (protocol: [^,]*, cipher: [^,]*'; }

echo
echo "Handshake throughput, \`pgbench -n -C -S -c $CLIENTS -j $THREADS -T $DURATION\`, median of $ROUNDS rounds (connections/s = tps)"
echo
echo "| target | plain (PGSSLMODE=disable) | TLS (PGSSLMODE=require) | TLS / plain |"
echo "|---|---|---|---|"
for t in pgbouncer pgrelay; do
  p=$(median <<<"${TPS[$t.disable]}"); s=$(median <<<"${TPS[$t.require]}")
  printf '| %s | %.0f (%s) | %.0f (%s) | %.2f |\n' "$t" "$p" "$(range <<<"${TPS[$t.disable]}")" "$s" \
    "$(range <<<"${TPS[$t.require]}")" "$(awk -v a="$s" -v b="$p" 'BEGIN {print (b > 0 ? a / b : 0)}')"
done
pp=$(median <<<"${TPS[pgrelay.disable]}"); bp=$(median <<<"${TPS[pgbouncer.disable]}")
ps=$(median <<<"${TPS[pgrelay.require]}"); bs=$(median <<<"${TPS[pgbouncer.require]}")
echo
printf 'pgrelay / PgBouncer: plain %.2f, TLS %.2f\n' "$(awk -v a="$pp" -v b="$bp" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
  "$(awk -v a="$ps" -v b="$bs" 'BEGIN {print (b > 0 ? a / b : 0)}')"
echo "pgbouncer: $(tls_of "$BOUNCER_PORT"); pgrelay: $(tls_of "$RELAY_PORT")"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
