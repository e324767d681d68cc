-- hot-reads: Zipfian (s = 1.2) point reads over the first 10,000 accounts: a few rows take most reads,
-- as in real applications. A result cache should answer nearly all of these without the server.
\set aid random_zipfian(1, 10000, 1.2)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
