# Sourced by the benchmark scripts, from the repository root: a server with
# the module on a free loopback port and a scratch directory, stopped by its
# PID on exit. Before sourcing set NAME (for messages); after it, `dir` is
# the scratch directory, and `start_server` starts the server.

SERVER=${SERVER:-redis-server}
BENCH=${BENCH:-redis-benchmark}
MODULE=$PWD/target/release/libcachekit.so

need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$NAME: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
  done
  [ -f "$MODULE" ] || { echo "$NAME: $MODULE missing; run cargo build --release" >&2; exit 1; }
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/cachekit-$NAME.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

cli() { redis-cli -p "$port" "$@"; }

# start_server <seconds to wait> <server command...>: the command (a server,
# or a wrapper such as taskset or valgrind that execs it, so that $! is the
# server's own PID) gets the port, the directory, the module and then
# `extra_server_args` (an array, empty unless the caller sets it); waits
# until the server answers PING.
extra_server_args=()
start_server() {
  local wait_s=$1 i
  shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$@" --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize no --logfile server.log --loadmodule "$MODULE" "${extra_server_args[@]}" >"$dir/stdout.log" 2>&1 &
  server_pid=$!
  for ((i = 0; i < wait_s * 10; i++)); do
    [ "$(cli PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "$NAME: server did not start" >&2
  cat "$dir/server.log" "$dir/stdout.log" >&2 2>/dev/null
  exit 1
}
