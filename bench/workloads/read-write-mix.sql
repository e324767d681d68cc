-- read-write-mix: 90% Zipfian hot reads, 10% updates of the same hot rows (autocommit). Every update
-- invalidates what a result cache holds for pgbench_accounts: the cache's invalidation case.
\set aid random_zipfian(1, 10000, 1.2)
\set roll random(1, 10)
\if :roll = 1
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
\else
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\endif
