# Reporting for bench/run (sourced, not run): runs.tsv + idle.tsv + fair.tsv -> Markdown table, JSON, PNG chart.
#
# Inputs (in $WORK, written by bench/run), one line per pgbench run / idle measurement:
#   runs.tsv  label target round clients status tps avg_ms p99_ms samples failed processed error
#             user_us_per_tx sys_us_per_tx ctxsw_per_tx involuntary_ctxsw_pct
#             (those four: the pooler's CPU time and context switches per transaction, all its
#             threads and child processes, from /proc before and after the run (proc_stats.sh);
#             empty for direct)
#             pg_us_per_tx pgbench_us_per_tx work_us_per_tx idle_pct
#             (CPU per transaction of PostgreSQL, of pgbench, and of the whole workload: those two
#             plus the pooler; the machine's idle share during the run; proc_stats.sh, work_per_tx)
#             p50_ms (the median latency; last, so the columns before it keep their places)
#   idle.tsv  target requested connected logged_in failed login_ms rss_before rss_after pss_before pss_after nprocs note
#   fair.tsv  the fairness workload's, described in fairness.sh (which prints its section and JSON)
# Medians are over the rounds whose status is ok; min-max shows the spread of those rounds.

# summarize: one line per (label, target) in run order:
#   label target clients ok_rounds rounds tps_med tps_min tps_max avg_med p99_med failed_sum vs_direct vs_pgbouncer error
#   cpu_us_med user_us_med sys_us_med ctxsw_med involuntary_pct_med   (per transaction; cpu = user + sys of each round)
#   work_us_med pg_us_med pgbench_us_med idle_pct_med zero_cost_ceiling p50_med
#   (zero_cost_ceiling: the label's, from its pgbouncer row: work_us_med / (work_us_med - cpu_us_med))
summarize() {
  awk -F'\t' '
    function median(s,   n, v, i, j, t) {
      n = split(s, v, " "); if (n == 0) return ""
      for (i = 2; i <= n; i++) { t = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
      return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function minmax(s, want,   n, v, i, m) {
      n = split(s, v, " "); if (n == 0) return ""
      m = v[1] + 0
      for (i = 2; i <= n; i++) if ((want == "min" && v[i] + 0 < m) || (want == "max" && v[i] + 0 > m)) m = v[i] + 0
      return m
    }
    {
      k = $1 SUBSEP $2
      if (!(k in rounds)) { order[++n] = k; lab[k] = $1; tgt[k] = $2; cl[k] = $4 }
      rounds[k]++
      if ($5 == "ok") {
        ok[k]++; tps[k] = tps[k] " " $6
        if ($7 != "") avg[k] = avg[k] " " $7
        if ($8 != "") p99[k] = p99[k] " " $8
        failed[k] += $10
        if ($13 != "" && $14 != "") { cpu[k] = cpu[k] " " ($13 + $14); usr[k] = usr[k] " " $13; sys[k] = sys[k] " " $14 }
        if ($15 != "") csw[k] = csw[k] " " $15
        if ($16 != "") inv[k] = inv[k] " " $16
        if ($17 != "") pgc[k] = pgc[k] " " $17
        if ($18 != "") pgb[k] = pgb[k] " " $18
        if ($19 != "") wrk[k] = wrk[k] " " $19
        if ($20 != "") idl[k] = idl[k] " " $20
        if ($21 != "") p50[k] = p50[k] " " $21
      } else if (!(k in err)) err[k] = $12
    }
    END {
      for (i = 1; i <= n; i++) { k = order[i]; med[k] = median(tps[k]); cmed[k] = median(cpu[k]); wmed[k] = median(wrk[k]) }
      for (i = 1; i <= n; i++) {
        k = order[i]; d = lab[k] SUBSEP "direct"; b = lab[k] SUBSEP "pgbouncer"
        vd = (med[k] != "" && med[d] != "" && med[d] > 0) ? sprintf("%.2f", med[k] / med[d]) : ""
        vb = (med[k] != "" && med[b] != "" && med[b] > 0) ? sprintf("%.2f", med[k] / med[b]) : ""
        # The zero-cost ceiling: PgBouncer'"'"'s work per transaction over that work without PgBouncer'"'"'s own part.
        ceil = (wmed[b] != "" && cmed[b] != "" && wmed[b] - cmed[b] > 0) ? sprintf("%.2f", wmed[b] / (wmed[b] - cmed[b])) : ""
        printf "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", lab[k], tgt[k], cl[k], ok[k], rounds[k],
          (med[k] == "" ? "" : sprintf("%.0f", med[k])),
          (ok[k] ? sprintf("%.0f", minmax(tps[k], "min")) : ""), (ok[k] ? sprintf("%.0f", minmax(tps[k], "max")) : ""),
          (avg[k] == "" ? "" : sprintf("%.2f", median(avg[k]))), (p99[k] == "" ? "" : sprintf("%.2f", median(p99[k]))),
          failed[k], vd, vb, err[k],
          (cpu[k] == "" ? "" : sprintf("%.1f", median(cpu[k]))), (usr[k] == "" ? "" : sprintf("%.1f", median(usr[k]))),
          (sys[k] == "" ? "" : sprintf("%.1f", median(sys[k]))), (csw[k] == "" ? "" : sprintf("%.3f", median(csw[k]))),
          (inv[k] == "" ? "" : sprintf("%.1f", median(inv[k]))),
          (wmed[k] == "" ? "" : sprintf("%.1f", wmed[k])), (pgc[k] == "" ? "" : sprintf("%.1f", median(pgc[k]))),
          (pgb[k] == "" ? "" : sprintf("%.1f", median(pgb[k]))), (idl[k] == "" ? "" : sprintf("%.1f", median(idl[k]))), ceil,
          (p50[k] == "" ? "" : sprintf("%.2f", median(p50[k])))
      }
    }' "$WORK/runs.tsv"
}

machine_line() {
  local cpu mem
  cpu=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
  mem=$(awk '/^MemTotal:/{printf "%.0f", $2 / 1048576}' /proc/meminfo)
  echo "$(nproc) CPUs ($cpu), ${mem} GiB RAM, Linux $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null)"
}

versions_line() {
  local rev dirty=""
  rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)
  [ -n "$(git -C "$REPO" status --porcelain -- . 2>/dev/null | grep -v '^??')" ] && dirty="+local changes"
  echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), PgBouncer $("$PGBOUNCER" --version | awk 'NR==1{print $2}'), pgpool-II $("$PGPOOL" --version 2>&1 | awk '{print $3}'), pgrelay ${rev:-unknown}${dirty}"
}

markdown() {
  local sum=$1
  echo "## pgrelay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- Machine: $(machine_line)"
  echo "- Versions: $(versions_line)"
  echo "- Settings: $CLIENTS clients, $THREADS pgbench threads, ${DURATION} s per run (sweep ${SWEEP_DURATION} s), $ROUNDS rounds interleaved across targets, pgbench scale $SCALE; all on 127.0.0.1 over TCP."
  local desc="" t
  for t in "${TARGET_LIST[@]}"; do
    case "$t" in
      direct) desc+="; **direct** PostgreSQL" ;;
      pgbouncer) desc+="; **pgbouncer** pool_mode=transaction, default_pool_size=$POOL_SIZE" ;;
      pgpool) desc+="; **pgpool** raw mode, memory_cache_enabled=on (shmem), num_init_children=$PGPOOL_CHILDREN, max_pool=1" ;;
      pgrelay) desc+="; **pgrelay** pool_mode=$PGRELAY_MODE, pool_size=$PGRELAY_POOL"
        [ "$PGRELAY_CACHE" = on ] && desc+=", query cache on (\`[cache] enabled = true\`, default sizes and TTL)"
        [ "$PGRELAY_MODE" = session ] && desc+=" (session mode: a client holds a server connection for its whole life, so the pool is sized to the largest client count)" ;;
      baseline) desc+="; **baseline** another pgrelay build ($BASELINE_BIN), same settings as pgrelay"
        # --baseline-setting lines, each in backquotes, comma-separated
        if [ -n "$BASELINE_SETTINGS" ]; then
          desc+=" and $(printf '%s' "$BASELINE_SETTINGS" | awk 'NF { printf "%s`%s`", (n++ ? ", " : ""), $0 }')"
        fi ;;
    esac
  done
  echo "- Targets: ${desc#; }."
  echo "- tps: median over rounds (min–max). Latency: average, p50 and p99 in ms from pgbench per-transaction logs (medians over rounds; high-rate workloads log a 10% sample, tpcb 20%, connect-storm and heavy-read every transaction). Ratios are median tps over direct's and PgBouncer's."
  [[ " ${MAIN_WL[*]} " == *" select-only-pool4-rate "* ]] &&
    echo "- select-only-pool4-rate: pgbench \`-R $RATE\` (that many transactions per second offered, all clients together; latency counted from each transaction's scheduled start), so every target does the same work and its p99 is the target's own tail. A tps below $RATE means the target could not keep up."
  echo "- cpu µs/tx (user+sys) and ctxsw/tx: CPU time and context switches of the pooler process only (all its threads; pgpool: all its processes), per transaction, median over rounds, from /proc before and after each run; the CPU a pooler spends per transaction is less sensitive than tps to other load on the machine. ctxsw counts voluntary and involuntary switches (preemptions) together. Empty for direct (PostgreSQL's backends come and go)."
  echo "- work µs/tx: CPU time (user+sys) per transaction of the whole benchmark workload: PostgreSQL (the postmaster's process tree, with the times of the backends it reaped), pgbench (its rusage at exit) and the pooler; median over rounds. Counted per process, not from /proc/stat, where other tenants' work counts too. idle %: the machine's idle share during the pgbench run (/proc/stat, every tenant counted)."
  echo "- zero-cost ceiling vs pgbouncer = PgBouncer's work µs/tx ÷ (PgBouncer's work µs/tx − PgBouncer's own cpu µs/tx), medians over rounds: when the benchmark saturates the cores, tps is inversely proportional to CPU per transaction, so a pooler that cost no CPU at all could reach at most this multiple of PgBouncer's tps. It assumes the cores are saturated by the benchmark (idle % near 0, cores used near $(nproc)); when they are not, tps is bound by latency and the ceiling means nothing. cores used = tps × work µs/tx."
  echo "- Wall time of the measurements: $(( ELAPSED / 60 )) min $(( ELAPSED % 60 )) s. Load average (1, 5, 15 min) at start: $LOAD_START; at end: $LOAD_END (bench/run itself keeps 2 cores busy; more than that is other work on the machine)."
  if [ "${#FAILED_TARGETS[@]}" -gt 0 ]; then
    for t in "${FAILED_TARGETS[@]}"; do echo "- **$t did not start**: ${START_ERR[$t]}"; done
  fi
  for t in "${!DIED[@]}"; do echo "- **$t died** during ${DIED_AT[$t]}: ${DIED[$t]}. Later runs against it are marked failed."; done
  echo
  if [ "${#MAIN_WL[@]}" -gt 0 ]; then
    echo "| workload | target | tps | tps min–max | avg ms | p50 ms | p99 ms | failed | vs direct | vs pgbouncer | cpu µs/tx (user+sys) | ctxsw/tx | work µs/tx | idle % |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    awk -F'\t' '$1 !~ /^sweep-c/ {
      fail = $11; if ($4 < $5) fail = fail sprintf(" (%d/%d rounds failed: %s)", $5 - $4, $5, $14)
      if ($4 == 0) fail = "all rounds failed: " $14
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, ($6 == "" ? "—" : $6),
        ($7 == "" ? "—" : $7 "–" $8), ($9 == "" ? "—" : $9), ($25 == "" ? "—" : $25), ($10 == "" ? "—" : $10), fail,
        ($12 == "" ? "—" : $12), ($13 == "" ? "—" : $13), ($15 == "" ? "—" : $15), ($18 == "" ? "—" : sprintf("%.2f", $18)),
        ($20 == "" ? "—" : $20), ($23 == "" ? "—" : $23) }' "$sum"
    echo
    ceiling_markdown "$sum"
  fi
  if [ "$DO_SWEEP" = 1 ]; then
    echo "Clients sweep, select-only (-S, simple protocol), median tps (p99 ms):"
    echo
    printf '| clients |'; for t in "${ACTIVE[@]}"; do printf ' %s |' "$t"; done; echo
    printf '|--:|'; for _ in "${ACTIVE[@]}"; do printf -- '--:|'; done; echo
    for c in "${SWEEP_LIST[@]}"; do
      printf '| %s |' "$c"
      for t in "${ACTIVE[@]}"; do
        awk -F'\t' -v l="sweep-c$c" -v t="$t" '$1 == l && $2 == t {
          if ($6 == "") printf " failed: %s |", $14; else printf " %s (%s)%s |", $6, $10, ($4 < $5 ? " ⚠ " ($5 - $4) " failed" : "") }' "$sum"
      done
      echo
    done
    echo
  fi
  if [ "$DO_FAIR" = 1 ] && [ -s "$WORK/fair.tsv" ]; then fair_markdown; fi
  if [ "$DO_IDLE" = 1 ] && [ -s "$WORK/idle.tsv" ]; then
    echo "Idle clients: memory of the pooler holding idle logged-in connections (measured once). pgbouncer and pgrelay: VmRSS of the process; pgpool: Pss summed over its processes (it pre-forks one process per client slot, so its clients are capped at num_init_children=$PGPOOL_CHILDREN and \"before\" already holds every slot: its real cost per client is the total column). Δ = (after − before) ÷ clients held; total = after ÷ clients held. Direct is skipped."
    echo
    echo "| target | clients held | logged in | memory before MiB | after MiB | Δ KiB per client | total KiB per client | note |"
    echo "|---|--:|--:|--:|--:|--:|--:|---|"
    awk -F'\t' '{
      multi = ($1 == "pgpool"); b = multi ? $9 : $7; a = multi ? $10 : $8; held = $3 + 0
      per = (held > 0 && a != "") ? sprintf("%.1f", (a - b) / held) : "—"
      tot = (held > 0 && a != "") ? sprintf("%.1f", a / held) : "—"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, ($3 == "" ? "—" : $3), ($4 == "" ? "—" : $4),
        (b == "" ? "—" : sprintf("%.1f", b / 1024)), (a == "" ? "—" : sprintf("%.1f", a / 1024)), per, tot, $12 }' "$WORK/idle.tsv"
    echo
  fi
}

# ceiling_markdown SUMMARY: the zero-cost ceiling per workload, from PgBouncer's rows (nothing
# without PgBouncer). The parts of its work µs/tx are shown so the ratio can be checked by hand.
ceiling_markdown() {
  awk -F'\t' '$1 !~ /^sweep-c/ && $2 == "pgbouncer" && $20 != "" { n++ } END { exit !n }' "$1" || return 0
  echo "Zero-cost ceiling: the most any pooler could reach, as a multiple of PgBouncer's tps, if it cost no CPU (PgBouncer's runs, medians over rounds; see the notes above):"
  echo
  echo "| workload | pgbouncer tps | work µs/tx | PostgreSQL | pgbench | PgBouncer | zero-cost ceiling vs pgbouncer | cores used | idle % |"
  echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
  awk -F'\t' 'function d(v) { return v == "" ? "—" : v }
    $1 !~ /^sweep-c/ && $2 == "pgbouncer" {
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, d($6), d($20), d($21), d($22), d($15),
        ($24 == "" ? "—" : "**" $24 "×**"), (($6 == "" || $20 == "") ? "—" : sprintf("%.2f", $6 * $20 / 1e6)), d($23) }' "$1"
  echo
}

json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\t'/ }"; }

write_json() {
  local sum=$1 f=$2 first
  {
    echo "{"
    echo "  \"date\": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
    echo "  \"machine\": $(json_str "$(machine_line)"),"
    echo "  \"versions\": $(json_str "$(versions_line)"),"
    echo "  \"settings\": {\"clients\": $CLIENTS, \"threads\": $THREADS, \"duration_s\": $DURATION, \"sweep_duration_s\": $SWEEP_DURATION, \"rounds\": $ROUNDS, \"scale\": $SCALE, \"pool_size\": $POOL_SIZE, \"pgrelay_pool_mode\": $(json_str "$PGRELAY_MODE"), \"pgrelay_pool_size\": $PGRELAY_POOL, \"pgrelay_cache\": $(json_str "$PGRELAY_CACHE"), \"pgpool_num_init_children\": $PGPOOL_CHILDREN, \"idle_clients\": $IDLE_CLIENTS, \"fairness_clients\": $FAIR_CLIENTS, \"fairness_duration_s\": $FAIR_DURATION, \"elapsed_s\": $ELAPSED, \"loadavg_start\": $(json_str "$LOAD_START"), \"loadavg_end\": $(json_str "$LOAD_END")},"
    printf '  "failed_to_start": {'
    first=1
    for t in "${FAILED_TARGETS[@]}"; do [ $first = 1 ] || printf ', '; first=0; printf '%s: %s' "$(json_str "$t")" "$(json_str "${START_ERR[$t]}")"; done
    echo "},"
    printf '  "died": {'
    first=1
    for t in "${!DIED[@]}"; do [ $first = 1 ] || printf ', '; first=0; printf '%s: %s' "$(json_str "$t")" "$(json_str "during ${DIED_AT[$t]}: ${DIED[$t]}")"; done
    echo "},"
    echo "  \"summary\": ["
    awk -F'\t' 'function n(v) { return v == "" ? "null" : v }
      function s(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); return "\"" v "\"" }
      { printf "%s    {\"workload\": %s, \"target\": %s, \"clients\": %s, \"ok_rounds\": %s, \"rounds\": %s, \"tps_median\": %s, \"tps_min\": %s, \"tps_max\": %s, \"avg_ms\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"failed\": %s, \"vs_direct\": %s, \"vs_pgbouncer\": %s, \"cpu_us_per_tx_median\": %s, \"user_us_per_tx_median\": %s, \"sys_us_per_tx_median\": %s, \"ctxsw_per_tx_median\": %s, \"involuntary_ctxsw_pct_median\": %s, \"work_us_per_tx_median\": %s, \"pg_us_per_tx_median\": %s, \"pgbench_us_per_tx_median\": %s, \"idle_pct_median\": %s, \"zero_cost_ceiling_vs_pgbouncer\": %s, \"error\": %s}",
          (NR > 1 ? ",\n" : ""), s($1), s($2), $3, $4, $5, n($6), n($7), n($8), n($9), n($25), n($10), $11, n($12), n($13),
          n($15), n($16), n($17), n($18), n($19), n($20), n($21), n($22), n($23), n($24), s($14) }
      END { print "" }' "$sum"
    echo "  ],"
    echo "  \"runs\": ["
    awk -F'\t' 'function n(v) { return v == "" ? "null" : v }
      function s(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); return "\"" v "\"" }
      { printf "%s    {\"workload\": %s, \"target\": %s, \"round\": %s, \"clients\": %s, \"status\": %s, \"tps\": %s, \"avg_ms\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"latency_samples\": %s, \"failed\": %s, \"processed\": %s, \"user_us_per_tx\": %s, \"sys_us_per_tx\": %s, \"ctxsw_per_tx\": %s, \"involuntary_ctxsw_pct\": %s, \"pg_us_per_tx\": %s, \"pgbench_us_per_tx\": %s, \"work_us_per_tx\": %s, \"idle_pct\": %s, \"error\": %s}",
          (NR > 1 ? ",\n" : ""), s($1), s($2), $3, $4, s($5), n($6), n($7), n($21), n($8), n($9), n($10), n($11),
          n($13), n($14), n($15), n($16), n($17), n($18), n($19), n($20), s($12) }
      END { print "" }' "$WORK/runs.tsv"
    echo "  ],"
    echo "  \"idle_clients\": ["
    awk -F'\t' 'function n(v) { return v == "" ? "null" : v }
      function s(v) { gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); return "\"" v "\"" }
      { printf "%s    {\"target\": %s, \"requested\": %s, \"connected\": %s, \"logged_in\": %s, \"failed\": %s, \"login_ms\": %s, \"rss_kib_before\": %s, \"rss_kib_after\": %s, \"pss_kib_before\": %s, \"pss_kib_after\": %s, \"processes\": %s, \"note\": %s}",
          (NR > 1 ? ",\n" : ""), s($1), n($2), n($3), n($4), n($5), n($6), n($7), n($8), n($9), n($10), n($11), s($12) }
      END { print "" }' "$WORK/idle.tsv"
    echo "  ],"
    fair_json
    echo "}"
  } >"$f"
}

# write_png SUMMARY FILE: clustered bars of median tps per workload and target (log scale), and the sweep.
write_png() {
  local sum=$1 f=$2 d=$WORK/chart t c col plots="" i
  mkdir -p "$d"
  { for w in "${MAIN_WL[@]}"; do
      printf '%s' "$w"
      for t in "${ACTIVE[@]}"; do
        printf '\t%s' "$(awk -F'\t' -v l="$w" -v t="$t" '$1 == l && $2 == t { print ($6 == "" ? "NaN" : $6) }' "$sum")"
      done; echo
    done; } >"$d/bars.tsv"
  { for c in "${SWEEP_LIST[@]}"; do
      printf '%s' "$c"
      for t in "${ACTIVE[@]}"; do
        printf '\t%s' "$(awk -F'\t' -v l="sweep-c$c" -v t="$t" '$1 == l && $2 == t { print ($6 == "" ? "NaN" : $6) }' "$sum")"
      done; echo
    done; } >"$d/sweep.tsv"
  local panels=$(( (${#MAIN_WL[@]} > 0) + DO_SWEEP ))
  [ "$panels" -gt 0 ] || return 0
  {
    echo "set terminal pngcairo size 1200,$(( 450 * panels )) font 'sans,10'"
    echo "set output '$f'"
    echo "set datafile separator '\t'"
    echo "set datafile missing 'NaN'"
    echo "set key outside right top"
    echo "set grid ytics"
    echo "set logscale y"
    echo "set ylabel 'tps (median, log scale)'"
    echo "set multiplot layout $panels,1 title 'pgrelay bench $(date -u +%Y-%m-%d): $(nproc) CPUs, $CLIENTS clients, ${DURATION}s x $ROUNDS rounds'"
    if [ "${#MAIN_WL[@]}" -gt 0 ]; then
      echo "set title 'tps by workload and target'"
      echo "set style data histograms"
      echo "set style histogram clustered gap 1"
      echo "set style fill solid 0.85 border -1"
      echo "set xtics rotate by -20"
      echo "set yrange [1:*]"
      plots=""; col=2
      for t in "${ACTIVE[@]}"; do plots+="${plots:+, }'$d/bars.tsv' using $col:xtic(1) title '$t'"; col=$((col + 1)); done
      echo "plot $plots"
      echo "unset style data; set xtics norotate"
    fi
    if [ "$DO_SWEEP" = 1 ]; then
      echo "set title 'select-only: tps by clients'"
      echo "set autoscale y"
      echo "set style data linespoints"
      echo "set logscale x 2"
      echo "set xlabel 'clients'"
      plots=""; col=2
      for t in "${ACTIVE[@]}"; do plots+="${plots:+, }'$d/sweep.tsv' using 1:$col title '$t' with linespoints lw 2"; col=$((col + 1)); done
      echo "plot $plots"
    fi
    echo "unset multiplot"
  } >"$d/chart.gp"
  gnuplot "$d/chart.gp" 2>"$d/gnuplot.err" || { log "gnuplot failed: $(head -3 "$d/gnuplot.err")"; return 1; }
}

# Replaces the section between the latest-results markers in bench/README.md.
update_readme() {
  local md=$1 png=$2 readme=$BENCH_DIR/README.md tmp
  [ -f "$readme" ] && grep -q '<!-- latest-results:begin -->' "$readme" || return 0
  tmp=$(mktemp)
  awk -v md="$md" -v png="$png" '
    /<!-- latest-results:begin -->/ { print; while ((getline l < md) > 0) { if (l ~ /^##/) l = "#" l; print l }
                                      print ""; print "![tps by workload and target](results/" png ")"; skip = 1; next }
    /<!-- latest-results:end -->/ { skip = 0 }
    !skip' "$readme" >"$tmp" && cat "$tmp" >"$readme"
  rm -f "$tmp"
}

report() {
  local sum=$WORK/summary.tsv day
  summarize >"$sum"
  markdown "$sum" >"$WORK/report.md"
  cat "$WORK/report.md"
  [ "$WRITE_RESULTS" = 1 ] || return 0
  day=$(date +%Y-%m-%d)
  mkdir -p "$OUT_DIR"
  cp "$WORK/report.md" "$OUT_DIR/$day.md"
  write_json "$sum" "$OUT_DIR/$day.json"
  write_png "$sum" "$OUT_DIR/$day.png"
  log "wrote $OUT_DIR/$day.md, $day.json, $day.png"
  [ "$OUT_DIR" -ef "$BENCH_DIR/results" ] && update_readme "$OUT_DIR/$day.md" "$day.png"
}
