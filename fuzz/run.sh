#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, one after another, starting from the
# committed seeds and the local corpus; stops with exit 1 at the first finding (a crash, a
# broken invariant, or an input slower than 10 s), which libFuzzer saves under artifacts/.
#
#   fuzz/run.sh                  # 25 s per target, no sanitizer: what CI runs (stable Rust)
#   fuzz/run.sh --asan 600       # 10 min per target under AddressSanitizer
#   fuzz/run.sh --asan 600 verify event    # only these targets
#
# Prints one line per target: executions, coverage (libFuzzer's `cov`), corpus size.
set -euo pipefail
cd "$(dirname "$0")"

sanitizer=(-s none)
bootstrap=()
if [ "${1:-}" = "--asan" ]; then
  # cargo-fuzz passes -Zsanitizer=address; stable rustc accepts it with RUSTC_BOOTSTRAP.
  sanitizer=()
  bootstrap=(env RUSTC_BOOTSTRAP=1)
  shift
fi
seconds=${1:-25}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

logs=$(mktemp -d)
"${bootstrap[@]}" cargo fuzz build "${sanitizer[@]}" >"$logs/build.log" 2>&1 || {
  cat "$logs/build.log"
  exit 2
}
status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="$logs/$target.log"
  extra=()
  leaks=1
  # sled frees memory through deferred (epoch-based) reclamation on its own threads, so
  # LeakSanitizer sometimes sees blocks that are freed moments later, or still held by
  # them at exit; the report did not reproduce on replay. Every other target keeps it.
  if [ "$target" = store_model ]; then
    extra+=(-detect_leaks=0)
    leaks=0
  fi
  if ASAN_OPTIONS="detect_leaks=$leaks" "${bootstrap[@]}" cargo fuzz run "${sanitizer[@]}" "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FINDING
    status=1
  fi
  # `|| true`: a target that fails before its first report prints no figures, and under
  # `pipefail` an empty grep would end the script here, silently, before the finding is shown.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  corpus=$(find "corpus/$target" -type f | wc -l)
  printf '%-18s %-8s %12s execs  cov %6s  corpus %6s  (%s s)\n' \
    "$target" "$result" "${execs:-?}" "${cov:-?}" "$corpus" "$seconds"
  if [ "$result" = FINDING ]; then
    grep -E -A 12 'panicked|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY' "$log" | head -n 40
    ls -1 "artifacts/$target" 2>/dev/null | sed 's/^/  artifact: /'
    break
  fi
done
rm -rf "$logs"
exit "$status"
