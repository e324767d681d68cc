#!/usr/bin/env bash
# Runs one fuzz target over its committed seeds (fuzz/corpus/NAME), with its dictionary when
# there is one (fuzz/dict/NAME.dict; sql.dict for the targets that read statement texts):
#
#   fuzz/run_target.sh BINARY NAME SECONDS WORKDIR [LIBFUZZER ARGS...]
#
# New inputs go to WORKDIR/corpus (the committed seeds are only read), a crashing, leaking or
# slow input to WORKDIR/artifacts/. Exits non-zero when libFuzzer found something.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 name=$2 seconds=$3 work=$4
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$work/artifacts/")
dict=$name
case $name in sql_lexer|session_effects|fingerprint|access_analysis|cache_hint) dict=sql ;; esac
[ -f "$here/dict/$dict.dict" ] && args+=(-dict="$here/dict/$dict.dict")
exec "$bin" "${args[@]}" "$@" "$work/corpus" "$here/corpus/$name"
