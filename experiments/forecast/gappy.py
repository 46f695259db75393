#!/usr/bin/env python3
"""Synthetic series whose rows go missing, for `experiment forecast evaluate` (docs/results.md,
"Cells of time where rows go missing"). Generated for the check, not for choosing settings.

Every series: 16 days every 5 minutes, a daily cycle (amplitude and phase per series), level
shifts now and then, noise; then rows are dropped in one of three ways (4 seeds each):
  scattered-S.csv  12 % of rows at random and ten stretches of 1-6 hours
  runs-S.csv       an on / off chain: runs of about 40 rows kept, runs of about 33 missing
  bursts-S.csv     2-6 hours of rows, then 4-14 hours without (under half the cells of time
                   hold rows, so the evaluation keeps counting rows)

    python3 experiments/forecast/gappy.py OUT_DIR
"""
import datetime
import math
import os
import random
import sys

DAY = 288
START = datetime.datetime(2015, 9, 1)


def values(r):
    level, amp, phase = 50.0, r.uniform(10, 30), r.random()
    out = []
    for i in range(DAY * 16):
        if r.random() < 0.002:
            level += r.choice([-1, 1]) * r.uniform(5, 20)
        out.append(level + amp * math.sin(2 * math.pi * (i / DAY + phase)) + r.gauss(0, 3))
    return out


def scattered(r, n):
    keep = [r.random() >= 0.12 for _ in range(n)]
    for _ in range(10):
        start, length = r.randrange(n), r.randint(12, 72)
        keep[start:start + length] = [False] * len(keep[start:start + length])
    return keep


def runs(r, n):
    keep, on = [], True
    while len(keep) < n:
        keep += [on] * (int(r.expovariate(1 / (40 if on else 33))) + 1)
        on = not on
    return keep[:n]


def bursts(r, n):
    keep = []
    while len(keep) < n:
        keep += [True] * r.randint(24, 72) + [False] * r.randint(48, 168)
    return keep[:n]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "runs/gappy"
    os.makedirs(out, exist_ok=True)
    for name, drop in [("scattered", scattered), ("runs", runs), ("bursts", bursts)]:
        for seed in range(4):
            r = random.Random(f"{name}-{seed}")
            v = values(r)
            keep = drop(r, len(v))
            path = os.path.join(out, f"{name}-{seed}.csv")
            with open(path, "w") as f:
                f.write("timestamp,value\n")
                for i, (x, k) in enumerate(zip(v, keep)):
                    if k:
                        t = START + datetime.timedelta(minutes=5 * i)
                        f.write(f"{t:%Y-%m-%d %H:%M:%S},{x:.3f}\n")
            print(path, sum(keep), "of", len(v), "rows kept")


if __name__ == "__main__":
    main()
