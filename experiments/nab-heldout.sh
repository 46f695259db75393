#!/usr/bin/env bash
# A check on NAB files the shared datasets do not hold: realAdExchange, realTraffic and realTweets
# (23 of NAB's 58 series; nothing in this project was chosen on them). Takes NAB at the commit the
# shared copy came from, lays it out as $AIOPS_DATASETS is laid out (nab/<category>/, nab/labels/,
# nab-results/{numenta,ARTime}/) in one folder per corpus (all: the 58 files; others: the 23;
# and each of the three categories alone), then prints:
#  - the NAB scores (three profiles, each detector's best threshold on that corpus) of the
#    default detector (`experiment evaluate --nab`) next to Numenta HTM's and ARTime's published
#    per-row scores (`experiment evaluate --scores`);
#  - the forecast evaluation of the 23 files (experiments/forecast/evaluate-all.sh's summary).
#   [NAB_REPO=path/to/NAB/.git] [EXPERIMENT=target/debug/experiment] experiments/nab-heldout.sh [OUT_DIR]
# Without NAB_REPO it clones https://github.com/numenta/NAB (blobs fetched as needed) into OUT_DIR/NAB.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/nab-heldout}"
COMMIT=ea702d75cc2258d9d7dd35ca8e5e2539d71f3140
EXP="${EXPERIMENT:-target/release/experiment}"
[ -n "${EXPERIMENT:-}" ] || cargo build --release --bin experiment -q
mkdir -p "$OUT"
REPO="${NAB_REPO:-$OUT/NAB/.git}"
if [ ! -e "$REPO" ]; then
  git clone -q --filter=blob:none --no-checkout https://github.com/numenta/NAB "$OUT/NAB"
fi
nab() { git --git-dir="$REPO" "$@"; }
HELDOUT="realAdExchange realTraffic realTweets"
ALL="artificialNoAnomaly artificialWithAnomaly realAWSCloudwatch realKnownCause $HELDOUT"
# The 58 files, their labels and the published detectors' scores, read from NAB once.
ALL_DIR="$OUT/all"
rm -rf "$ALL_DIR"; mkdir -p "$ALL_DIR/nab/labels"
for c in $ALL; do
  mkdir -p "$ALL_DIR/nab/$c"
  for f in $(nab ls-tree --name-only "$COMMIT" "data/$c/"); do nab show "$COMMIT:$f" > "$ALL_DIR/nab/$c/$(basename "$f")"; done
  for d in numenta ARTime; do
    mkdir -p "$ALL_DIR/nab-results/$d/$c"
    for f in $(nab ls-tree --name-only "$COMMIT" "results/$d/$c/"); do nab show "$COMMIT:$f" > "$ALL_DIR/nab-results/$d/$c/$(basename "$f")"; done
  done
done
for n in combined_windows.json combined_labels.json; do nab show "$COMMIT:labels/$n" > "$ALL_DIR/nab/labels/$n"; done
subset() { # subset DIR CATEGORY...: those categories of the 58, with their labels only
  local dir="$1"; shift
  rm -rf "$dir"; mkdir -p "$dir/nab/labels" "$dir/nab-results/numenta" "$dir/nab-results/ARTime"
  for c in "$@"; do
    cp -r "$ALL_DIR/nab/$c" "$dir/nab/"
    for d in numenta ARTime; do cp -r "$ALL_DIR/nab-results/$d/$c" "$dir/nab-results/$d/"; done
  done
  for n in combined_windows.json combined_labels.json; do
    python3 -c '
import json, sys
keep = set(sys.argv[2:])
labels = json.load(open(sys.argv[1]))
json.dump({k: v for k, v in labels.items() if k.split("/")[0] in keep}, sys.stdout, indent=1)
' "$ALL_DIR/nab/labels/$n" "$@" > "$dir/nab/labels/$n"
  done
}
subset "$OUT/others" $HELDOUT
for c in $HELDOUT; do subset "$OUT/$c" "$c"; done
score() { grep -E '^(standard|reward_low_FP_rate|reward_low_FN_rate) ' | awk '{printf " %9s", $2}'; }
printf '%-22s %-14s %9s %9s %9s\n' corpus detector standard low_FP low_FN
for corpus in all others $HELDOUT; do
  dir="$OUT/$corpus"
  printf '%-22s %-14s' "$corpus" "default"; AIOPS_DATASETS="$dir" "$EXP" evaluate --nab | score; echo
  for d in numenta ARTime; do
    printf '%-22s %-14s' "$corpus" "$d"; AIOPS_DATASETS="$dir" "$EXP" evaluate --scores "$dir/nab-results/$d" | score; echo
  done
done
files=()
for c in $HELDOUT; do files+=("$OUT/others/nab/$c"/*.csv); done
EXPERIMENT="$EXP" NAB_CATEGORIES= SMD_SPLIT=none CSV_FILES="${files[*]}" experiments/forecast/evaluate-all.sh "$OUT/forecast.jsonl"
