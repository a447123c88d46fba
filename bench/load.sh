#!/usr/bin/env bash
# The load comparison in one command (perfhook and the peer receivers, same signed load):
#   bench/load.sh [--peers "null A-noexec B C-fastify"] [--runs 3] [--preload 1000000]
# See bench/load.py for what it measures and how.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || true
exec python3 bench/load.py "$@"
