#!/usr/bin/env python3
"""Synthetic series shaped like kinds of metric the shared datasets lack, for
`experiment forecast evaluate` (docs/results.md, "Other shapes"). Generated for the check, not
for choosing settings (every figure with the defaults as they were).

Three kinds, 3 seeds each:
  hourly-S.csv    hourly rows, 1,600 of them (about 9 weeks, as an ad-exchange price or a daily
                  batch metric): a daily and a weekend cycle, multiplicative log-normal noise,
                  one level step up of 30 % somewhere in the second half
  counts-S.csv    5-minute event counts, 15,800 rows (about 55 days): Poisson around a daily
                  cycle, eight bursts of 25 minutes to 3 hours adding 50-300 a row
  irregular-S.csv 2,500 rows at irregular times (5 minutes mostly, sometimes 10, 15 or 60: a
                  road sensor's speed): a morning dip every day, an evening dip on weekdays

    python3 experiments/forecast/shapes.py OUT_DIR
"""
import datetime
import math
import os
import random
import sys

START = datetime.datetime(2015, 7, 1)


def poisson(r, lam):
    # Knuth's method in chunks of 30 (e^-30 stays a normal double).
    n = 0
    while lam > 0:
        step = min(lam, 30.0)
        lam -= step
        limit, p = math.exp(-step), r.random()
        while p > limit:
            n += 1
            p *= r.random()
    return n


def hourly(r):
    n, shift = 1600, int(1600 * (0.5 + 0.2 * r.random()))
    rows = []
    for i in range(n):
        base = 1 + 0.3 * math.sin(2 * math.pi * i / 24) + (0.2 if (i // 24) % 7 >= 5 else 0.0)
        rows.append((START + datetime.timedelta(hours=i), base * (1.3 if i > shift else 1.0) * math.exp(r.gauss(0, 0.25))))
    return rows


def counts(r):
    n = 15800
    burst = [0.0] * n
    for _ in range(8):
        s, length, height = r.randrange(n), r.randint(5, 36), r.uniform(50, 300)
        for k in range(s, min(n, s + length)):
            burst[k] += height
    return [(START + datetime.timedelta(minutes=5 * i), poisson(r, 20 + 15 * math.sin(2 * math.pi * (i % 288) / 288) ** 2 + burst[i])) for i in range(n)]


def irregular(r):
    t, rows = START, []
    while len(rows) < 2500:
        t += datetime.timedelta(minutes=r.choice([5, 5, 5, 5, 10, 15, 60]))
        h = t.hour + t.minute / 60
        speed = 65 - 25 * math.exp(-((h - 8) ** 2) / 2) - (30 * math.exp(-((h - 17.5) ** 2) / 2) if t.weekday() < 5 else 0.0)
        rows.append((t, speed + r.gauss(0, 4)))
    return rows


def main(out):
    os.makedirs(out, exist_ok=True)
    for name, make in (("hourly", hourly), ("counts", counts), ("irregular", irregular)):
        for seed in range(3):
            rows = make(random.Random(f"{name}-{seed}"))
            with open(os.path.join(out, f"{name}-{seed}.csv"), "w") as f:
                f.write("timestamp,value\n")
                f.writelines(f"{t:%Y-%m-%d %H:%M:%S},{v:.4f}\n" for t, v in rows)


if __name__ == "__main__":
    main(sys.argv[1])
