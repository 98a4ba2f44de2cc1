#!/usr/bin/env bash
# Finds the highest rate at which the generator keeps its own lag p99 under 1 ms against one tier
# (`generator_own_lag`: waiting for a connection the tier still held is the tier's, not the generator's),
# then measures p50/p99 at half that rate. Usage: scripts/rate-sweep.sh [tier] [rates...]
# Needs a release build (make run builds one) and root.
set -euo pipefail
tier=${1:-shared-ec2}; shift || true
rates=${*:-"5k 10k 15k 20k 25k 30k 35k 40k"}
bin=./target/release/isobench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
best=""
for r in $rates; do
  $bin run scenarios/ec2-pair.toml --tiers "$tier" --rate "$r" --duration 10s --out "$out/$r" --no-progress-bar >/dev/null 2>&1 || true
  lag=$(python3 -c "import json,sys; t=json.load(open('$out/$r/summary.json'))['tiers'][0]; l=t['latency']; print(l.get('generator_own_lag', l['generator_lag'])['p99_us'], t['achieved_rate'], t['traffic']['errors'], t['traffic']['timeouts'])")
  echo "rate $r: own lag p99 µs, achieved req/s, errors, timeouts = $lag"
  ok=$(python3 -c "print(1 if float('$lag'.split()[0]) < 1000 and int('$lag'.split()[2])+int('$lag'.split()[3])==0 else 0)")
  [ "$ok" = 1 ] && best=$r
done
echo "highest rate with own lag p99 < 1 ms: ${best:-none}"
