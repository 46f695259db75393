#!/usr/bin/env python3
"""What a user would pick instead: Nixtla statsforecast on the origins of our evaluation.

Reads the JSON lines of `experiment forecast evaluate` (experiments/forecast/evaluate-all.sh),
rebuilds each series' origins exactly as the evaluation does (first `train_rows` fit, origins
evenly spaced over the rest, the same horizon), refits each statsforecast model at every origin
on the last `--days` days of history (7: as issue 17 measured them) and scores it against the same
three naive baselines. Prints one JSON line per series and a summary table next to `auto`'s figures
from the input: at or below the best baseline, median and worst ratio, and how often `auto` beats
each model. The baselines' MAE is recomputed here and must match the input's (a check that the
origins and the data are the same).

    python3 -m venv runs/sfvenv && runs/sfvenv/bin/pip install statsforecast==2.1.1
    EXPERIMENT=target/release/experiment MAX_ORIGINS=40 experiments/forecast/evaluate-all.sh runs/sf/design.jsonl
    runs/sfvenv/bin/python experiments/forecast/statsforecast_compare.py runs/sf/design.jsonl > runs/sf/design-sf.jsonl

After a change to `auto`, `--reuse runs/sf/design-sf.jsonl` takes each series' statsforecast MAEs
from that earlier output (same series, column and origins; the baselines still checked) and
refits nothing: only `auto`'s figures come from the new input (seconds instead of half an hour).

Only regular series (no cells of time: `grid_cells` absent) are compared; the datasets folder is
AIOPS_DATASETS (default ../shared/datasets) when a series path in the input is relative.
"""
import argparse
import json
import math
import os
import statistics
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np

warnings.filterwarnings("ignore")

BASELINES = ("baseline_last_value", "baseline_seasonal_naive", "baseline_moving_average")


def load(series, column):
    path = series
    if not os.path.exists(path):
        path = os.path.join(os.environ.get("AIOPS_DATASETS", "../shared/datasets"), series)
    if path.endswith(".txt"):
        col = int(column[1:]) - 1
        return np.loadtxt(path, delimiter=",", usecols=[col])
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    return np.array([float(r[column]) for r in rows])


def models(season):
    from statsforecast.models import MSTL, AutoETS, AutoTheta, SeasonalNaive

    s = max(1, season)
    # As R's forecast::ets, ETS is seasonal only up to 24 steps a period (at 288 a fit takes
    # statsforecast 12 s); longer periods go to MSTL (the seasonal profile with an ETS trend).
    return {
        "AutoETS": AutoETS(season_length=s if s <= 24 else 1),
        "AutoTheta": AutoTheta(season_length=s),
        "MSTL": MSTL(season_length=[s], trend_forecaster=AutoETS(model="ZZN")),
        "SeasonalNaive": SeasonalNaive(season_length=s),
    }


def score(line):
    d = json.loads(line)
    if d.get("grid_cells") is not None:
        return None
    y = load(d["series"], d["column"])
    n, h, n_train = len(y), d["horizon"], d["train_rows"]
    season = max(1, math.floor(86_400.0 / d["interval_secs"] + 0.5))  # Rust rounds half away from zero
    lo = max(n_train, 180, season)
    stride = max(1, math.ceil((n - h - lo + 1) / ARGS.max_origins))
    origins = list(range(lo, n - h + 1, stride))
    assert len(origins) == d["origins"], (d["series"], len(origins), d["origins"])
    window = ARGS.days * season
    earlier = REUSE.get((d["series"], d["column"], len(origins)))
    if earlier is not None:
        return compared(d, y, n_train, earlier["mae"])
    err = {}

    def add(name, f, actual):
        err.setdefault(name, []).append(float(np.mean(np.abs(np.asarray(f) - actual))))

    for o in origins:
        actual = y[o : o + h]
        hist = y[:o]
        add("baseline_last_value", np.full(h, hist[-1]), actual)
        add("baseline_seasonal_naive", [hist[o + k - season * (k // season + 1)] for k in range(h)], actual)
        add("baseline_moving_average", np.full(h, hist[-180:].mean()), actual)
        train = hist[-window:]
        fc = {}
        for name, m in models(season if len(train) >= 2 * season else 1).items():
            try:
                fc[name] = np.asarray(m.forecast(y=train, h=h)["mean"], dtype=float)
            except Exception:  # noqa: BLE001 - a model that cannot fit forecasts the last value
                fc[name] = np.full(h, train[-1])
            add(name, fc[name], actual)
        # The ensemble: the median of seasonal naive, Theta and MSTL.
        add("Median(SN,Theta,MSTL)", np.median(np.vstack([fc["SeasonalNaive"], fc["AutoTheta"], fc["MSTL"]]), axis=0), actual)
    return compared(d, y, n_train, {k: float(np.mean(v)) for k, v in err.items()})


def compared(d, y, n_train, mae):
    """One series' line: every model's MAE against the best baseline's, next to `auto`'s."""
    best = min(mae[b] for b in BASELINES)
    for b in BASELINES:
        assert abs(mae[b] - d["mae"][b]) <= 1e-6 * max(1.0, abs(d["mae"][b])), (d["series"], b, mae[b], d["mae"][b])
    floor = max(1e-9 * float(np.mean(np.abs(y[n_train:]))), sys.float_info.min)
    ratio = {k: max(v, floor) / max(best, floor) for k, v in mae.items() if k not in BASELINES}
    return {
        "series": d["series"],
        "column": d["column"],
        "origins": d["origins"],
        "mae": mae,
        "vs_best_baseline": ratio,
        "auto_vs_best_baseline": d["auto_vs_best_baseline"],
        "auto_mae": d["mae"]["auto"],
    }


REUSE = {}


def main():
    if ARGS.reuse:
        for line in open(ARGS.reuse):
            if line.strip():
                r = json.loads(line)
                REUSE[(r["series"], r["column"], r["origins"])] = r
    lines = [l for l in open(ARGS.input) if l.strip()]
    results = []
    with ProcessPoolExecutor(ARGS.jobs) as pool:
        for i, r in enumerate(pool.map(score, lines)):
            print(f"{i + 1}/{len(lines)}", file=sys.stderr, flush=True)
            if r is not None:
                print(json.dumps(r), flush=True)
                results.append(r)
    names = ["auto"] + list(results[0]["vs_best_baseline"].keys())
    print(f"{'forecaster':<24}{'at/below':>10}{'median':>8}{'worst':>8}{'auto better':>13}", file=sys.stderr)
    for name in names:
        rs = [r["auto_vs_best_baseline"] if name == "auto" else r["vs_best_baseline"][name] for r in results]
        beats = "" if name == "auto" else f"{sum(r['auto_mae'] <= r['mae'][name] for r in results)}/{len(results)}"
        print(f"{name:<24}{sum(v <= 1 + 1e-9 for v in rs):>6}/{len(rs):<3}{statistics.median(rs):>8.3f}{max(rs):>8.3f}{beats:>13}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="JSON lines of experiment forecast evaluate")
    parser.add_argument("--max-origins", type=int, default=int(os.environ.get("MAX_ORIGINS", 400)), help="as the evaluation's --max-origins")
    parser.add_argument("--days", type=int, default=7, help="days of history each model is refitted on at every origin")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reuse", help="an earlier output of this script: its statsforecast MAEs are taken, nothing refitted")
    ARGS = parser.parse_args()
    main()
