#!/usr/bin/env bash
# Any benchmark script, side by side for two fengine binaries: RUNS runs of the script with
# each (FENGINE=<binary>), alternating, each binary first every other time; then, per row
# of the script's tables, the median of each figure over the runs (its range beside it).
# Not part of CI.
# Usage: benches/run-side-by-side.sh <baseline binary> <runs> <script> [script arguments]
set -euo pipefail
BASELINE=$(realpath "$1")
RUNS=$2
SCRIPT=$(realpath "$3")
shift 3
CURRENT="${FENGINE:-${CARGO_TARGET_DIR:-/var/tmp/fengine-target}/release/fengine}"
# Each script builds this checkout's release binary before it runs.
CURRENT=$(realpath "$CURRENT")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for run in $(seq "$RUNS"); do
  order=(baseline current)
  ((run % 2)) || order=(current baseline)
  for which in "${order[@]}"; do
    binary=$BASELINE
    [ "$which" = current ] && binary=$CURRENT
    FENGINE=$binary "$SCRIPT" "$@" > "$OUT/$which-$run.txt"
  done
done
python3 - "$OUT" "$RUNS" <<'PY'
import re, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
number = re.compile(r"^([\d,]+(?:\.\d+)?)( .*)?$")
def rows(path):
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|- \n"):
            yield cells
def medians(which):
    table = {}
    for run in range(1, runs + 1):
        for cells in rows(f"{out}/{which}-{run}.txt"):
            key = tuple(c if not number.match(c) else "" for c in cells)
            table.setdefault(key, []).append(cells)
    result = {}
    for key, samples in table.items():
        merged = []
        for i, cell in enumerate(key):
            if cell or len(samples) == 1:
                merged.append(cell or samples[0][i])
                continue
            values = [float(number.match(s[i]).group(1).replace(",", "")) for s in samples]
            unit = number.match(samples[0][i]).group(2) or ""
            merged.append(f"{statistics.median(values):g}{unit} ({min(values):g}-{max(values):g})")
        result[key] = merged
    return result
baseline, current = medians("baseline"), medians("current")
for key, cells in baseline.items():
    print("| baseline | " + " | ".join(cells) + " |")
    if key in current:
        print("| current  | " + " | ".join(current[key]) + " |")
PY
