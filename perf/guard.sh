#!/usr/bin/env bash
# Regression guard: runs the short hot-path benchmarks (no root needed) and
# compares them with the committed baseline using benchstat; exits 1 when a
# benchmark is more than 10% slower (or allocates where it did not).
#   perf/guard.sh            compare against perf/baseline/bench.txt
#   perf/guard.sh --update   rewrite the baseline (commit it with a note of the machine)
# Not part of `make test`: timing on shared machines is too noisy to gate CI.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH='Benchmark(Hash|SelectXOR|RoundRobin|LaneXOR|LaneTLB|Fill|RX|SPSC|Alloc|DecodeLACPDU|EncodeLACPDU)'
PKGS="./policy ./appliance/lane ./rings ./umem ./lacp"
COUNT=${COUNT:-6}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench "$BENCH" -benchmem -count "$COUNT" $PKGS | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >"$out"
if [ "${1:-}" = "--update" ]; then
	cp "$out" perf/baseline/bench.txt
	echo "baseline updated: perf/baseline/bench.txt"
	exit 0
fi
BENCHSTAT="go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
report=$($BENCHSTAT -format csv perf/baseline/bench.txt "$out" 2>/dev/null || true)
$BENCHSTAT perf/baseline/bench.txt "$out"
# flag rows whose time/op delta is above +10% (benchstat prints only significant deltas)
bad=$(awk -F, 'NF>=7 && $1 ~ /^Benchmark|^[A-Z]/ && $(NF-1) ~ /^\+/ { d=$(NF-1); gsub(/[+%]/,"",d); if (d+0 > 10) print $1" "$(NF-1) }' <<<"$report")
allocs=$(grep -E ' [1-9][0-9]* allocs/op' "$out" || true)
if [ -n "$bad" ] || [ -n "$allocs" ]; then
	echo "REGRESSION:"; [ -n "$bad" ] && echo "$bad"; [ -n "$allocs" ] && echo "allocations on the hot path:" && echo "$allocs"
	echo "guard regressions=1"
	exit 1
fi
echo "guard regressions=0"
