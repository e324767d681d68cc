-- heavy-read: an aggregate over all of pgbench_accounts grouped by branch. Expensive for the server
-- (a full scan), tiny result, same text every time: the query cache's best case.
SELECT bid, count(*), sum(abalance), avg(abalance)::numeric(12,2) FROM pgbench_accounts GROUP BY bid ORDER BY bid;
