# shellcheck shell=bash
# CPU time and context switches of a pooler per transaction, and the whole workload's CPU per
# transaction (PostgreSQL + pgbench + pooler, at the end), for bench/run (sourced, not run).
#
# On a shared machine tps moves with other tenants' load; the CPU time the pooler spends per
# transaction moves much less. run_pgbench snapshots the target's process tree before and after
# each pgbench run (pstat_snapshot) and appends four columns to runs.tsv (pstat_per_tx): user and
# system µs per transaction, context switches per transaction, and the share of them that were
# involuntary (preemptions), in percent.
#
# The snapshot sums over every thread of the process and its descendants (pgpool: the main
# process and all its children), from /proc/PID/task/TID/stat (utime, stime: fields 14 and 15, in
# clock ticks) and /proc/PID/task/TID/status (voluntary_ctxt_switches, nonvoluntary_ctxt_switches).
# A thread or child process that exits during the run takes its counts with it. That is fine for
# PgBouncer and pgrelay, whose threads live as long as the process, and for pgpool, whose
# children live as long as it does (child_life_time = 0). Direct gets empty fields: PostgreSQL's
# backends come and go with the connections.
#
# utime and stime count in clock ticks (getconf CLK_TCK: 100 here, 10 ms each), so a run must
# hold enough pooler CPU for them: the default 4 s runs at thousands of tps hold hundreds of ticks.

PSTAT_HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# pstat_tree PID: PID and all its descendants (processes, not threads), one per line.
pstat_tree() {
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
    { s = $0; sub(/.*\) /, "", s); split(s, f, " "); kids[f[2]] = kids[f[2]] " " $1 }   # f[2]: ppid
    END { q[1] = root; n = 1
          for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], c, " "); for (j = 1; j <= m; j++) q[++n] = c[j] } }'
}

# pstat_snapshot TARGET: "utime_ticks stime_ticks voluntary nonvoluntary threads" summed over the
# threads of PID[TARGET]'s tree; nothing for direct or a target that is not running.
pstat_snapshot() {
  local t=$1 p files=()
  if [ "$t" = direct ] || ! kill -0 "${PID[$t]:-0}" 2>/dev/null; then return 0; fi
  for p in $(pstat_tree "${PID[$t]}"); do files+=(/proc/"$p"/task/*/stat /proc/"$p"/task/*/status); done
  # A stat file is one line "TID (comm) state ...": comm may hold spaces and parentheses, so the
  # fields are counted after its last ") ", where state is field 3; utime is 14, stime 15.
  cat "${files[@]}" 2>/dev/null | awk '
    /^[0-9]+ \(/ { s = $0; sub(/.*\) /, "", s); split(s, f, " "); ut += f[12]; st += f[13]; n++; next }
    $1 == "voluntary_ctxt_switches:" { vol += $2 }
    $1 == "nonvoluntary_ctxt_switches:" { inv += $2 }
    END { if (n) printf "%.0f %.0f %.0f %.0f %d\n", ut, st, vol, inv, n }'
}

# pstat_per_tx "BEFORE" "AFTER" TRANSACTIONS: the four runs.tsv fields, tab-separated
# (user_us_per_tx sys_us_per_tx ctxsw_per_tx involuntary_ctxsw_pct); empty fields when a snapshot
# is missing or no transaction completed.
pstat_per_tx() {
  awk -v b="$1" -v a="$2" -v tx="${3:-0}" -v hz="$PSTAT_HZ" 'BEGIN {
    if (split(b, x, " ") < 4 || split(a, y, " ") < 4 || tx + 0 <= 0) { printf "\t\t\t\n"; exit }
    cs = (y[3] - x[3]) + (y[4] - x[4])
    printf "%.1f\t%.1f\t%.3f\t%s\n", (y[1] - x[1]) * 1e6 / hz / tx, (y[2] - x[2]) * 1e6 / hz / tx, cs / tx,
      (cs > 0 ? sprintf("%.1f", (y[4] - x[4]) * 100 / cs) : "") }'
}

# ---------------------------------------------------------------------------------------------
# The whole workload's CPU per transaction: PostgreSQL + pgbench + the pooler (issue 13).
#
# Why: on this 2-core machine PostgreSQL, pgbench and the pooler share the cores. When the
# benchmark saturates them, tps = cores / (CPU per transaction), so a pooler that cost nothing
# could at best reach work / (work - pooler) times PgBouncer's tps: the "zero-cost ceiling" that
# report.sh prints. /proc/stat cannot give the work (other tenants' processes count there too),
# so each part is read from its own processes:
#   - PostgreSQL (pg_cpu_ticks): the postmaster's process tree.
#   - pgbench (work_mark): bash's `times`, i.e. getrusage(RUSAGE_CHILDREN) of this shell.
#   - the pooler: pstat_snapshot above.
# work_mark also records /proc/stat's cpu line, whose idle share says whether the cores were
# saturated at all (if they were not, tps is bound by latency and the ceiling means nothing).

# pg_cpu_ticks: utime+stime+cutime+cstime (clock ticks) summed over the postmaster (PG_PID, from
# the data directory's postmaster.pid) and its live descendants; nothing if it is not running.
#
# Backends come and go (connect-storm: one per transaction), so the live processes' own times
# are not enough. Every process's CPU is counted exactly once:
#   - a live process: its utime+stime (/proc/PID/stat: fields 14 and 15, the whole process, every
#     thread including exited ones; PostgreSQL's processes are single-threaded anyway);
#   - a process that exited: when its parent reaped it (wait), the kernel added its utime+stime
#     and its own cutime+cstime to the parent's cutime+cstime (fields 16 and 17). So cutime of a
#     live process covers exactly its reaped descendants, each of which is gone from /proc, and
#     no live process is in anyone's cutime. Summing utime+stime+cutime+cstime over the live
#     tree therefore counts live and reaped processes once each. A zombie (exited, not reaped)
#     still shows its own times and is not yet in its parent's cutime: counted once too.
# What escapes: a descendant reaped by a process outside the tree (an orphan re-parented to init;
# PostgreSQL's children are the postmaster's and it reaps them itself), and one snapshot race: a
# backend reaped after the postmaster's stat line was read but before its own was (cat reads in
# pid order, the postmaster first) is missed: one backend's few ms in a run of thousands of
# transactions. One pass over /proc/[0-9]*/stat finds the tree and sums it.
pg_cpu_ticks() {
  [ -n "${PG_PID:-}" ] && kill -0 "$PG_PID" 2>/dev/null || return 0
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$PG_PID" '
    { s = $0; sub(/.*\) /, "", s); split(s, f, " ")         # f[2]: ppid; f[12..15]: utime stime cutime cstime
      kids[f[2]] = kids[f[2]] " " $1; t[$1] = f[12] + f[13] + f[14] + f[15] }
    END { if (!(root in t)) exit
          q[1] = root; n = 1
          for (i = 1; i <= n; i++) { sum += t[q[i]]; m = split(kids[q[i]], c, " "); for (j = 1; j <= m; j++) q[++n] = c[j] }
          printf "%.0f\n", sum }'
}

# work_mark FILE: this shell's children's CPU (bash `times`: line 2 is "XmY.YYYs XmY.YYYs", user and
# system of every child reaped so far, their own reaped children included) and /proc/stat's cpu
# line. Builtins only, no fork: run_pgbench calls it right before starting pgbench (through
# timeout, which waits for it) and right after waiting for it, so the difference of the two
# marks is pgbench's CPU plus timeout's, and nothing else this shell runs.
work_mark() {
  local l
  read -r l </proc/stat
  { times; printf '%s\n' "$l"; } >"$1"
}

# work_per_tx TARGET MARK0 MARK1 "POOLER0" "POOLER1" PG0 PG1 TRANSACTIONS: the four runs.tsv fields
# pg_us_per_tx pgbench_us_per_tx work_us_per_tx idle_pct, tab-separated. work = PostgreSQL +
# pgbench + pooler (POOLERn: pstat_snapshot lines; none for direct). idle_pct: idle+iowait share
# of the machine's CPU time between the marks, every tenant included. Fields are empty when a
# reading is missing or no transaction completed.
work_per_tx() {
  awk -v t="$1" -v m0="$2" -v m1="$3" -v p0="$4" -v p1="$5" -v g0="$6" -v g1="$7" -v tx="${8:-0}" -v hz="$PSTAT_HZ" '
    function secs(v,   a) { sub(/,/, ".", v); split(v, a, /[ms]/); return a[1] * 60 + a[2] }   # 1m2.345s (or 2,345)
    function mark(file, r,   l, n, f, i) {   # r[1]: children user+sys in s; r[2]: idle ticks; r[3]: all ticks
      n = 0; while ((getline l < file) > 0) {
        n++
        if (n == 2) { split(l, f, " "); r[1] = secs(f[1]) + secs(f[2]) }
        if (l ~ /^cpu /) { split(l, f, " "); r[2] = f[5] + f[6]; r[3] = 0; for (i = 2; i <= 9; i++) r[3] += f[i] }
      }
      close(file); return n >= 3
    }
    BEGIN {
      ok0 = mark(m0, a); ok1 = mark(m1, b)
      idle = (ok0 && ok1 && b[3] > a[3]) ? sprintf("%.1f", (b[2] - a[2]) * 100 / (b[3] - a[3])) : ""
      if (tx + 0 <= 0 || !ok0 || !ok1 || g0 == "" || g1 == "") { printf "\t\t\t%s\n", idle; exit }
      pg = (g1 - g0) * 1e6 / hz / tx
      bench = (b[1] - a[1]) * 1e6 / tx
      pooler = 0
      if (t != "direct") {
        if (split(p0, x, " ") < 2 || split(p1, y, " ") < 2) { printf "%.1f\t%.1f\t\t%s\n", pg, bench, idle; exit }
        pooler = ((y[1] + y[2]) - (x[1] + x[2])) * 1e6 / hz / tx
      }
      printf "%.1f\t%.1f\t%.1f\t%s\n", pg, bench, pg + bench + pooler, idle }'
}
