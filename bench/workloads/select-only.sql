-- select-only: pgbench's built-in "select-only" (-S) script, one point read by primary key over every row.
-- Used by select-only (-M simple), select-only-prepared (-M prepared), connect-storm (-C), the clients sweep
-- and fairness.
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
