#!/usr/bin/env bash
# The long soak test: 16 random readers, an rsync -a loop and an ls -lR loop on a mount
# of 300 recordings for SECONDS (default 300), every byte checked against the fixtures;
# prints reads, bytes verified and the daemon's peak RSS. The test suite runs the same
# test for 15 seconds.
#
#   scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SALVAGEFS_SOAK_SECS=${1:-300} cargo test --release --test soak -- --nocapture 2>&1 |
    grep -E '^soak:|test result|panicked'
