#!/usr/bin/env bash
# Records real client sessions for the fuzz seeds: a throwaway cluster (tests/integration/
# cluster.sh), fuzz/tools/capture.py in front of it, then psql, pgbench (simple, extended,
# prepared, COPY from -i) and psycopg 3 (Debian python3-psycopg; pipeline mode, COPY in and out, a cancel, SCRAM and MD5
# logins) through the relay. Writes the recordings to OUT_DIR (default /tmp/pgrelay-capture).
#
#   fuzz/tools/record_traffic.sh [OUT_DIR]      then: fuzz/tools/split_corpus.py OUT_DIR fuzz/corpus
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/pgrelay-capture}
cluster=/tmp/pgrelay-capture-cluster
rm -rf "$out"
"$here/../../tests/integration/cluster.sh" setup "$cluster" >/dev/null
pg_port=$(cat "$cluster/port")
relay_port=$(( pg_port + 1 ))
python3 "$here/capture.py" "$relay_port" "$pg_port" "$out" &
relay=$!
trap 'kill $relay 2>/dev/null || true; "$here/../../tests/integration/cluster.sh" cleanup "$cluster"' EXIT
sleep 0.5
export PGHOST=127.0.0.1 PGPORT=$relay_port PGUSER=postgres PGDATABASE=postgres
PSQL=/usr/lib/postgresql/15/bin/psql
PGBENCH=/usr/lib/postgresql/15/bin/pgbench

PGSSLMODE=prefer $PSQL -X -q -v ON_ERROR_STOP=0 <<'SQL' >/dev/null 2>&1 || true
SELECT 1, 'two', 3.5::numeric, NULL, now() IS NOT NULL, ARRAY[1,2], '{"a":1}'::jsonb;
CREATE TEMP TABLE t (id int PRIMARY KEY, name text, at timestamptz DEFAULT now());
INSERT INTO t SELECT g, 'name ' || g FROM generate_series(1, 50) g;
SELECT * FROM t WHERE id IN (1, 2, 3) ORDER BY id;
SET search_path TO public, pg_temp; SET application_name = 'fuzz capture'; RESET ALL;
BEGIN; UPDATE t SET name = E'x\ty' WHERE id = 1; SAVEPOINT s; SELECT 1/0; ROLLBACK TO s; COMMIT;
LISTEN chan; NOTIFY chan, 'payload'; UNLISTEN *;
PREPARE q(int) AS SELECT name FROM t WHERE id = $1; EXECUTE q(2); DEALLOCATE q;
DO $$ BEGIN PERFORM pg_advisory_lock(1); PERFORM pg_advisory_unlock(1); END $$;
COPY t (id, name) TO STDOUT;
COPY t (id, name) FROM STDIN;
1000	copied
1001	"quoted"
\.
\copy (SELECT id, name FROM t WHERE id < 5) TO STDOUT WITH (FORMAT csv, HEADER)
SELECT /* pgrelay:cache ttl=30s */ count(*) FROM t;
WITH w AS (DELETE FROM t WHERE id > 40 RETURNING *) SELECT count(*) FROM w;
SELECT relname FROM pg_class WHERE relkind = 'r' LIMIT 3;
EXPLAIN SELECT * FROM t JOIN t t2 USING (id);
SELECT x FROM nonexistent;
DISCARD ALL;
\d t
SQL
PGPASSWORD=scrampass $PSQL -X -q -U scram_user -c 'SELECT current_user' >/dev/null
PGPASSWORD=md5pass $PSQL -X -q -U md5_user -c 'SELECT current_user' >/dev/null
PGPASSWORD=wrong $PSQL -X -q -U scram_user -c 'SELECT 1' >/dev/null 2>&1 || true
$PSQL -X -q -d nosuchdb -c 'SELECT 1' >/dev/null 2>&1 || true

$PGBENCH -i -s 1 -q bench >/dev/null 2>&1
for mode in simple extended prepared; do
  $PGBENCH -n -M $mode -c 2 -t 5 bench >/dev/null 2>&1
  $PGBENCH -n -M $mode -c 1 -t 5 -S bench >/dev/null 2>&1
done

/usr/bin/python3 - <<'PY'
import threading, time
import psycopg
dsn = "host=127.0.0.1 port=%s user=postgres dbname=postgres" % __import__("os").environ["PGPORT"]
with psycopg.connect(dsn) as conn:
    conn.execute("CREATE TEMP TABLE p (id int, v text, b bytea)")
    with conn.pipeline():
        for i in range(20):
            conn.execute("INSERT INTO p VALUES (%s, %s, %s)", (i, "v%d" % i, bytes([i, 0, 255])))
        cur = conn.execute("SELECT * FROM p WHERE id < %s", (5,))
        conn.execute("SELECT %s::int + %s::int", (1, 2), prepare=True)
    cur = conn.cursor(binary=True)
    cur.execute("SELECT * FROM p WHERE v = %s", ("v3",))
    cur.fetchall()
    cur.executemany("UPDATE p SET v = %s WHERE id = %s", [("w", 1), ("w", 2), ("w", 3)])
    for _ in range(6):
        cur.execute("SELECT v FROM p WHERE id = %s", (4,), prepare=True)
    with cur.copy("COPY p (id, v) FROM STDIN") as copy:
        for i in range(100, 130):
            copy.write_row((i, "copied %d" % i))
    with cur.copy("COPY p TO STDOUT (FORMAT binary)") as copy:
        for _ in copy:
            pass
    with conn.cursor(name="named_cursor") as nc:
        nc.execute("SELECT generate_series(1, 100)")
        nc.fetchmany(10)
    try:
        conn.execute("SELECT * FROM p WHERE id = 'x'")
    except psycopg.Error:
        conn.rollback()
    def cancel():
        time.sleep(0.3)
        conn.cancel()
    threading.Thread(target=cancel).start()
    try:
        conn.execute("SELECT pg_sleep(5)")
    except psycopg.Error:
        conn.rollback()
with psycopg.connect(dsn + " user=scram_user password=scrampass") as conn:
    conn.execute("SELECT 1")
PY
sleep 0.5
echo "recorded $(ls "$out" | wc -l) streams into $out"
