#!/usr/bin/env bash
# Runs one fuzz target for a while on its seed corpus; new inputs go to a scratch folder,
# never into the repository. Exit status: the fuzzer's (non-zero on any finding).
#   smoke.sh TARGET SEED_DIR SECONDS [more libFuzzer flags]
set -euo pipefail
target=$1 seeds=$2 seconds=$3
shift 3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# -timeout: one input taking over 10 s is a hang; -rss_limit_mb: 2 GB is a leak or a blow-up.
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$scratch/" "$@" "$scratch" "$seeds" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
for crash in "$scratch"/crash-* "$scratch"/timeout-* "$scratch"/oom-* "$scratch"/leak-*; do
  [[ -e $crash ]] || continue
  echo "finding: $crash (base64 below)"
  base64 -w0 "$crash"; echo
done
exit "$status"
