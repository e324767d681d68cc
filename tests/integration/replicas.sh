#!/usr/bin/env bash
# A primary and two streaming replicas for the read-replica tests: CTest fixture setup and cleanup.
#
#   replicas.sh setup DIR     start DIR/primary (scripts/pg-temp start) and DIR/replica1,
#                             DIR/replica2 (pg-temp replica: pg_basebackup, hot standby), each on a
#                             free loopback port written to its `port` file; create what the tests use
#   replicas.sh cleanup DIR   stop all three and remove DIR
#
# Everything is trust on loopback. pg_stat_statements is loaded everywhere, so a test can count
# which server ran a statement (a standby keeps its own counts).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg_temp="$here/../../scripts/pg-temp"
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: replicas.sh setup|cleanup DIR" >&2; exit 2; }

stop_all() {
  for r in replica1 replica2 primary; do "$pg_temp" stop "$dir/$r"; done
  rm -rf "$dir"
}

case "$cmd" in
  setup)
    stop_all    # a set left behind by an interrupted run
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    # wal_receiver_status_interval and a short wal_writer_delay: replicas report and replay soon.
    port=$(PGTEMP_CONF=$'shared_preload_libraries = \'pg_stat_statements\'\nwal_receiver_status_interval = 1s\nwal_writer_delay = 10ms' \
           "$pg_temp" start "$dir/primary")
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_stat_statements;
CREATE TABLE rr_items (id int PRIMARY KEY, value bigint NOT NULL);
CREATE SEQUENCE rr_seq;
INSERT INTO rr_items SELECT g, 0 FROM generate_series(1, 100) g;
SQL
    r1=$("$pg_temp" replica "$dir/replica1" "$dir/primary")
    r2=$("$pg_temp" replica "$dir/replica2" "$dir/primary")
    # Both have replayed the setup above before a test starts.
    lsn=$(psql -X -At -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "select pg_current_wal_lsn()")
    for p in "$r1" "$r2"; do
      for _ in $(seq 1 300); do
        caught=$(psql -X -At -h 127.0.0.1 -p "$p" -U postgres -d postgres \
                 -c "select pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" 2>/dev/null || true)
        [ "$caught" = t ] && break
        sleep 0.1
      done
      [ "$caught" = t ] || { echo "replica on port $p did not catch up" >&2; exit 1; }
    done
    echo "primary on 127.0.0.1:$port, replicas on $r1 and $r2, in $dir"
    ;;
  cleanup)
    stop_all
    ;;
  *) echo "usage: replicas.sh setup|cleanup DIR" >&2; exit 2 ;;
esac
