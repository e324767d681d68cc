# Sourced by the stand-alone bench scripts (tls_handshake.sh, online_restart.sh): the work
# directory WORK (/tmp/pgrelay-BENCH_NAME-PID, removed on exit unless KEEP_WORK=1), PIDS (the
# processes to stop on exit: SIGTERM, then SIGKILL), the throwaway PostgreSQL in $WORK/pg stopped
# on exit, log, free_port, wait_ready and build_pgrelay_unless_given. Set BENCH_NAME, REPO, PGBIN
# and KEEP_WORK first.

WORK=/tmp/pgrelay-$BENCH_NAME-$$
mkdir -p "$WORK"
chmod 755 "$WORK"
PIDS=()
log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -d "$WORK/pg/data" ] && "$REPO/scripts/pg-temp" stop "$WORK/pg" >/dev/null 2>&1
  if [ "$KEEP_WORK" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
wait_ready() {   # wait_ready PORT: until psql gets an answer through it (plain)
  for _ in $(seq 1 75); do
    PGCONNECT_TIMEOUT=2 "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d bench -tAc 'select 1' \
      >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
build_pgrelay_unless_given() {   # PGRELAY_BIN empty: build one (build-bench, Release) and point it there
  [ -n "$PGRELAY_BIN" ] && return 0
  log "building pgrelay (build-bench, Release)"
  mkdir -p "$WORK/out"
  { cmake -S "$REPO" -B "$REPO/build-bench" -DCMAKE_BUILD_TYPE=Release -DPGRELAY_TESTS=OFF -G Ninja &&
    cmake --build "$REPO/build-bench" --target pgrelay; } >"$WORK/out/build.log" 2>&1 ||
    { tail -20 "$WORK/out/build.log" >&2; exit 1; }
  PGRELAY_BIN=$REPO/build-bench/proxy/pgrelay
}
