#!/usr/bin/env bash
# Instructions the server executes per request, and its reads that miss a
# simulated 8 MiB last-level cache (each one a trip to memory), counted by
# Valgrind's callgrind: figures that hardly move with the load on the
# machine (a few percent, from the server's own timers), for the commands
# `make bench` times. Kernel time (sockets) is not counted.
#
# For RATELIMIT.CHECK it also splits the count by what the check asks of the
# server: the 8-field reply, replicating RATELIMIT.RECORD, the ACL check of
# the built key, and the rest.
#
# Environment: SERVER (redis-server), BENCH (redis-benchmark), REQUESTS per
# command (20000), IDS (100000 distinct ids, created before counting, so
# checks and INCRs find their key as in a busy server), HELD_IDS (1000
# limiters holding HELD requests each, 150, 5 ms apart: a busy limiter),
# CELL_MODULE (path to redis-cell's library: its CL.THROTTLE is counted too).
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-20000}
IDS=${IDS:-100000}
HELD_IDS=${HELD_IDS:-1000}
HELD=${HELD:-150}

NAME=bench-instructions
# shellcheck source=scripts/bench-server.sh
. scripts/bench-server.sh
need_tools "$SERVER" "$BENCH" redis-cli valgrind callgrind_control callgrind_annotate python3
CELL_MODULE=${CELL_MODULE:-}
if [ -n "$CELL_MODULE" ]; then
  [ -f "$CELL_MODULE" ] || { echo "$NAME: CELL_MODULE $CELL_MODULE not found" >&2; exit 1; }
  extra_server_args=(--loadmodule "$(realpath "$CELL_MODULE")")
fi
start_server 30 valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes --LL=8388608,16,64 \
  --callgrind-out-file="$dir/cg.out" "$SERVER"

cli CACHE.SETUSER 42 '{"id": 42, "username": "ivan", "first_name": "Иван", "role": "employee", "active": true}' TTL 86400 >/dev/null
cli HSET bench:reply8 allowed 1 current_count 5 limit 100 remaining 95 retry_after 0 \
  reset_time 1795656552 retry_after_ms 0 reset_after_ms 59000 >/dev/null

load() { # requests, ids, command words...
  local n=$1 ids=$2; shift 2
  "$BENCH" -p "$port" -P 16 -c 10 -n "$n" -r "$ids" -q "$@" >/dev/null
}
echo "creating $IDS counters and $IDS limiters (under valgrind, this takes a while)..." >&2
load $((IDS * 2)) "$IDS" INCR bench:counter:__rand_int__
load $((IDS * 2)) "$IDS" RATELIMIT.CHECK __rand_int__ 1000 600
# redis-cell's keys go to database 1, so that the keys of the other rows
# stay as they are without it.
if [ -n "$CELL_MODULE" ]; then
  load $((IDS * 2)) "$IDS" --dbnum 1 CL.THROTTLE cell:__rand_int__ 999 1000 600 1
fi
# Busy limiters, written directly at the times wanted (redis-benchmark's
# __rand_int__ is a 12-digit id).
now=$(cli EVAL 'local t = redis.call("TIME") return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)' 0)
python3 - "$now" "$HELD_IDS" "$HELD" <<'RECORDS' | redis-cli -p "$port" --pipe >/dev/null
import sys
now, ids, held = (int(v) for v in sys.argv[1:])
for k in range(ids):
    for i in range(held):
        args = ["RATELIMIT.RECORD", "rate_limit:default:held:%012d" % k,
                str(now - 2000 + 5 * i), "1000", "600000", "1"]
        sys.stdout.write("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
RECORDS

# name|ids|command
tests=(
  "GET|$IDS|GET user:42"
  "CACHE.GETUSER|$IDS|CACHE.GETUSER 42"
  "INCR|$IDS|INCR bench:counter:__rand_int__"
  "RATELIMIT.CHECK|$IDS|RATELIMIT.CHECK __rand_int__ 1000 600"
  "CHECK, $HELD held|$HELD_IDS|RATELIMIT.CHECK held:__rand_int__ 1000 600"
  "HGETALL, 8 fields|$IDS|HGETALL bench:reply8"
  "CACHE.KEY user 42|$IDS|CACHE.KEY user 42"
)
if [ -n "$CELL_MODULE" ]; then
  tests+=("CL.THROTTLE (redis-cell)|$IDS|--dbnum 1 CL.THROTTLE cell:__rand_int__ 999 1000 600 1")
fi
k=0
for spec in "${tests[@]}"; do
  IFS='|' read -r name ids command <<< "$spec"
  callgrind_control -z "$server_pid" >/dev/null 2>&1
  callgrind_control -i on "$server_pid" >/dev/null 2>&1
  # shellcheck disable=SC2086
  load "$REQUESTS" "$ids" $command
  callgrind_control -i off "$server_pid" >/dev/null 2>&1
  callgrind_control -d "run$k" "$server_pid" >/dev/null 2>&1
  out=$(ls -t "$dir"/cg.out* | head -1)
  mv "$out" "$dir/run$k.out"
  echo "$name|$dir/run$k.out" >> "$dir/runs"
  k=$((k + 1))
done

python3 - "$dir/runs" "$REQUESTS" <<'EOF'
import re, subprocess, sys
runs, requests = sys.argv[1], int(sys.argv[2])

def inclusive(path):
    """Inclusive instruction counts by function name, the total, and the
    last-level cache read misses of the whole run."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    funcs = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+.*?(\?\?\?|\.S|\.c):(\S+) \[", line)
        if m:
            fn = m.group(3)
            funcs[fn] = max(funcs.get(fn, 0), int(m.group(1).replace(",", "")))
    events = totals = None
    for line in open(path):
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:"):
            totals = [int(v) for v in line.split()[1:]]
    counts = dict(zip(events, totals))
    return counts["Ir"], counts.get("DLmr", 0), funcs

rows = [line.rstrip("\n").split("|") for line in open(runs)]
per, misses, data = {}, {}, {}
for name, path in rows:
    total, dlmr, funcs = inclusive(path)
    data[name] = funcs
    per[name] = total / requests
    misses[name] = dlmr / requests
print(f"{'command':<22}{'instructions/request':>22}{'x INCR':>9}{'memory reads/request':>23}")
for name, _ in rows:
    print(f"{name:<22}{per[name]:>22,.0f}{per['INCR'] / per[name]:>9.2f}{misses[name]:>23.2f}")
print("memory reads: reads that miss a simulated 8 MiB last-level cache.")

funcs = data["RATELIMIT.CHECK"]
def part(*names):
    return sum(funcs.get(n, 0) for n in names) / requests
parts = [
    ("8-field reply (RM_ReplyWith*)", part("RM_ReplyWithMap", "RM_ReplyWithStringBuffer", "RM_ReplyWithLongLong")),
    ("replicating RATELIMIT.RECORD (RM_Replicate)", part("RM_Replicate")),
    ("ACL check of the built key", part("cachekit::redis::acl::check_keys")),
    ("opening and closing the key (RM_OpenKey/CloseKey)", part("RM_OpenKey", "RM_CloseKey")),
    ("writing the state and its expiry", part("cachekit::redis::commands::ratelimit::store_state")),
]
print()
print("RATELIMIT.CHECK, by part (instructions/request):")
for label, value in parts:
    print(f"  {label:<52}{value:>8,.0f}")
print(f"  {'everything else (Redis command path, parsing, logic)':<52}{per['RATELIMIT.CHECK'] - sum(v for _, v in parts):>8,.0f}")
print(f"  {'all of INCR, for comparison':<52}{per['INCR']:>8,.0f}")
EOF
