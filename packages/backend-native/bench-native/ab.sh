#!/usr/bin/env bash
# A/B timing of two builds of the CPU addon, alternating in the same window (noise only ever slows a
# run down, so each kernel keeps its best median per build):
#   bench-native/ab.sh OLD.node NEW.node [name-filter] [rounds=3]
# e.g. save build/Release/vlmix_cpu.node before a change as /tmp/old.node, rebuild, then
#   bench-native/ab.sh /tmp/old.node build/Release/vlmix_cpu.node 'layer norm'
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1"); new=$(realpath "$2"); filter=${3:-}; rounds=${4:-3}
out=$(mktemp -d)
for r in $(seq 1 "$rounds"); do
  for v in old new; do
    addon=$old; [[ $v == new ]] && addon=$new
    VLMIX_CPU_ADDON=$addon npx tsx --conditions=@vlmix/source bench-native/kernels_bench.ts "$filter" \
      | grep -v '^#' >> "$out/$v.txt"
  done
done
uptime
# name (up to the first run of 2+ spaces) -> best median per build, and new/old.
awk -F'  +' 'FNR == 1 { v = (FILENAME ~ /old/) ? "old" : "new" }
  { n = $1; t = $2 + 0; if (!(n in seen)) { order[k++] = n; seen[n] = 1 }
    if (!((v, n) in best) || t < best[v, n]) best[v, n] = t }
  END { printf "%-56s %10s %10s %7s\n", "kernel", "old ms", "new ms", "new/old"
        for (i = 0; i < k; i++) { n = order[i]; printf "%-56s %10.3f %10.3f %7.2f\n", n, best["old", n], best["new", n], best["new", n] / best["old", n] } }' \
  "$out/old.txt" "$out/new.txt"
rm -rf "$out"
