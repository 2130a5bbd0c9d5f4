#!/usr/bin/env bash
# Installs what building and testing cachekit needs on Debian 12 (bookworm):
# redis-server 7.0, valkey-server 8 (bookworm-backports), libclang for bindgen,
# redis-tools, python3 with venv, and gcc. Idempotent; needs root. Prints what to install otherwise.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a Rust toolchain first (https://rustup.rs, or Debian's cargo package)" >&2
  exit 1
fi

# With --run: only what building the module and `make run` need.
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need+=(libclang-dev)
# The C compiler links the module and builds a small second module the tests load.
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ "${1:-}" != "--run" ]; then
  command -v valkey-server >/dev/null 2>&1 || need+=(valkey)
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  # The Python package's tests run in a virtualenv (Debian splits venv/ensurepip out).
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cachekit needs: ${need[*]/#valkey/valkey-server valkey-tools}" >&2
  echo "On Debian 12 as root: apt-get install redis-server redis-tools libclang-dev python3 python3-venv gcc" >&2
  echo "and valkey-server valkey-tools from bookworm-backports (apt-get install -t bookworm-backports valkey-server valkey-tools)." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
backports=/etc/apt/sources.list.d/cachekit-backports.sources
if [[ " ${need[*]} " == *" valkey "* ]] && [ ! -f "$backports" ] \
   && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  # Reuse the machine's own mirror: copy the first stanza of debian.sources
  # with the suite switched to bookworm-backports.
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    awk 'BEGIN{RS=""; ORS="\n"} NR==1{print; exit}' "$src" \
      | sed -E 's/^Suites:.*/Suites: bookworm-backports/' > "$backports"
  else
    echo "cannot find $src to derive a bookworm-backports source; add one by hand" >&2
    exit 1
  fi
fi

apt-get update -qq
pkgs=()
for p in "${need[@]}"; do
  case "$p" in
    valkey) ;;
    *) pkgs+=("$p") ;;
  esac
done
if [ ${#pkgs[@]} -gt 0 ]; then
  apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
if [[ " ${need[*]} " == *" valkey "* ]]; then
  apt-get install -y -qq -t bookworm-backports valkey-server valkey-tools >/dev/null
fi
# Debian starts the services it installs; cachekit's tests start their own.
for svc in redis-server valkey-server; do
  if command -v systemctl >/dev/null 2>&1; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
done
echo "installed: ${need[*]}"
