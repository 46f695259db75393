#!/usr/bin/env bash
# Forecast evaluation over the shared real series: every NAB realAWSCloudwatch and
# realKnownCause file, and three columns of each SMD machine (train split). One JSON line per
# series (experiment lstm evaluate), then a summary table. Release build; ~30-40 min on 2 cores.
#   experiments/lstm/evaluate-all.sh [OUT.jsonl]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${AIOPS_DATASETS:-../shared/datasets}"
OUT="${1:-runs/lstm-eval/results.jsonl}"
CONFIG="${LSTM_EVAL_CONFIG:-experiments/lstm/eval.toml}"
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
cargo build --release --bin experiment -q
EXP=target/release/experiment
for f in "$DATA"/nab/realAWSCloudwatch/*.csv "$DATA"/nab/realKnownCause/*.csv; do
  echo "== $f" >&2
  "$EXP" lstm evaluate --input "$f" --config "$CONFIG" >> "$OUT"
done
# SMD: columns 0, 1 and 11 of each machine's train split by default (SMD_COLUMNS to change).
for f in "$DATA"/smd/train/*.txt; do
  for c in ${SMD_COLUMNS:-0 1 11}; do
    echo "== $f column $c" >&2
    "$EXP" lstm evaluate --input "$f" --column "$c" --config "$CONFIG" >> "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'series':<58}{'lstm':>10}{'best baseline':>26}{'gain':>8}{'h1':>7}{'h30':>7}{'h180':>7}")
wins = 0
for r in rows:
    name = r["series"].split("/")[-1] + ("" if r["column"] == "value" else f":{r['column']}")
    b = r["best_baseline"]
    g = r["improvement_vs_best_baseline"]
    wins += g >= 0.15
    at = {h: r["mae_at"][h]["lstm"] / min(v for k, v in r["mae_at"][h].items() if k != "lstm") for h in r["mae_at"]}
    print(f"{name:<58}{r['mae']['lstm']:>10.4g}{b:>16} {r['mae'][b]:>9.4g}{g:>8.1%}" + "".join(f"{at.get(h, float('nan')):>7.2f}" for h in ("1", "30", "180")))
print(f"\nseries where the LSTM beats the best baseline's MAE by >= 15%: {wins}/{len(rows)}")
print("h1/h30/h180: LSTM MAE / best baseline MAE at that horizon (< 1 is better)")
PY
