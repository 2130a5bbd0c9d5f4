#!/usr/bin/env bash
# Throughput and memory of RATELIMIT.CHECK and CACHE.GETUSER next to their
# peers, on one server started here with the module, with
# `redis-benchmark -P 16`. Every command runs once per round and the rounds
# are interleaved (the order rotates), so load from elsewhere on the machine
# hits every command alike. Ratios are medians of per-round ratios.
#
# Two figures per command: requests per second as redis-benchmark sees them
# (what the targets are about), and the server's own CPU time per request
# (its main thread's, from /proc), which does not depend on how fast the
# benchmark client parses replies.
#
# Environment: SERVER (redis-server), BENCH (redis-benchmark), ROUNDS (9),
# REQUESTS per command per round (200000), IDS (100000 distinct ids),
# STEADY_IDS (1000 ids held at ~100 requests each), PIPELINE (16),
# CLIENTS (50), PIN (1: server on CPU 0, client on CPU 1), CELL_MODULE (path
# to redis-cell's library: loaded into the same server, and its
# CL.THROTTLE measured beside RATELIMIT.CHECK; looked for in the usual
# module directories when not set).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-9}
REQUESTS=${REQUESTS:-200000}
IDS=${IDS:-100000}
STEADY_IDS=${STEADY_IDS:-1000}
PIPELINE=${PIPELINE:-16}
CLIENTS=${CLIENTS:-50}
PIN=${PIN:-1}
CELL_MODULE=${CELL_MODULE:-}
if [ -z "$CELL_MODULE" ]; then
  for candidate in /usr/lib/redis/modules /usr/local/lib/redis/modules /usr/local/lib /usr/lib; do
    if [ -f "$candidate/libredis_cell.so" ]; then
      CELL_MODULE=$candidate/libredis_cell.so
      break
    fi
  done
fi

NAME=bench
# shellcheck source=scripts/bench-server.sh
. scripts/bench-server.sh
need_tools "$SERVER" "$BENCH" redis-cli python3

server_cpu=() client_cpu=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi
results=$dir/results
if [ -n "$CELL_MODULE" ]; then
  [ -f "$CELL_MODULE" ] || { echo "bench: CELL_MODULE $CELL_MODULE not found" >&2; exit 1; }
  extra_server_args=(--loadmodule "$(realpath "$CELL_MODULE")")
  echo "redis-cell: $CELL_MODULE" >&2
else
  echo "redis-cell: not found; CELL_MODULE=/path/to/libredis_cell.so adds it" >&2
fi
start_server 10 "${server_cpu[@]}" "$SERVER"

# The sliding log every Redis rate-limiting tutorial shows: one ZSET member
# per admitted request, timed with the server's clock.
LUA='local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - window)
local count = redis.call("ZCARD", KEYS[1])
if count < limit then
  redis.call("ZADD", KEYS[1], now, string.format("%d%06d-%d", t[1], t[2], count))
  redis.call("PEXPIRE", KEYS[1], window)
  return {1, count + 1}
end
return {0, count}'
sha=$(cli SCRIPT LOAD "$LUA")

# A native command with the same reply shape as CHECK (8 integer fields):
# what the benchmark client can take of replies this size.
cli HSET bench:reply8 allowed 1 current_count 5 limit 100 remaining 95 retry_after 0 \
  reset_time 1795656552 retry_after_ms 0 reset_after_ms 59000 >/dev/null

user_json='{"id": 42, "username": "ivan", "first_name": "Иван", "role": "employee", "active": true}'
cli CACHE.SETUSER 42 "$user_json" TTL 86400 >/dev/null

# CPU time of the server's main thread (where commands run), in ns, from
# /proc/<pid>/schedstat; else utime + stime of the process in clock ticks.
if [ -r "/proc/$server_pid/schedstat" ]; then
  cpu_ns() { awk '{print $1}' "/proc/$server_pid/schedstat"; }
else
  cpu_ns() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.0f\n", ($14 + $15) * 1e9 / hz}' "/proc/$server_pid/stat"; }
fi

# One redis-benchmark run; prints "rps cpu_us_per_request".
run_one() { # ids, requests, command words...
  local ids=$1 n=$2; shift 2
  local t0 t1 rps
  t0=$(cpu_ns)
  rps=$("${client_cpu[@]}" "$BENCH" -p "$port" -P "$PIPELINE" -c "$CLIENTS" -n "$n" -r "$ids" --csv "$@" \
    | awk -F'","' 'NR==2 {print $2}')
  t1=$(cpu_ns)
  echo "$rps $(python3 -c "print(($t1 - $t0) / 1000 / $n)")"
}

# Steady scenario: STEADY_IDS limiters and as many ZSET logs, each already
# holding ~100 requests in a 10-minute window (limit 1000, so every check
# is still admitted): the state a busy limiter is in.
steady_n=$((STEADY_IDS * 100))
echo "filling $STEADY_IDS limiters and ZSET logs with ~100 requests each..." >&2
run_one "$STEADY_IDS" "$steady_n" RATELIMIT.CHECK s:__rand_int__ 1000 600 >/dev/null
run_one "$STEADY_IDS" "$steady_n" EVALSHA "$sha" 1 bench:slog:__rand_int__ 1000 600000 >/dev/null

# name|ids|requests|command   (main scenario: limit 100 per 60 s over IDS
# ids, so that every check of the run is admitted: the expensive path)
steady_req=$((STEADY_IDS * 10))
tests=(
  "INCR|$IDS|$REQUESTS|INCR bench:counter:__rand_int__"
  "GET|$IDS|$REQUESTS|GET user:42"
  "CACHE.GETUSER|$IDS|$REQUESTS|CACHE.GETUSER 42"
  "RATELIMIT.CHECK|$IDS|$REQUESTS|RATELIMIT.CHECK __rand_int__ 100 60"
  "RATELIMIT.CHECK denied|$IDS|$REQUESTS|RATELIMIT.CHECK hot 100 60"
  "RATELIMIT.ACQUIRE|$IDS|$REQUESTS|RATELIMIT.ACQUIRE a:__rand_int__ 100 60"
  "CHECK, two windows|$IDS|$REQUESTS|RATELIMIT.CHECK w:__rand_int__ 100 60 1000 3600"
  "CHECKALL, 3 limiters|$IDS|$REQUESTS|RATELIMIT.CHECKALL 3 default {__rand_int__}a default {__rand_int__}b default {__rand_int__}c"
  "RATELIMIT.REFUND|$IDS|$REQUESTS|RATELIMIT.REFUND r:__rand_int__"
  "HGETALL, 8 fields|$IDS|$REQUESTS|HGETALL bench:reply8"
  "Lua sliding log|$IDS|$((REQUESTS / 4))|EVALSHA $sha 1 bench:log:__rand_int__ 100 60000"
  "CHECK, ~100 held|$STEADY_IDS|$steady_req|RATELIMIT.CHECK s:__rand_int__ 1000 600"
  "Lua log, ~100 held|$STEADY_IDS|$steady_req|EVALSHA $sha 1 bench:slog:__rand_int__ 1000 600000"
)
# redis-cell's GCRA under the same rule (a burst of 100, 100 per 60 s): its
# state is one number, so it has no "held" variant. Its keys go to database
# 1, so that the other rows find the same keyspace as without it.
if [ -n "$CELL_MODULE" ]; then
  tests+=("CL.THROTTLE (redis-cell)|$IDS|$REQUESTS|--dbnum 1 CL.THROTTLE cell:__rand_int__ 99 100 60 1")
fi

echo "server: $("$SERVER" --version | head -1)"
echo "client: $("$BENCH" --version), -P $PIPELINE -c $CLIENTS; $ROUNDS rounds; $(nproc) CPUs${server_cpu:+, server and client pinned to separate CPUs}"
for round in $(seq "$ROUNDS"); do
  count=${#tests[@]}
  for k in $(seq 0 $((count - 1))); do
    spec=${tests[$(((k + round) % count))]}
    IFS='|' read -r name ids n command <<< "$spec"
    # shellcheck disable=SC2086
    read -r rps cpu <<< "$(run_one "$ids" "$n" $command)"
    echo "$round|$name|$rps|$cpu" >> "$results"
    printf '  round %d  %-24s %12s rps %8.2f us/req\n' "$round" "$name" "$rps" "$cpu" >&2
  done
done

# Memory: one limiter holding 100 requests vs the ZSET log holding 100.
for _ in $(seq 100); do cli RATELIMIT.CHECK mem:burst 100 60 >/dev/null; done
now=$(cli EVAL 'local t = redis.call("TIME") return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)' 0)
# Spread over the window (one every 500 ms), as real traffic would be.
for i in $(seq 0 99); do
  cli RATELIMIT.RECORD rate_limit:default:mem:spread $((now - 50000 + i * 500)) 100 60000 1 >/dev/null
done
for _ in $(seq 100); do cli EVALSHA "$sha" 1 mem:zlog 100 60000 >/dev/null; done
mem() { echo "$(cli MEMORY USAGE "$1")|$(cli STRLEN "$1" 2>/dev/null || echo 0)"; }

echo
python3 - "$results" "$(mem rate_limit:default:mem:burst)" "$(mem rate_limit:default:mem:spread)" \
  "$(cli MEMORY USAGE mem:zlog)" "$(cli RATELIMIT.INFO mem:burst | sed -n 2p)" \
  "$(cli RATELIMIT.INFO mem:spread | sed -n 2p)" "$(cli ZCARD mem:zlog)" <<'EOF'
import statistics, sys
path, burst, spread, zset, count_burst, count_spread, count_zset = sys.argv[1:]
rows = {}
for line in open(path):
    rnd, name, rps, cpu = line.strip().split("|")
    rows.setdefault(name, {})[int(rnd)] = (float(rps or "nan"), float(cpu))
names = list(rows)

def ratio(a, b, i):
    """Median over rounds of a/b (rps), or of b/a (CPU per request)."""
    per = []
    for r, va in rows[a].items():
        vb = rows[b].get(r)
        if vb:
            per.append(va[i] / vb[i] if i == 0 else vb[i] / va[i])
    return statistics.median(per) if per else float("nan")

print(f"{'command':<26}{'median rps':>12}{'x INCR':>9}{'server us/req':>15}{'x INCR':>9}{'server busy':>13}")
for name in names:
    rps = statistics.median(v[0] for v in rows[name].values())
    cpu = statistics.median(v[1] for v in rows[name].values())
    busy = statistics.median(v[0] * v[1] / 1e6 for v in rows[name].values())
    print(f"{name:<26}{rps:>12,.0f}{ratio(name, 'INCR', 0):>9.2f}{cpu:>15.2f}{ratio(name, 'INCR', 1):>9.2f}{busy:>12.0%}")
print("x INCR: throughput ratio; for server us/req, INCR's CPU per request over this one's.")
print("server busy: rps x us/req; well under 100% means the benchmark client, not the")
print("server, set the pace.")
print()

mb, lb = burst.split("|")
ms, ls = spread.split("|")
checks = [
    ("RATELIMIT.CHECK / INCR, rps", ratio("RATELIMIT.CHECK", "INCR", 0), ">=", 0.65),
    ("RATELIMIT.CHECK / INCR, server CPU", ratio("RATELIMIT.CHECK", "INCR", 1), ">=", 0.65),
    ("RATELIMIT.CHECK / Lua log, rps, fresh ids", ratio("RATELIMIT.CHECK", "Lua sliding log", 0), ">=", 5.0),
    ("RATELIMIT.CHECK / Lua log, rps, ~100 held", ratio("CHECK, ~100 held", "Lua log, ~100 held", 0), ">=", 5.0),
    ("RATELIMIT.ACQUIRE / INCR, rps", ratio("RATELIMIT.ACQUIRE", "INCR", 0), ">=", 0.5),
    ("CHECK two windows / CHECK one window, rps", ratio("CHECK, two windows", "RATELIMIT.CHECK", 0), ">=", 0.9),
    ("CHECKALL of 3 / CHECK, limiter checks per s (3x calls)", 3 * ratio("CHECKALL, 3 limiters", "RATELIMIT.CHECK", 0), ">=", 1.5),
    ("CHECKALL of 3 / CHECK, calls per s", ratio("CHECKALL, 3 limiters", "RATELIMIT.CHECK", 0), ">=", 0.5),
    ("RATELIMIT.REFUND / INCR, rps (mostly nothing to refund)", ratio("RATELIMIT.REFUND", "INCR", 0), "", None),
    ("CACHE.GETUSER / GET, rps", ratio("CACHE.GETUSER", "GET", 0), ">=", 0.85),
    ("CACHE.GETUSER / GET, server CPU", ratio("CACHE.GETUSER", "GET", 1), ">=", 0.85),
    (f"MEMORY USAGE limiter, {count_burst} requests in a burst ({lb} B value)", int(mb), "<=", 600),
    (f"MEMORY USAGE limiter, {count_spread} requests 500 ms apart ({ls} B value)", int(ms), "<=", 600),
    (f"MEMORY USAGE ZSET log, {count_zset} requests", int(zset), "", None),
]
if "CL.THROTTLE (redis-cell)" in rows:
    checks.insert(4, ("RATELIMIT.CHECK / CL.THROTTLE (redis-cell), rps",
                      ratio("RATELIMIT.CHECK", "CL.THROTTLE (redis-cell)", 0), "", None))
    checks.insert(5, ("RATELIMIT.ACQUIRE / CL.THROTTLE (redis-cell), rps",
                      ratio("RATELIMIT.ACQUIRE", "CL.THROTTLE (redis-cell)", 0), ">=", 1.3))
print(f"{'figure':<66}{'measured':>10}  target")
for label, value, op, target in checks:
    shown = f"{value:.2f}" if isinstance(value, float) else str(value)
    if target is None:
        verdict = "(reference)"
    else:
        ok = value >= target if op == ">=" else value <= target
        verdict = f"{op} {target}  {'met' if ok else 'MISSED'}"
    print(f"{label:<66}{shown:>10}  {verdict}")
EOF
