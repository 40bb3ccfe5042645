#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Kernel pktgen traffic for a line-rate lab, in the style of the kernel's
# samples/pktgen scripts (pktgen_sample05_flow_per_thread.sh): one pktgen
# thread per CPU, each bound to its own TX queue, UDP/IPv4 frames of one size
# over many flows (UDP source ports and source addresses), in bursts.
#
# It is NOT used by perf/run.sh (which needs no pktgen); see perf/README.md
# ("Real line-rate lab") for where to run it and how to read the appliance's
# counters against it.
#
# Usage (root, `modprobe pktgen`):
#   pktgen_bond.sh -i DEV -m DST_MAC [-d DST_IP] [-s SIZE] [-n FLOWS] [-a ADDRS] [-t THREADS]
#                  [-f FIRST_CPU] [-b BURST] [-r PPS_PER_THREAD] [-c COUNT] [-D SECONDS]
#                  [-q] [-x start_xmit|queue_xmit] [-v]
#
#   -i DEV     output device (a NIC port of the generator box, or bond0 on the
#              gateway to load the appliance from the host side)
#   -m MAC     destination MAC: the bond's MAC for members->host traffic
#   -d IP      destination IPv4 (default 198.18.0.2, the lab's host address)
#   -s SIZE    frame size on the wire INCLUDING the 4-byte FCS (default 64);
#              pktgen's pkt_size is SIZE-4, as in the kernel samples (60 = 64B)
#   -n FLOWS   flows: UDP source ports 1024..1024+FLOWS-1, cycled (default 1024,
#              max 64511): what layer3+4 hashes
#   -a ADDRS   source addresses 198.19.0.1.. (default 1), picked at random per
#              frame: what layer2+3 hashes (random, so that address and port
#              do not change in step, which would defeat the layer3+4 hash)
#   -t N       threads (default 1); thread k runs on CPU FIRST_CPU+k
#   -f CPU     first CPU (default 0)
#   -b BURST   frames per xmit burst (default 32; 0 disables bursting)
#   -r PPS     rate limit per thread in packets/s (default 0: line rate)
#   -c COUNT   frames per thread (default 0: until -D or Ctrl-C)
#   -D SECS    stop after SECS seconds (default 0: until COUNT or Ctrl-C)
#   -q         per-queue threads: thread k transmits on TX queue k
#              (queue_map_min/max) instead of the queue of its CPU (QUEUE_MAP_CPU)
#   -x MODE    xmit_mode: start_xmit (default, driver direct) or queue_xmit (via qdisc)
#   -v         verbose
#
# Prints each thread's pktgen result and one summary line:
#   pktgen=bond dev=... size=... threads=... pps=... mpps=... gbps=...
set -o errexit -o pipefail

PGDIR=/proc/net/pktgen
DEV=""
DST_MAC=""
DST_IP=198.18.0.2
SIZE=64
FLOWS=1024
ADDRS=1
THREADS=1
F_THREAD=0
BURST=32
RATEP=0
COUNT=0
DURATION=0
PERQUEUE=0
XMIT=start_xmit
VERBOSE=0

err() { echo "ERROR: $*" >&2; exit 1; }
info() { [[ $VERBOSE -eq 1 ]] && echo "INFO: $*" >&2 || true; }

usage() { sed -n '/^# Usage/,/^# Prints/p' "$0" >&2; exit 2; }

while getopts "i:m:d:s:n:a:t:f:b:r:c:D:qx:vh" opt; do
	case $opt in
	i) DEV=$OPTARG ;;
	m) DST_MAC=$OPTARG ;;
	d) DST_IP=$OPTARG ;;
	s) SIZE=$OPTARG ;;
	n) FLOWS=$OPTARG ;;
	a) ADDRS=$OPTARG ;;
	t) THREADS=$OPTARG ;;
	f) F_THREAD=$OPTARG ;;
	b) BURST=$OPTARG ;;
	r) RATEP=$OPTARG ;;
	c) COUNT=$OPTARG ;;
	D) DURATION=$OPTARG ;;
	q) PERQUEUE=1 ;;
	x) XMIT=$OPTARG ;;
	v) VERBOSE=1 ;;
	*) usage ;;
	esac
done
[[ -n $DEV && -n $DST_MAC ]] || usage
[[ $EUID -eq 0 ]] || err "run as root"
[[ -d $PGDIR ]] || modprobe pktgen || err "no pktgen (modprobe pktgen; CONFIG_NET_PKTGEN)"
[[ -d /sys/class/net/$DEV ]] || err "no device $DEV"
((SIZE >= 64)) || err "size $SIZE: at least 64 (with FCS)"
((FLOWS >= 1 && FLOWS <= 64511)) || err "flows 1..64511"
((ADDRS >= 1 && ADDRS <= 65535)) || err "addresses 1..65535"
L_THREAD=$((F_THREAD + THREADS - 1))
PKT_SIZE=$((SIZE - 4))
NTXQ=$(ls -d /sys/class/net/"$DEV"/queues/tx-* | wc -l)
((PERQUEUE == 0 || THREADS <= NTXQ)) || err "$THREADS per-queue threads but $DEV has $NTXQ TX queues"

# pg_set FILE CMD: write a pktgen command and check its result
pg_set() {
	local f=$1
	shift
	info "$f: $*"
	echo "$*" >"$f"
	if [[ $f != "$PGDIR/pgctrl" ]] && ! grep -q "Result: OK:" "$f"; then
		err "$f: '$*' failed: $(grep Result: "$f")"
	fi
}
pg_ctrl() { echo "$1" >"$PGDIR/pgctrl"; }

# the last of N source addresses from 198.19.0.1
src_max() {
	echo "198.19.$(($1 / 256)).$(($1 % 256))"
}

pg_ctrl reset
for ((thread = F_THREAD; thread <= L_THREAD; thread++)); do
	dev=$DEV@$thread
	k=$((thread - F_THREAD))
	pg_set "$PGDIR/kpktgend_$thread" "rem_device_all"
	pg_set "$PGDIR/kpktgend_$thread" "add_device $dev"
	f=$PGDIR/$dev
	if ((PERQUEUE)); then
		pg_set "$f" "queue_map_min $k"
		pg_set "$f" "queue_map_max $k"
	else
		pg_set "$f" "flag QUEUE_MAP_CPU"
	fi
	pg_set "$f" "count $COUNT"
	pg_set "$f" "clone_skb 0"
	pg_set "$f" "pkt_size $PKT_SIZE"
	pg_set "$f" "delay 0"
	pg_set "$f" "flag NO_TIMESTAMP"
	pg_set "$f" "xmit_mode $XMIT"
	pg_set "$f" "dst_mac $DST_MAC"
	pg_set "$f" "dst $DST_IP"
	# FLOWS source ports (pktgen's udp_src_max is exclusive), stepping per frame
	pg_set "$f" "udp_src_min 1024"
	pg_set "$f" "udp_src_max $((1024 + FLOWS))"
	pg_set "$f" "udp_dst_min 9"
	pg_set "$f" "udp_dst_max 9"
	pg_set "$f" "src_min 198.19.0.1"
	pg_set "$f" "src_max $(src_max "$ADDRS")"
	if ((ADDRS > 1)); then
		pg_set "$f" "flag IPSRC_RND"
	fi
	if ((BURST > 0)); then
		pg_set "$f" "burst $BURST"
	fi
	if ((RATEP > 0)); then
		pg_set "$f" "ratep $RATEP"
	fi
done

print_result() {
	local thread dev total=0 pps
	for ((thread = F_THREAD; thread <= L_THREAD; thread++)); do
		dev=$DEV@$thread
		echo "Device: $dev"
		grep -A2 "Result:" "$PGDIR/$dev"
		pps=$(grep -o '[0-9]*pps' "$PGDIR/$dev" | head -1 | tr -d pps)
		total=$((total + ${pps:-0}))
	done
	awk -v p="$total" -v s="$SIZE" -v d="$DEV" -v t="$THREADS" 'BEGIN {
		printf "pktgen=bond dev=%s size=%d threads=%d pps=%d mpps=%.3f gbps=%.3f\n", d, s, t, p, p / 1e6, p * s * 8 / 1e9 }'
}

trap true SIGINT
echo "Running on $DEV: $THREADS thread(s) from CPU $F_THREAD, $SIZE-byte frames, $FLOWS flows, burst $BURST... Ctrl-C to stop" >&2
if ((DURATION > 0)); then
	(sleep "$DURATION" && pg_ctrl stop) &
	stopper=$!
fi
pg_ctrl start || true
[[ -n ${stopper:-} ]] && kill "$stopper" 2>/dev/null || true
print_result
