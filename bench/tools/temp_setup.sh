# Sourced by bench scripts that run a throwaway PostgreSQL (scripts/pg-temp) and one pgrelay:
# the work folder and its removal on exit, a free port. Needs REPO set.

# bench_workdir NAME: WORK=/tmp/NAME-<pid> (made, writable by postgres), RELAY_PID="", and on exit
# the pgrelay stopped, the PostgreSQL in $WORK/pg stopped and $WORK removed.
bench_workdir() {
  WORK=/tmp/$1-$$
  RELAY_PID=""
  trap bench_cleanup EXIT INT TERM
  mkdir -p "$WORK"
  chmod 777 "$WORK"
}

bench_cleanup() {
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null
  "$REPO/scripts/pg-temp" stop "$WORK/pg"
  rm -rf "$WORK"
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
