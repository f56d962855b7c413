#!/usr/bin/env bash
# Palisade side by side with NCA (IBM network-config-analyzer 2.1.0): the same generated clusters
# through both tools, every ordered pod pair and every pod <-> outside range compared over all
# TCP/UDP/SCTP ports, and the time of each tool.
#
#   scripts/compare-nca.sh              # 50, 100, 200 and 400 pods (policies = pods/2), seed 1
#   scripts/compare-nca.sh 50 100       # other sizes
#   SEED=7 scripts/compare-nca.sh       # another seed
#   PALISADE=/path/to/palisade scripts/compare-nca.sh   # use that binary, no release build
#
# NCA is installed from PyPI into a throwaway venv that is deleted at the end; nothing but local
# programs runs. When the tools disagree, NCA runs once more with the fix for its known bug
# (scripts/nca/nca_fixed.py, cases/exists-across-namespaces.yaml) to show what that bug explains.
# Outputs of both tools and the full disagreement lists are kept in <target dir>/nca-comparison/.
# Findings: docs/nca-comparison.md. Exit status: 0 when no disagreement is left with NCA's bug
# fixed, 1 when one is, 2 when something failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 100 200 400)
seed="${SEED:-1}"

work="$(mktemp -d "${TMPDIR:-/tmp}/palisade-nca.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "compare-nca: installing network-config-analyzer==2.1.0 into a throwaway venv" >&2
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check network-config-analyzer==2.1.0

target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
if [ -z "${PALISADE:-}" ]; then
  echo "compare-nca: building palisade (release)" >&2
  cargo build --release --quiet -p palisade --manifest-path "$root/Cargo.toml"
  PALISADE="$target_dir/release/palisade"
fi

echo "compare-nca: $("$work/venv/bin/nca" --version 2>&1 | head -n 1); $("$PALISADE" --version)" \
  "($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git -C "$root" diff --quiet 2>/dev/null || echo '+changes'))"
python3 "$root/scripts/nca/compare.py" \
  --palisade "$PALISADE" \
  --nca "$work/venv/bin/nca" \
  --nca-python "$work/venv/bin/python" \
  --work "$work" \
  --reports "$target_dir/nca-comparison" \
  --seed "$seed" \
  "${sizes[@]}"
