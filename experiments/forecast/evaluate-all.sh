#!/usr/bin/env bash
# Statistical forecasters over the shared real series (the same 33 as experiments/lstm/evaluate-all.sh:
# every NAB realAWSCloudwatch and realKnownCause file, columns 0, 1 and 11 of each SMD machine's
# train split): one JSON line per series (experiment forecast evaluate), then a summary against
# the best naive baseline chosen after the fact, and a chart per series (the last origin: history,
# auto's forecast with its 80 / 95 % intervals, the actual values) in charts/ next to OUT.
# Seconds on 2 cores (about a minute with REFIT_EVERY=1: auto refitted at every origin on the
# history before it, as the runtime refits at each prediction).
#   [REFIT_EVERY=N] experiments/forecast/evaluate-all.sh [OUT.jsonl]
# Other series (docs/results.md): NAB_CATEGORIES (default "realAWSCloudwatch realKnownCause"; empty:
# none), SMD_SPLIT (train or test) and SMD_COLUMNS (default "0 1 11"), e.g. the 41 others:
#   NAB_CATEGORIES="artificialWithAnomaly artificialNoAnomaly" SMD_COLUMNS="2 4 8 13 15 19 22 28 31 35" \
#     experiments/forecast/evaluate-all.sh runs/forecast-eval/others.jsonl
# and the SMD test-split columns:
#   NAB_CATEGORIES= SMD_SPLIT=test SMD_COLUMNS="0 3 5 9 14 20 24 30" experiments/forecast/evaluate-all.sh runs/forecast-eval/smd-test.jsonl
# and every SMD column (a check on columns not used to choose; add SMD_SPLIT=test for the test split):
#   NAB_CATEGORIES= SMD_COLUMNS="$(seq -s ' ' 0 37)" experiments/forecast/evaluate-all.sh runs/forecast-eval/smd-all.jsonl
# and other CSV files (CSV_FILES; SMD_SPLIT=none: no SMD), e.g. series with rows missing
# (experiments/forecast/gappy.py), in cells of time or (ROWS=1) in rows:
#   python3 experiments/forecast/gappy.py runs/gappy && NAB_CATEGORIES= SMD_SPLIT=none \
#     CSV_FILES="$(echo runs/gappy/*.csv)" experiments/forecast/evaluate-all.sh runs/forecast-eval/gappy.jsonl
# and synthetic series of other shapes (hourly, bursty counts, irregular times; experiments/forecast/shapes.py):
#   python3 experiments/forecast/shapes.py runs/shapes && NAB_CATEGORIES= SMD_SPLIT=none \
#     CSV_FILES="$(echo runs/shapes/*.csv)" experiments/forecast/evaluate-all.sh runs/forecast-eval/shapes.jsonl
# and NAB's other 23 files (realAdExchange, realTraffic, realTweets: not in the shared datasets, never
# used to choose), with the NAB detection scores next to HTM's and ARTime's: experiments/nab-heldout.sh
# and simulated fleets (SIM_SEEDS: one fleet per seed, SIM_SERVERS servers (4) × SIM_DAYS days (12) at one
# minute, every metric of every server; 12 days from a Monday put the test part on weekdays), e.g.
#   NAB_CATEGORIES= SMD_SPLIT=none SIM_SEEDS="611 612" experiments/forecast/evaluate-all.sh runs/forecast-eval/sim.jsonl
# MAX_ORIGINS=N: at most N origins per series (default 400), e.g. 20 for the statsforecast comparison
# (experiments/forecast/statsforecast_compare.py reads this script's output and rebuilds the same origins).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA="${AIOPS_DATASETS:-../shared/datasets}"
OUT="${1:-runs/forecast-eval/results.jsonl}"
EXP="${EXPERIMENT:-target/release/experiment}"
CHARTS="$(dirname "$OUT")/charts"
mkdir -p "$(dirname "$OUT")" "$CHARTS"
: > "$OUT"
[ -n "${EXPERIMENT:-}" ] || cargo build --release --bin experiment -q
NAB_CATEGORIES="${NAB_CATEGORIES-realAWSCloudwatch realKnownCause}"
SMD_SPLIT="${SMD_SPLIT:-train}"
split_suffix=""; [ "$SMD_SPLIT" = train ] || split_suffix="-$SMD_SPLIT"
OPTS=(${FORECAST_CONFIG:+--config "$FORECAST_CONFIG"} ${REFIT_EVERY:+--refit-every "$REFIT_EVERY"} ${ROWS:+--rows} ${MAX_ORIGINS:+--max-origins "$MAX_ORIGINS"})
for category in $NAB_CATEGORIES; do for f in "$DATA"/nab/"$category"/*.csv; do
  "$EXP" forecast evaluate --input "$f" "${OPTS[@]}" --chart "$CHARTS/$(basename "$f" .csv).svg" >> "$OUT"
done; done
for f in ${CSV_FILES:-}; do
  "$EXP" forecast evaluate --input "$f" "${OPTS[@]}" --chart "$CHARTS/$(basename "$f" .csv).svg" >> "$OUT"
done
for seed in ${SIM_SEEDS:-}; do
  fleet="$(dirname "$OUT")/sim-$seed"
  "$EXP" simulate --servers "${SIM_SERVERS:-4}" --days "${SIM_DAYS:-12}" --interval-secs 60 --seed "$seed" --format csv --out "$fleet" >/dev/null
  for server in $(seq -f 'web-server-%02g' 1 "${SIM_SERVERS:-4}"); do for metric in cpu_usage memory_usage network disk_io; do
    "$EXP" forecast evaluate --input "$fleet/metrics.csv" --server "$server" --column "$metric" "${OPTS[@]}" --chart "$CHARTS/sim-$seed-$server-$metric.svg" >> "$OUT"
  done; done
done
for f in "$DATA"/smd/"$SMD_SPLIT"/*.txt; do
  [ -e "$f" ] || continue
  for c in ${SMD_COLUMNS:-0 1 11}; do
    "$EXP" forecast evaluate --input "$f" --column "$c" "${OPTS[@]}" --chart "$CHARTS/$(basename "$f" .txt)$split_suffix-$c.svg" >> "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'series':<52}{'auto MAE':>11}{'best baseline':>26}{'ratio':>7}{'cov80':>7}{'cov95':>7}  members")
ratios, c80, c95 = [], [], []
spikes = {k: {"tp": 0, "fp": 0, "fn": 0, "lead": 0.0} for k in ("auto", "auto_upper_80", "auto_upper_95", "auto_probability", "baseline_seasonal_naive", "actual")}
labels = {"actual": "actual values: every crossing caught"}
for r in rows:
    parts = r["series"].split("/")
    name = "/".join(parts[-2:] if parts[-1].startswith("metrics.csv ") else parts[-1:]) + ("" if r["column"] == "value" else f":{r['column']}")
    b = r["best_baseline"]
    ratios.append(r["auto_vs_best_baseline"]); c80.append(r["coverage"]["80"]); c95.append(r["coverage"]["95"])
    for k, spike in spikes.items():
        s = r["spike"][k]
        spike["tp"] += s["true_positives"]; spike["fp"] += s["false_positives"]; spike["fn"] += s["false_negatives"]
        spike["lead"] += (s["mean_lead_minutes"] or 0) * s["true_positives"]
    far = r["buckets"][-1]
    members = f"steps {far['first_step'] + 1}-{far['last_step'] + 1}: " + ", ".join(f"{m['method']} {m['weight']:.2f}" for m in far["members"])
    print(f"{name:<52}{r['mae']['auto']:>11.4g}{b[len('baseline_'):]:>16} {r['mae'][b]:>9.4g}{r['auto_vs_best_baseline']:>7.3f}{r['coverage']['80']:>7.2f}{r['coverage']['95']:>7.2f}  {members}")
n = len(rows)
print(f"\n{n} series: auto at or below the best baseline's MAE on {sum(x <= 1 for x in ratios)} ({sum(x <= 1 for x in ratios) / n:.0%}); "
      f"median ratio {statistics.median(ratios):.3f}; worst {max(ratios):.3f}")
print(f"mean coverage: 80 % interval {statistics.mean(c80):.3f}, 95 % interval {statistics.mean(c95):.3f}")
for k, spike in spikes.items():
    tp, fp, fn = spike["tp"], spike["fp"], spike["fn"]
    print(f"spike prediction ({labels.get(k, k)}, pooled): precision {tp / max(tp + fp, 1):.2f}, recall {tp / max(tp + fn, 1):.2f}, "
          f"mean lead {spike['lead'] / max(tp, 1):.0f} min")
PY
