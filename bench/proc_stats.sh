# shellcheck shell=bash
# CPU time and context switches of a pooler per transaction, for bench/run (sourced, not run).
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
