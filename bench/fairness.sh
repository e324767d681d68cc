# The fairness workload of bench/run (sourced, not run; issue 13): FAIR_CLIENTS clients on a pool
# of FAIR_POOL server connections for FAIR_DURATION s. No client may wait longer than 5x the
# median wait.
#
# pgbench select-only (-M simple) against database bench_pool10, an alias of bench that PgBouncer
# and pgrelay pool with 10 server connections (ALIAS_POOLS in bench/run), every transaction
# logged. The query takes about 0.1 ms and 500 clients share 10 connections, so a transaction's
# latency is almost all wait for a server connection: the latency distribution is the wait
# distribution, and a pooler that lets some waiters jump the queue shows it as a long tail (max
# against median) and as clients that completed few transactions.
#
# Only the poolers run it. Neither direct nor pgpool has a pool to wait for: PostgreSQL forks a
# backend per client, and pgpool a process with its own backend per client, up to
# num_init_children, which bench/run sizes for the other workloads' client counts (and at 500
# would hold 2+ GiB); max_connections too is sized for those, not for 500 more. pgrelay in
# session mode is skipped as well: there a client holds its server connection for its whole
# life (bench/run sizes session-mode pools, aliases included, to the largest client count, which
# may be below FAIR_CLIENTS), so there is no pool of 10 to wait for.
#
# Output: $WORK/fair.tsv, one line per target, in target order:
#   target clients pool status tps transactions median_ms p99_ms max_ms max_over_median
#   min_tx_per_client median_tx_per_client verdict note steal_pct
# status is ok, failed (pgbench error, target died; the note says why) or skipped. steal_pct: the
# share of the machine's CPU time the hypervisor took for other guests during the measured run
# (/proc/stat's steal column; empty where the kernel has none): on a shared virtual machine, a
# burst of it stalls every process at once, and the longest wait with it.

FAIR_POOL=10                  # must be one of bench/run's ALIAS_POOLS
FAIR_MAX_RATIO=5              # the criterion: max wait <= 5 x median wait

fair_target() {               # fair_target TARGET: true if the fairness workload runs against it
  case "$1" in pgbouncer|pgrelay|baseline) return 0 ;; *) return 1 ;; esac
}

# fair_est_seconds: expected wall time of the workload, for bench/run's estimate. Per pooler: the
# 2 s warm-up, the run, +1 s per 128 clients (as run_pgbench, for connecting), ~3 s to connect
# and disconnect hundreds of clients, ~2 s to sort a log of a few hundred thousand lines.
fair_est_seconds() {
  local t n=0
  [ "$DO_FAIR" = 1 ] || { echo 0; return; }
  for t in "${TARGET_LIST[@]}"; do fair_target "$t" && n=$(( n + 1 )); done
  echo $(( n * (FAIR_DURATION + FAIR_CLIENTS / 128 + 7) ))
}

# fair_row TARGET STATUS TPS "STATS" NOTE [STEAL]: appends a line to fair.tsv. STATS is the
# tab-separated transactions ... verdict part (8 fields), empty when there is none.
fair_row() {
  local stats=$4
  [ -n "$stats" ] || stats=$'\t\t\t\t\t\t\t'
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$FAIR_CLIENTS" "$FAIR_POOL" "$2" "$3" "$stats" "$5" "${6:-}" >>"$WORK/fair.tsv"
}

# steal_pct "CPU LINE BEFORE" "CPU LINE AFTER": the steal share (%) of all CPU time between two of
# /proc/stat's "cpu" lines (user nice system idle iowait irq softirq steal ...; guest time is
# already in user), or nothing when the lines lack it.
steal_pct() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (split(a, x, " ") < 9 || split(b, y, " ") < 9) exit
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    if (t > 0) printf "%.1f", (y[9] - x[9]) * 100 / t }'
}

# fair_stats PREFIX CLIENTS: the 8 stats fields from pgbench's per-transaction logs PREFIX.*
# (client_id transaction_no latency_us script_no time_epoch time_us; "failed" or "skipped" in
# place of the latency are left out). Latency quantiles by nearest rank, as run_pgbench's p99.
# Per client: transactions completed by each of clients 0..CLIENTS-1, so a client that completed
# none (it never appears in the log) counts as 0.
fair_stats() {
  local prefix=$1 c=$2 per=$1.perclient lat tx
  lat=$(cat "$prefix".[0-9]* 2>/dev/null |
        awk -v c="$c" -v per="$per" '$3 ~ /^[0-9]+$/ { print $3; n[$1]++ }
          END { for (i = 0; i < c; i++) print ((i in n) ? n[i] : 0) > per }' |
        sort -n |
        awk -v r="$FAIR_MAX_RATIO" '{ a[NR] = $1 } END {
          if (NR == 0) exit
          med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
          i = int(0.99 * NR); if (i < 0.99 * NR) i++; if (i < 1) i = 1
          ratio = med > 0 ? a[NR] / med : 0
          printf "%d\t%.3f\t%.3f\t%.3f\t%.2f\t%s\n", NR, med / 1000, a[i] / 1000, a[NR] / 1000, ratio,
            (a[NR] <= r * med ? "ok" : "unfair") }')
  [ -n "$lat" ] || return 0
  tx=$(sort -n "$per" | awk '{ a[NR] = $1 } END {
         if (NR == 0) { print "\t"; exit }
         printf "%d\t%s\n", a[1], (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
  # transactions median p99 max ratio | fewest median-per-client | verdict
  awk -F'\t' -v tx="$tx" 'BEGIN { OFS = "\t" } { print $1, $2, $3, $4, $5, tx, $6 }' <<<"$lat"
}

# run_fairness TARGET: one pgbench run, one line in fair.tsv. Never aborts the harness.
run_fairness() {
  local t=$1 c=$FAIR_CLIENTS
  local j=$(( THREADS < c ? THREADS : c ))
  local out=$WORK/out/fairness.$t.txt prefix=$WORK/logs/fairness.$t rc err tps processed stats status note stat0 steal
  local tsecs=$(( FAIR_DURATION + c / 128 ))    # connecting eats into -T, as in run_pgbench
  local maxconn
  # shellcheck disable=SC2034  # read by target_alive (bench/run)
  CURRENT_RUN="fairness"
  if [ "$t" != pgbouncer ] && [ "$PGRELAY_MODE" = session ]; then
    fair_row "$t" skipped "" "" "session mode: each client holds its own server connection (pool_size $PGRELAY_POOL), so there is no pool of $FAIR_POOL to wait for"
    return
  fi
  # The poolers' max_client_conn (bench/run) and this shell's open-files limit, which pgbench inherits.
  if [ "$t" = pgbouncer ]; then maxconn=$(( NOFILE - POOL_SIZE - 100 )); else maxconn=$(( NOFILE - PGRELAY_POOL - 100 )); fi
  if [ "$c" -gt "$maxconn" ]; then
    fair_row "$t" failed "" "" "$c clients exceed max_client_conn $maxconn (open-files limit $NOFILE)"
    log "  fairness on $t: $c clients exceed max_client_conn $maxconn (open-files limit $NOFILE)"
    return
  fi
  if ! target_alive "$t"; then
    fair_row "$t" failed "" "" "$t died earlier (${DIED_AT[$t]})"
    return
  fi
  # The earlier workloads' writes (tpcb) out of the way first, the same for every pooler: their
  # dead rows vacuumed and their dirty buffers written, so that neither autovacuum nor a
  # checkpoint starts during the run and adds its stall to the maximum wait. (What is left: the
  # run's longest waits come in one burst, every client at once, once or twice in 30 s, for
  # PgBouncer too: the whole machine stalled for tens of ms. --keep-work keeps the logs.)
  "$PSQL" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d bench -c 'VACUUM' -c 'CHECKPOINT' >"$out.vacuum" 2>&1 ||
    log "  fairness on $t: VACUUM/CHECKPOINT before the run failed: $(head -c 160 "$out.vacuum" | tr '\n' ' ')"
  # Warm-up, not measured: 2 s with twice the pool's clients opens the pool's server connections.
  # Without it the run starts with every client queued while the pooler opens them (PostgreSQL
  # forks a backend for each), and that start-up put maxima of about 200 ms into the first second
  # of 5 s smoke runs (pgrelay 3 of 3, PgBouncer 2 of 3): a cold pool, not the order in which
  # waiters are served. Failures here show in the measured run.
  timeout -k 5 60 "$PGBENCH" -n -h 127.0.0.1 -p "${PORT[$t]}" -U postgres -c $(( FAIR_POOL * 2 )) -j "$j" -T 2 \
    -M simple -f "$BENCH_DIR/workloads/select-only.sql" -s "$SCALE" "bench_pool$FAIR_POOL" >"$out.warm-up" 2>&1 &
  CHILD=$!; wait "$CHILD"; CHILD=""
  # No sampling: every transaction is logged (--sampling-rate 1), so max and p99 are exact and
  # every client's count is complete.
  stat0=$(head -1 /proc/stat 2>/dev/null)
  timeout -k 5 $(( tsecs + 60 + c / 4 )) "$PGBENCH" -n -h 127.0.0.1 -p "${PORT[$t]}" -U postgres \
    -c "$c" -j "$j" -T "$tsecs" -M simple -f "$BENCH_DIR/workloads/select-only.sql" -s "$SCALE" \
    --log --log-prefix="$prefix" --sampling-rate=1 "bench_pool$FAIR_POOL" >"$out" 2>&1 &
  CHILD=$!; wait "$CHILD"; rc=$?; CHILD=""
  steal=$(steal_pct "$stat0" "$(head -1 /proc/stat 2>/dev/null)")
  tps=$(awk '/^tps = /{print $3; exit}' "$out")
  processed=$(awk '/^number of transactions actually processed:/{print $6; exit}' "$out")
  err=$(grep -m1 -E 'error:|FATAL|ERROR' "$out" | tr '\t' ' ' | cut -c1-160)
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status=failed; note="timed out${err:+: $err}"
  elif [ "$rc" != 0 ] || grep -q 'Run was aborted' "$out"; then status=failed; note=${err:-"pgbench exit $rc"}
  elif [ "${processed:-0}" = 0 ] || [ -z "$tps" ]; then
    status=failed; note="no transaction completed: $(grep -v '^\s*$' "$out" | tail -1 | cut -c1-120)"
  else status=ok; note=""
  fi
  if ! target_alive "$t"; then status=failed; note="$t died during this run: ${DIED[$t]}"; fi
  stats=$(fair_stats "$prefix" "$c")
  if [ "$status" = ok ] && [ -z "$stats" ]; then status=failed; note="no latency in pgbench's log"; fi
  # A failed run keeps whatever its log holds, but no verdict: a partial run proves nothing.
  [ "$status" = ok ] || [ -z "$stats" ] || stats=$(awk -F'\t' 'BEGIN { OFS = "\t" } { $8 = ""; print }' <<<"$stats")
  [ "$KEEP_WORK" = 1 ] || rm -f "$prefix".*   # kept with --keep-work, for a look at when the long waits came
  fair_row "$t" "$status" "${tps:-}" "$stats" "$note" "$steal"
  if [ "$status" = ok ]; then
    log "  fairness on $t: $(awk -F'\t' '{ printf "%.0f tps, median %s ms, p99 %s ms, max %s ms (%sx median): %s; steal %s%%", $5, $7, $8, $9, $10, $13, ($15 == "" ? "?" : $15) }' <(tail -1 "$WORK/fair.tsv"))"
  else
    log "  fairness on $t: $note"
  fi
}

# fairness_workload: one run per pooler among the active targets, in target order (not per round:
# a 30 s run with every transaction logged has samples enough).
fairness_workload() {
  local t
  log "fairness: $FAIR_CLIENTS clients on a pool of $FAIR_POOL for ${FAIR_DURATION}s per pooler (direct and pgpool skipped)"
  for t in "${ACTIVE[@]}"; do fair_target "$t" && run_fairness "$t"; done
}

# fair_markdown: the report's Fairness section (report.sh's markdown).
fair_markdown() {
  echo "### Fairness"
  echo
  echo "$FAIR_CLIENTS clients on a pool of $FAIR_POOL server connections (database bench_pool$FAIR_POOL) for ${FAIR_DURATION} s, pgbench select-only (\`-M simple\`), every transaction logged, one run per pooler after a \`VACUUM\` and a \`CHECKPOINT\` (the earlier workloads' writes cleaned up and flushed, so neither happens during the run) and an unmeasured 2 s warm-up that opens the pool's server connections. With this many clients on $FAIR_POOL connections a transaction's latency is almost all wait for a server connection (the query itself takes about 0.1 ms), so the latencies below are the waits. Criterion (issue 13): no client waits longer than ${FAIR_MAX_RATIO}× the median wait; verdict ok when max ≤ ${FAIR_MAX_RATIO} × median. Per client: the transactions each client completed, fewest and median (a starved client completes few). A single stall of the machine also lengthens max, so read an unfair verdict together with p99, the fewest per client and steal % (the share of CPU time the hypervisor gave other guests during the run: a burst of it stalls every process at once). Not run against direct or pgpool: neither has a pool to wait for (PostgreSQL forks a backend per client; pgpool a process and backend per client, num_init_children=$PGPOOL_CHILDREN here), and their connection limits are sized for the other workloads, not for $FAIR_CLIENTS clients."
  echo
  echo "| target | clients | pool | tps | median ms | p99 ms | max ms | max/median | fewest tx per client | median tx per client | verdict | steal % | note |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|"
  awk -F'\t' 'function d(v) { return v == "" ? "—" : v }
    { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3,
        ($5 == "" ? "—" : sprintf("%.0f", $5)), d($7), d($8), d($9), d($10), d($11), d($12),
        ($13 == "" ? ($4 == "ok" ? "—" : $4) : $13), d($15), $14 }' "$WORK/fair.tsv"
  echo
}

# fair_json: the "fairness" member of report.sh's JSON (same style as idle_clients).
fair_json() {
  echo "  \"fairness\": ["
  awk -F'\t' 'function n(v) { return v == "" ? "null" : v }
    function s(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); return "\"" v "\"" }
    { printf "%s    {\"target\": %s, \"clients\": %s, \"pool_size\": %s, \"status\": %s, \"tps\": %s, \"transactions\": %s, \"median_ms\": %s, \"p99_ms\": %s, \"max_ms\": %s, \"max_over_median\": %s, \"min_tx_per_client\": %s, \"median_tx_per_client\": %s, \"verdict\": %s, \"steal_pct\": %s, \"note\": %s}",
        (NR > 1 ? ",\n" : ""), s($1), n($2), n($3), s($4), n($5), n($6), n($7), n($8), n($9), n($10), n($11), n($12),
        ($13 == "" ? "null" : s($13)), n($15), s($14) }
    END { print "" }' "$WORK/fair.tsv"
  echo "  ]"
}
