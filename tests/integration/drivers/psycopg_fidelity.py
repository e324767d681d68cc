"""psycopg 3 through pgrelay in transaction pooling: what the driver does on its own must work as
straight to PostgreSQL. Run by fidelity_test.cc with a conninfo for a pgrelay whose pool has one
server connection and one straight to PostgreSQL, after it created schema fid_s1 (fid_s1.fid_t holds 's1', public.fid_t 'public').
Prints one line per check; exits non-zero on the first failure."""
import sys

import psycopg

dsn = sys.argv[1]
direct = sys.argv[2]


def check(what, got, want):
    if got != want:
        print(f"FAIL {what}: got {got!r}, want {want!r}")
        sys.exit(1)
    print(f"ok {what}")


# Server-side prepared statements (prepare=True) and the driver's cache eviction past prepared_max,
# which DEALLOCATEs by name; two clients on one server connection, the same names on both.
with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
    a.prepared_max = b.prepared_max = 2
    for i in range(12):
        for conn, offset in ((a, 0), (b, 1000)):
            sql = f"select %s::int + {offset} + {i % 4}"
            got = conn.execute(sql, (i,), prepare=True).fetchone()[0]
            if got != i + offset + i % 4:
                check(f"prepared statement {i} on {'a' if conn is a else 'b'}", got, i + offset + i % 4)
    check("prepare=True with cache eviction, 48 statements", True, True)

    # A SET undone by a rolled-back transaction does not come back after the other client's turn.
    with a.transaction(force_rollback=True):
        a.execute("set search_path = fid_s1")
    check("b reads public.fid_t", b.execute("select v from fid_t").fetchone()[0], "public")
    check("a's rolled-back search_path is gone", a.execute("select v from fid_t").fetchone()[0], "public")
    with a.transaction():
        a.execute("set search_path = fid_s1")
    check("b still reads public.fid_t", b.execute("select v from fid_t").fetchone()[0], "public")
    check("a's committed search_path holds", a.execute("select v from fid_t").fetchone()[0], "s1")

# DDL made straight to PostgreSQL, which pgrelay never sees, after statements were prepared on
# the shared connection: a new client preparing the same text gets the new columns, no error.
with psycopg.connect(direct, autocommit=True) as d:
    d.execute("drop table if exists fid_py_ddl; create table fid_py_ddl (a int); insert into fid_py_ddl values (1)")
    sql = "select * from fid_py_ddl where a = %s"
    with psycopg.connect(dsn, autocommit=True) as c:
        for _ in range(3):
            check("before DDL", len(c.execute(sql, (1,), prepare=True).fetchone()), 1)
    d.execute("alter table fid_py_ddl add column b text default 'x'")
    for i in range(5):
        with psycopg.connect(dsn, autocommit=True) as c:
            check(f"after DDL elsewhere, client {i}", c.execute(sql, (1,), prepare=True).fetchone(), (1, "x"))

# A list-valued startup setting, as Django documents for choosing a schema.
with psycopg.connect(dsn, autocommit=True, options="-c search_path=fid_s1,public") as c:
    check("options search_path list", c.execute("select v from fid_t").fetchone()[0], "s1")
    with psycopg.connect(dsn, autocommit=True) as other:
        check("other client", other.execute("select v from fid_t").fetchone()[0], "public")
    check("options search_path list, again", c.execute("select v from fid_t").fetchone()[0], "s1")
print("all ok")
