#!/usr/bin/env bash
# Page load of `palisade serve` in Debian's Chromium (headless, through chromedriver), from
# asking for the page to its first drawn graph, on the bundled example (the baseline of the
# ratios) and on generated clusters of 1k and 10k pods (100 and 1,000 policies) in two shapes:
# bare pods and Deployments (fewer, larger endpoints). Five loads each; the first includes the
# server building the view, the others are served from its cache.
#
#     scripts/bench-web.sh            # needs chromium and chromium-driver (apt-get install)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p palisade
inputs="$PWD/examples/expense"
for shape in pods workloads; do
  for pods in 1000 10000; do
    flag=$([ "$shape" = workloads ] && echo --workloads || true)
    target/release/palisade generate --pods "$pods" --policies $((pods / 10)) --seed 1 $flag \
      --out "$work/$shape-$pods" >/dev/null
    inputs="$inputs:$work/$shape-$pods"
  done
done
PALISADE_WEB_INPUTS="$inputs" cargo bench -q -p palisade --bench web_page 2>&1 |
  grep -E 'median|SKIPPED' |
  awk -v base=0 '{ for (i = 1; i <= NF; i++) if ($i == "median") m = $(i + 1);
                   if (base == 0) base = m;
                   printf "%s  (%.1fx the example)\n", $0, m / base }'
