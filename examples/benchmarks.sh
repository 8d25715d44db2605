#!/usr/bin/env bash
# Builds this checkout (and, when given, a baseline commit in a second
# worktree), then runs examples/bench.rs with every server pinned to CPU 0 and
# the load generator pinned to CPU 1. Prints the table kept in BENCHMARKS.md.
#
#   examples/benchmarks.sh [BASELINE_COMMIT] [-- extra flags for bench]
#
# PostgreSQL is measured too when it answers on 127.0.0.1:5432, and several
# nodes when Redis answers on 127.0.0.1:6379 as well.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  baseline=$1
  shift
fi
[ "${1:-}" = "--" ] && shift

cargo build --release --locked --bin switchboard --example bench --example echo_server
args=(--server target/release/switchboard --echo target/release/examples/echo_server)
if [ -n "$baseline" ]; then
  dir=../switchboard-baseline
  [ -d "$dir" ] || git worktree add --detach "$dir" "$baseline"
  git -C "$dir" checkout -q --detach "$baseline"
  (cd "$dir" && cargo build --release --locked --bin switchboard)
  args+=(--baseline "$dir/target/release/switchboard")
fi
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  args+=(--postgres postgres://postgres@127.0.0.1:5432/test)
  # Several nodes need PostgreSQL and Redis.
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    args+=(--redis redis://127.0.0.1:6379)
  fi
fi
exec taskset -c 1 target/release/examples/bench "${args[@]}" "$@"
