#!/usr/bin/env bash
# The full-disk check (needs root: it mounts a small tmpfs). See bench/disk_full.py.
#   bench/disk_full.sh [--full-seconds 60]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
exec python3 bench/disk_full.py --binary target/release/perfhook "$@"
