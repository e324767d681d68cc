#!/usr/bin/python3
"""Staleness of pgrelay's cache for writes made directly on PostgreSQL (the replication listener).

A load process commits --rate single-row UPDATEs per second straight on PostgreSQL (table
`load`, never read through pgrelay). A probe, every --probe-interval, commits one UPDATE to
table `probe` straight on PostgreSQL and then reads `SELECT v FROM probe WHERE k = 1` through
pgrelay as fast as it can until the answer shows the new value: the time from the direct COMMIT
returning to that read is one sample. Between probes the probe read is answered from the cache
(checked: SHOW CACHE hits are reported). Prints the percentiles as one JSON line.
"""
import argparse
import json
import multiprocessing
import time

import psycopg


def load(direct, rate, seconds, rows, done):
    conn = psycopg.connect(direct, autocommit=True)
    interval = 1.0 / rate
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        conn.execute("UPDATE load SET v = v + 1 WHERE k = %s", (n % rows + 1,))
        n += 1
        ahead = start + n * interval - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    done.value = n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--direct", required=True)
    p.add_argument("--relay", required=True)
    p.add_argument("--console", required=True)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--probe-interval", type=float, default=0.02)
    args = p.parse_args()

    d = psycopg.connect(args.direct, autocommit=True)
    d.execute("DROP TABLE IF EXISTS load, probe")
    d.execute("CREATE TABLE load (k int PRIMARY KEY, v bigint)")
    d.execute("INSERT INTO load SELECT g, 0 FROM generate_series(1, 1000) g")
    d.execute("CREATE TABLE probe (k int PRIMARY KEY, v bigint)")
    d.execute("INSERT INTO probe VALUES (1, 0)")
    r = psycopg.connect(args.relay, autocommit=True)
    console = psycopg.connect(args.console, autocommit=True)
    read = "SELECT v FROM probe WHERE k = 1"

    def hits():
        cur = console.execute("SHOW CACHE")
        names = [c.name for c in cur.description]
        return int(cur.fetchone()[names.index("hits")])

    for _ in range(5):   # catalog facts, then a fill
        r.execute(read).fetchone()
    done = multiprocessing.Value("l", 0)
    writer = multiprocessing.Process(target=load, args=(args.direct, args.rate, args.seconds, 1000, done))
    hits_before = hits()
    writer.start()
    samples, reads, stale_reads = [], 0, 0
    value = 0
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        # The cached answer is warm: a few reads that must be hits of the current value.
        for _ in range(3):
            got = r.execute(read).fetchone()[0]
            reads += 1
            if got != value:
                stale_reads += 1
        value += 1
        d.execute("UPDATE probe SET v = %s WHERE k = 1", (value,))
        committed = time.monotonic()
        while True:
            got = r.execute(read).fetchone()[0]
            reads += 1
            if got == value:
                samples.append(time.monotonic() - committed)
                break
            if time.monotonic() - committed > 5:
                samples.append(float("inf"))
                break
        pause = args.probe_interval - (time.monotonic() - committed)
        if pause > 0:
            time.sleep(pause)
    writer.join()
    hits_after = hits()
    samples.sort()

    def pct(q):
        return round(samples[min(len(samples) - 1, int(q * len(samples)))] * 1000, 2)

    print(json.dumps({
        "probes": len(samples),
        "load_writes": done.value,
        "load_rate": round(done.value / args.seconds, 1),
        "staleness_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "relay_reads": reads,
        "cache_hits": hits_after - hits_before,
        "wrong_values_before_write": stale_reads,
    }))


if __name__ == "__main__":
    main()
