#!/usr/bin/env bash
# Alert-level figures of a detector over freshly simulated fleets, one per seed, and their total:
# what docs/results.md reports for the fleet default (seeds 101–104 tuned on, 201–205 held out).
# Usage: experiments/fleet/evaluate-seeds.sh [--config FILE | --detector NAME] [--threshold T] -- SEED...
# Env: SERVERS (10), DAYS (3), EXPERIMENT (the experiment binary; default: cargo run --release).
set -euo pipefail
args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: $0 [evaluate options] -- SEED..." >&2; exit 2; }
exp=(${EXPERIMENT:-cargo run --quiet --release --bin experiment --})
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for seed in "$@"; do
  "${exp[@]}" simulate --servers "${SERVERS:-10}" --days "${DAYS:-3}" --seed "$seed" --out "$work/$seed" >/dev/null
  "${exp[@]}" evaluate --sim "$work/$seed" "${args[@]}" --json | jq -c --arg seed "$seed" '.sim + {seed: $seed}'
done | python3 -c '
import json, sys
runs = [json.loads(l) for l in sys.stdin]
kinds = {}
for r in runs:
    print("seed %-6s detected %3d/%-3d false %3d (%.2f per server-day) event F1 %.3f" % (
        r["seed"], r["detected"], r["incidents"], r["false_alerts"], r["false_alerts_per_server_day"], r["event_f1"]))
    for k in r["kinds"]:
        e = kinds.setdefault(k["kind"], [0, 0, 0.0])
        e[0] += k["incidents"]; e[1] += k["detected"]; e[2] += k["mttd_minutes"] * k["detected"] if k["detected"] else 0.0
inc = sum(r["incidents"] for r in runs); det = sum(r["detected"] for r in runs)
fa = sum(r["false_alerts"] for r in runs); sd = sum(r["server_days"] for r in runs)
p = det / max(det + fa, 1); rc = det / max(inc, 1)
print("total: detected %d/%d (recall %.3f), %.2f false alerts per server-day, event F1 %.3f" % (det, inc, rc, fa / sd, 2 * p * rc / max(p + rc, 1e-9)))
for k, (n, d, delay) in sorted(kinds.items()):
    print("  %-20s %3d/%-3d  MTTD %5.1f min" % (k, d, n, delay / max(d, 1)))
'
