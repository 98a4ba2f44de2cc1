#!/usr/bin/env bash
# isobench's open-loop generator against wrk2 (constant rate, corrected), oha (constant rate,
# latency correction) and wrk (closed loop), all against one tenant-app on loopback, in one run.
# For isobench, wrk2 and oha: the highest constant rate each sustains (steps of RATES, stopping
# at the first failure), then p50/p99 at half of it; for wrk: its closed-loop maximum and the
# latency it saw there. Writes
# results/bench/generators/ (README.md with the table, raw outputs). Needs a 2-CPU machine or
# larger: the server is pinned to CPU 1 and every generator to CPU 0.
#
# "Sustains": oha: achieved requests/s within 1% of the asked rate and no request failed (oha
#             reports no lag of its own; requests cut off by the end of -z are not failures).
#             isobench: the same (sent / wall time within 1%, no error, timeout or unsent request),
#             and, stricter, also the generator's own lag p99 < 1 ms (`generator_own_lag`: the
#             lag less the wait for a connection the server still held) at that step and every
#             step below; both maxima are reported, the ratio to oha uses the same criterion. Half-rate runs are at half the same-criterion max.
#             wrk2: `-R` achieved within 1% with no socket error and no non-2xx answer. wrk2 starts
#             its connections 5 ms apart (wrk.c, `delayed_initial_connect`), each sending its share
#             of the rate from then on, so its Requests/sec (over the whole -d) falls short by
#             (connections - 1) x 2.5 ms / d (4% in a 4 s step with 64 connections) even when
#             every request leaves on time: its achieved rate is counted over that sending window.
#
# wrk2 is not packaged: it is built from source in a temporary folder, from $WRK2_SRC (a git
# directory or a source tree) if set, else from the fetched mirror /work/.mirror/giltene+wrk2/repo,
# else cloned from GitHub; if none works it is skipped with a message. $WRK2 names a built
# binary to use instead. Building needs make, a C compiler and the OpenSSL (and zlib) headers.
#
# Priority: with PRIORITY=fifo (the default when run as root) every generator runs at SCHED_FIFO 1
# (`chrt -f 1`), the same for all four; PRIORITY=normal runs them as ordinary processes. Before
# the steps, `cyclictest` (Debian's rt-tests; skipped if absent) measures for 20 s how late the
# machine wakes a real-time thread on CPU 0 when nothing else runs: pauses no generator can avoid.
#
# Usage: scripts/compare-generators.sh   (env: RATES, STEP, HALF, REPEATS, CONNECTIONS, PORT, OUT, OHA_ROOT,
#                                           WRK2, WRK2_SRC, PRIORITY)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
out=${OUT:-results/bench/generators}
step=${STEP:-4s}
half=${HALF:-10s}
rates=${RATES:-"1000 2000 4000 8000 12000 16000 20000 22000 24000 28000 32000 36000 40000 44000 48000 52000 56000 60000 64000 68000 72000 76000 80000 84000 88000 92000 96000 100000 104000 108000 112000 120000 128000 144000 160000"}
repeats=${REPEATS:-3}
conns=${CONNECTIONS:-64}
port=${PORT:-18480}
oha_root=${OHA_ROOT:-$HOME/.cache/isobench-tools}
priority=${PRIORITY:-$([ "$(id -u)" -eq 0 ] && echo fifo || echo normal)}
gen=(taskset -c 0)
[ "$priority" = fifo ] && gen=(chrt -f 1 taskset -c 0)

cargo build --release -p isobench -p tenant-app --bins
oha=$(command -v oha || true)
[ -x "$oha_root/bin/oha" ] && oha=$oha_root/bin/oha
if [ -z "$oha" ]; then
  echo "installing oha into $oha_root (a tool of this benchmark, not a dependency of isobench)" >&2
  cargo install oha --locked --root "$oha_root"
  oha=$oha_root/bin/oha
fi
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "wrk missing: sudo apt-get install -y wrk" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

work=$(mktemp -d)
server=""
wrk2_mirror=/work/.mirror/giltene+wrk2/repo
# Prints the path of a wrk2 binary built in $work/wrk2, or nothing (with the reason on stderr).
build_wrk2() {
  local src=$work/wrk2
  mkdir -p "$src"
  if [ -n "${WRK2_SRC:-}" ]; then
    if git --git-dir="$WRK2_SRC" rev-parse -q --verify HEAD >/dev/null 2>&1; then
      git --git-dir="$WRK2_SRC" archive HEAD | tar -x -C "$src"
    elif git --git-dir="$WRK2_SRC/.git" rev-parse -q --verify HEAD >/dev/null 2>&1; then
      git --git-dir="$WRK2_SRC/.git" archive HEAD | tar -x -C "$src"
    elif [ -f "$WRK2_SRC/Makefile" ]; then
      cp -r "$WRK2_SRC/." "$src"
    else
      echo "WRK2_SRC=$WRK2_SRC is neither a git directory nor a wrk2 source tree" >&2
      return
    fi
  elif [ -d "$wrk2_mirror" ] && git --git-dir="$wrk2_mirror" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    git --git-dir="$wrk2_mirror" archive HEAD | tar -x -C "$src"
  elif ! git clone -q --depth 1 https://github.com/giltene/wrk2 "$src" 2>/dev/null; then
    echo "cannot get wrk2's source; skipping wrk2 (set WRK2_SRC to a wrk2 git directory or source tree, or WRK2 to a built binary)" >&2
    return
  fi
  echo "building wrk2 in $src (make; needs the OpenSSL and zlib headers)" >&2
  if ! make -C "$src" -j"$(nproc)" >"$work/wrk2-build.log" 2>&1 || [ ! -x "$src/wrk" ]; then
    echo "building wrk2 failed (see the last lines below); skipping wrk2" >&2
    tail -5 "$work/wrk2-build.log" >&2
    return
  fi
  echo "$src/wrk"
}
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$work/tmp"
wrk2=${WRK2:-}
[ -n "$wrk2" ] || wrk2=$(build_wrk2)
# profile/ (flame graphs, made by hand) stays.
rm -rf "$out/raw" "$out/README.md" && mkdir -p "$out/raw"

taskset -c 1 "$target/release/tenant-app" serve --listen "127.0.0.1:$port" --workers 1 --tmp-dir "$work/tmp" \
  >"$work/server.log" 2>&1 &
server=$!
url="http://127.0.0.1:$port/t/tenant-01/records/0"
hdr="x-tenant-id: tenant-01"
# Wait for the server, then store the one record every generator reads.
python3 - "$port" <<'PY'
import sys, time, urllib.request
port = sys.argv[1]
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
        break
    except Exception:
        time.sleep(0.05)
req = urllib.request.Request(f"http://127.0.0.1:{port}/t/tenant-01/records/0", data=b"x" * 256, method="PUT",
                             headers={"x-tenant-id": "tenant-01"})
assert urllib.request.urlopen(req, timeout=2).status in (200, 201, 204)
PY

cat >"$work/gen.toml" <<TOML
format_version = 1
name = "generator-comparison"
description = "one tenant, GET of one stored record, constant arrivals"
[run]
duration = "$step"
rate = "1k"
arrival = "constant"
timeout = "2s"
max_connections = $conns
[workload]
keys_per_tenant = 1
[mix]
get = 1
[tenants]
count = 1
ids = ["tenant-01"]
[[tier]]
id = "shared-ec2"
instance_type = "m5.large"
TOML
printf 'format_version = 1\n[tiers.shared-ec2]\n"*" = "http://127.0.0.1:%s"\n' "$port" >"$work/eps.toml"

iso() { # rate duration dir -> "<strict> <same-as-oha>"
  "${gen[@]}" "$target/release/isobench" run "$work/gen.toml" --target endpoints --endpoints "$work/eps.toml" \
    --rate "$1" --duration "$2" --out "$3" --no-progress-bar >"$3.log" 2>&1 || true
  python3 - "$3/summary.json" "$1" <<'PY'
import json, sys
try:
    t = json.load(open(sys.argv[1]))["tiers"][0]
except Exception:
    print("fail fail"); sys.exit()
tr = t["traffic"]
clean = tr["errors"] + tr["timeouts"] + tr["not_sent"] == 0
lat = t["latency"]
strict = clean and lat.get("generator_own_lag", lat["generator_lag"])["p99_us"] < 1000
# As oha counts it: everything sent over the wall time of the run, drain of a late backlog included.
same = clean and tr["sent"] / t["duration_s"] >= 0.99 * float(sys.argv[2])
print(("ok" if strict else "fail"), ("ok" if same else "fail"))
PY
}

oha_run() { # rate duration file
  "${gen[@]}" "$oha" -z "$2" -q "$1" --latency-correction -c "$conns" --no-tui --output-format json \
    -H "$hdr" "$url" >"$3" 2>"$3.err" || true
  python3 - "$3" "$1" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception:
    print("fail"); sys.exit()
rate = float(sys.argv[2])
# Requests still in flight when -z ends are "aborted due to deadline": the end of the run, not errors.
errors = {k: v for k, v in (s.get("errorDistribution") or {}).items() if k != "aborted due to deadline"}
ok = s["summary"]["requestsPerSec"] >= 0.99 * rate and not errors
print("ok" if ok else "fail")
PY
}

search_oha() {
  local best=0 r verdict
  for r in $rates; do
    verdict=$(oha_run "$r" "$step" "$out/raw/rep$rep-oha-$r.json")
    echo "  rep $rep oha $r/s: $verdict" >&2
    [ "$verdict" = ok ] || break
    best=$r
  done
  echo "$best"
}

# isobench: steps go on while the oha criterion holds; the strict (lag) maximum is recorded on the way.
wrk2_run() { # rate duration file -> ok|fail
  "${gen[@]}" "$wrk2" -t1 -c"$conns" -d"$2" -R"$1" --latency -H "$hdr" "$url" >"$3" 2>&1 || true
  python3 - "$3" "$1" "$2" "$conns" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^\s*(\d+) requests in", text, re.M)
d = re.fullmatch(r"([\d.]+)(ms|s|m)", sys.argv[3])
seconds = float(d.group(1)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[d.group(2)]
# Connection i starts sending 5*i ms after the start (wrk.c): the sending window is shorter.
window = seconds - 0.005 * (int(sys.argv[4]) - 1) / 2
errors = re.search(r"Socket errors:|Non-2xx", text)
print("ok" if m and int(m.group(1)) / window >= 0.99 * float(sys.argv[2]) and not errors else "fail")
PY
}

# Every step, not up to the first failure: wrk2 paces each connection on its own, and in some
# steps it sent only about 3/4 of -R (seen at 4k, 8k and 32k req/s in different runs), so one
# failed step says little about the next.
search_wrk2() {
  local best=0 r verdict
  for r in $rates; do
    verdict=$(wrk2_run "$r" "$step" "$out/raw/rep$rep-wrk2-$r.txt")
    echo "  rep $rep wrk2 $r/s: $verdict" >&2
    [ "$verdict" = ok ] && best=$r
  done
  echo "$best"
}

search_iso() {
  local strict=0 same=0 r v
  for r in $rates; do
    v=$(iso "$r" "$step" "$out/raw/rep$rep-isobench-$r")
    echo "  rep $rep isobench $r/s: lag<1ms ${v% *}, rate within 1% ${v#* }" >&2
    [ "${v% *}" = ok ] && [ "$strict" -eq "$same" ] && strict=$r
    [ "${v#* }" = ok ] || break
    same=$r
  done
  echo "$strict $same"
}

: >"$out/raw/runs.tsv"
git rev-parse --short HEAD >"$out/raw/commit.txt"
rm -f "$out/raw/cyclictest.txt"
if command -v cyclictest >/dev/null; then
  echo "cyclictest: 20 s of wake-ups every 200 us at SCHED_FIFO 1 on CPU 0" >&2
  cyclictest -a 0 -t1 -p 1 -i 200 -D 20 -q -m -h 20000 --histfile="$out/raw/cyclictest.txt" >/dev/null 2>&1 || true
else
  echo "cyclictest not found (apt-get install rt-tests); the machine's own pauses are not measured" >&2
fi
for rep in $(seq 1 "$repeats"); do
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  read -r iso_strict iso_same < <(search_iso)
  iso_half=$((iso_same / 2))
  [ "$iso_half" -gt 0 ] && iso "$iso_half" "$half" "$out/raw/rep$rep-isobench-half-$iso_half" >/dev/null
  wrk2_max=0
  if [ -n "$wrk2" ]; then
    wrk2_max=$(search_wrk2)
    wrk2_half=$((wrk2_max / 2))
    [ "$wrk2_half" -gt 0 ] && wrk2_run "$wrk2_half" "$half" "$out/raw/rep$rep-wrk2-half-$wrk2_half.txt" >/dev/null
  fi
  oha_max=$(search_oha)
  oha_half=$((oha_max / 2))
  [ "$oha_half" -gt 0 ] && oha_run "$oha_half" "$half" "$out/raw/rep$rep-oha-half-$oha_half.json" >/dev/null
  "${gen[@]}" wrk -t2 -c"$conns" -d"$half" --latency -H "$hdr" "$url" >"$out/raw/rep$rep-wrk.txt" 2>&1 || true
  load_after=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$iso_strict" "$iso_same" "$oha_max" "$load_before" "$load_after" "$wrk2_max" "$priority" \
    >>"$out/raw/runs.tsv"
done
# The raw isobench runs keep only what the table needs: summary.json and the log.
find "$out/raw" \( -name histograms.hlog -o -name report.html -o -name report.md \) -delete
OHA_BIN="$oha" python3 scripts/compare-generators-report.py "$out" "$conns" "$step" "$half" "$rates" >"$out/README.md"
cat "$out/README.md"
