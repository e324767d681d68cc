#!/usr/bin/env bash
# The integration-test PostgreSQL cluster: CTest fixture setup and cleanup.
#
#   cluster.sh setup DIR     start a throwaway cluster in DIR (replacing a stale one), create the
#                            roles, databases and tables the tests use
#   cluster.sh cleanup DIR   stop it and remove DIR
#
# md5_user authenticates with md5 and scram_user with SCRAM-SHA-256 over TCP; everything else is
# trust, so tests can reach the cluster as postgres without a password.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg_temp="$here/../../scripts/pg-temp"
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: cluster.sh setup|cleanup DIR" >&2; exit 2; }

case "$cmd" in
  setup)
    "$pg_temp" stop "$dir"    # a cluster left behind by an interrupted run
    # pg_stat_statements: analyzer_test checks SHOW QUERIES against it. Prepared transactions:
    # cache_differential_test commits some with COMMIT PREPARED from another session. Logical
    # replication: the cache's replication listener (cache_replication_test, bench/replication_staleness.sh).
    port=$(PGTEMP_MAX_CONN=500 PGTEMP_CONF=$'shared_preload_libraries = \'pg_stat_statements\'\nmax_prepared_transactions = 10\nwal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20' \
           PGTEMP_HBA=$'host all md5_user 127.0.0.1/32 md5\nhost all scram_user 127.0.0.1/32 scram-sha-256' \
           "$pg_temp" start "$dir")
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL'
SET password_encryption = 'md5';
CREATE ROLE md5_user LOGIN PASSWORD 'md5pass';
SET password_encryption = 'scram-sha-256';
CREATE ROLE scram_user LOGIN PASSWORD 'scrampass';
CREATE DATABASE bench;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE it_copy (id int PRIMARY KEY, label text NOT NULL);
GRANT ALL ON it_copy TO PUBLIC;
SQL
    echo "integration cluster on 127.0.0.1:$port in $dir"
    ;;
  cleanup)
    "$pg_temp" stop "$dir"
    ;;
  *) echo "usage: cluster.sh setup|cleanup DIR" >&2; exit 2 ;;
esac
