#!/usr/bin/env python3
"""Writes a small, seeded sample in the layout of the Azure Functions 2019 invocation trace.

The real trace (Shahrad et al., "Serverless in the Wild", USENIX ATC 2020) is published at
https://github.com/Azure/AzurePublicDataset (AzureFunctionsDataset2019.md); each day is a file
`invocations_per_function_md.anon.d01.csv` .. `d14.csv` with the columns

    HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440

one row per function: anonymised owner, app and function hashes, the trigger (http, timer,
queue, event, storage, orchestration, others) and 1,440 per-minute invocation counts for that
day. isobench replays such a file with `[arrivals.trace]` (see scenarios/trace-replay.toml).

This script makes a 20-function day with the shapes that matter for load: a Zipf-like spread of
volumes, a diurnal cycle, timer functions firing on the minute grid, and bursts. Standard
library only; the same seed always writes the same file.

Usage: scripts/make-sample-trace.py [--seed 1] [--functions 20] [--out scenarios/traces/sample.csv]
"""
import argparse
import math
import random

MINUTES = 1440
TRIGGERS = ["http", "http", "http", "queue", "timer", "event", "storage"]


def hexhash(rng):
    return "%064x" % rng.getrandbits(256)


def diurnal(minute, peak_minute):
    # 0.15 at night to 1.0 at the peak, a smooth day.
    phase = 2 * math.pi * (minute - peak_minute) / MINUTES
    return 0.575 + 0.425 * math.cos(phase)


def poisson(rng, mean):
    # Knuth for small means, a rounded normal for large ones: enough for a sample.
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def function_row(rng, rank):
    trigger = rng.choice(TRIGGERS)
    volume = 600.0 / rank**1.1  # invocations per minute at the daily peak
    peak = rng.randint(9 * 60, 16 * 60)
    counts = []
    if trigger == "timer":
        every = rng.choice([1, 5, 15, 60])
        per_fire = max(1, round(volume / 10))
        counts = [per_fire if m % every == 0 else 0 for m in range(MINUTES)]
    else:
        bursts = set()
        for _ in range(rng.randint(0, 4)):
            start = rng.randrange(MINUTES)
            bursts.update(range(start, min(MINUTES, start + rng.randint(2, 15))))
        for m in range(MINUTES):
            mean = volume * diurnal(m, peak) * (8.0 if m in bursts else 1.0)
            counts.append(poisson(rng, mean))
    return trigger, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--functions", type=int, default=20, help="rows to write (default 20)")
    ap.add_argument("--out", default="scenarios/traces/sample.csv", help="output CSV")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    owners = [hexhash(rng) for _ in range(4)]
    with open(a.out, "w", newline="") as f:
        f.write(",".join(["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(m) for m in range(1, MINUTES + 1)]))
        f.write("\n")
        for rank in range(1, a.functions + 1):
            owner = owners[rank % len(owners)]
            app = hexhash(rng)
            trigger, counts = function_row(rng, rank)
            f.write(",".join([owner, app, hexhash(rng), trigger] + [str(c) for c in counts]))
            f.write("\n")


if __name__ == "__main__":
    main()
