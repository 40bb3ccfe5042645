#!/usr/bin/env bash
# perf/all.sh — every perf/ measurement in a row, then every metric=value
# summary line: run.sh (maximum rate, appliance vs C reference), more.sh
# (frame-size sweep, zero-drop, CPU/memory, lanes, 802.3ad with Open
# vSwitch), bafailover (active-backup outage, with a per-ms series), balacp
# (802.3ad timings), baplot (PNG plots). Root only, ~10 min. Outputs and
# each tool's full output in OUT (perf/out, git-ignored).
#
#   sudo perf/all.sh
#   sudo SKIP="run balacp" perf/all.sh
#
# Environment: SKIP (tools to leave out: run more failover balacp plot), OUT,
# and the tools' own variables (PERF_SECONDS applies to run.sh and more.sh).
set -Euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${OUT:-$HERE/out}
SKIP=${SKIP:-}
mkdir -p "$OUT"
export OUT
[[ $EUID -eq 0 ]] || { echo "all.sh: needs root" >&2; exit 1; }
skip() { [[ " $SKIP " == *" $1 "* ]]; }
FAILED=()
step() { # step NAME CMD...: run, output to OUT/NAME.txt, remember failures
	local name=$1
	shift
	echo "# all.sh: $name" >&2
	if ! "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
		FAILED+=("$name")
		echo "# all.sh: $name failed, see $OUT/$name.err" >&2
	fi
}

cd "$ROOT"
make -s build >&2
go build -o "$OUT/bafailover" ./perf/cmd/bafailover
go build -o "$OUT/balacp" ./perf/cmd/balacp
go build -o "$OUT/baplot" ./perf/cmd/baplot

skip run || step run "$HERE/run.sh"
skip more || step more "$HERE/more.sh"
# the tool pinned to CPU 0, away from the appliance's lane (see bafailover -cpu)
skip failover || step failover "$OUT/bafailover" -binary bin/bond-appliance -cpu 0 -series "$OUT/failover.csv"
skip balacp || step balacp "$OUT/balacp" -binary bin/bond-appliance
skip plot || step plot "$OUT/baplot" -sizes "$OUT/sizes.csv" -failover "$OUT/failover.csv" -out "$OUT"
# host path vs plain veth (perf/hostpath.sh): peers as veths (TSO, the default), then wire-like peers with the lane-only path too; perf=hostpath lines in OUT/hostpath*.txt
skip hostpath || step hostpath "$HERE/hostpath.sh"
skip hostpath || PEER_OFFLOADS=off FAST_PATH=auto,off step hostpath-wire "$HERE/hostpath.sh"

echo
echo "== summary (full outputs in $OUT) =="
for f in run more failover balacp plot hostpath hostpath-wire; do
	[[ -s $OUT/$f.txt ]] || continue
	grep -E '^[a-z_]+(=[^ ]+)?( [a-z0-9_]+=[^ ]*)+$' "$OUT/$f.txt" || true
done
if ((${#FAILED[@]})); then
	echo "failed: ${FAILED[*]}"
	exit 1
fi
