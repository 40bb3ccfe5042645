#!/usr/bin/env bash
# perf/hostpath.sh — the host path the way users see it: iperf3 TCP and ping
# RTT between the gateway's host stack and a peer, through the appliance and
# through a plain veth pair between the same namespaces (same run), for
# active-backup, balance-xor and 802.3ad (Open vSwitch partner). Root only;
# builds the appliance (when stale) and perf/cmd/bahost, which creates and
# removes its own namespaces (also on Ctrl-C). See perf/README.md.
#
#   sudo perf/hostpath.sh                                  # quick: 3 s per iperf3 run, once
#   sudo PERF_SECONDS=10 PERF_REPEAT=3 IDLE_SECONDS=10 perf/hostpath.sh   # the full measurement
#
# Environment: PERF_SECONDS (3), PERF_REPEAT (1: median of that many
# iperf3 runs), PINGS (1000, 1 ms apart), IDLE_SECONDS (3), GEN_CPU (0:
# iperf3 and ping), LANE_CPU (1: the appliance), MODES
# (active-backup,balance-xor,802.3ad), FAST_PATH (auto; auto,off with
# PEER_OFFLOADS=off: dataplane.fast_path
# values, each measured in the same run; rows of off are marked [fast_path
# off]), HOST_DEVICE (veth; tap runs the appliance with host_device tap,
# rows marked [tap], FAST_PATH then defaults to auto alone), POLLS
# (adaptive,busy), RETRIES (1), THROUGHPUT=0 (ping and
# idle CPU only), BIN (bin/bond-appliance, rebuilt with `make build` when
# older than the sources), PEER_OFFLOADS (on: the peer side transmits as a
# veth does, TSO super-frames; off: wire-like; members' peer ports and the
# baseline's peer end alike), KEEP=1 keeps the work directory.
set -Eeuo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/bin/bond-appliance}
die() { echo "hostpath.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "needs root (namespaces, XDP, AF_XDP)"
for c in go ip iperf3 ping taskset ethtool; do
	command -v "$c" >/dev/null || die "missing $c"
done
if [[ ${MODES:-802.3ad} == *802.3ad* ]]; then
	command -v ovs-vswitchd >/dev/null || die "802.3ad needs Open vSwitch (Debian openvswitch-switch), or MODES without it"
fi
WORK=$(mktemp -d /tmp/ba-hostpath.XXXXXX)
cleanup() {
	local rc=$?
	if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then
		echo "hostpath.sh: logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [[ ! -x $BIN ]] || [[ -n $(find "$ROOT/appliance" "$ROOT/cmd" "$ROOT/umem" "$ROOT/rings" "$ROOT/policy" -name '*.go' -newer "$BIN" 2>/dev/null | head -1) ]]; then
	make -s -C "$ROOT" build >&2
fi
(cd "$ROOT" && go build -o "$WORK/bahost" ./perf/cmd/bahost)
# a private copy: a rebuild of bin/ during the run changes nothing
cp "$BIN" "$WORK/bond-appliance"
# bahost tears down its namespaces itself, on every exit path
"$WORK/bahost" -binary "$WORK/bond-appliance" -work "$WORK/run"
