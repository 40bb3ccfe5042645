#!/usr/bin/env bash
# perf/run.sh — forwarding measurements of the appliance against a C reference
# AF_XDP forwarder, in network namespaces on veth, without kernel pktgen.
# Root only. Takes a few minutes; see perf/README.md for how to read it.
#
#   sudo perf/run.sh
#
# Environment: PERF_SECONDS (5) length of each run, GEN_CPU (0) generator
# core, LANE_CPU (1) appliance lane / reference forwarder core, SIZES
# ("64 1500") frame sizes with FCS, 64..9018: sizes above 1518 run at MTU
# 9000 (the devices, the appliance's bond `mtu: 9000`, whose lanes then
# carry AF_XDP multi-buffer chains, and `xskfwd --sg`), FLOWS (1024),
# FAST_PATH (off: dataplane.fast_path of the appliance; off measures its
# AF_XDP lane against the C forwarder, auto lets balance-xor frames take the
# kernel's XDP redirect fast path at MTU 1500), RATE (0: as fast as the
# generator goes) offered load of the forwarding runs in frames/s, RETRIES
# (2) re-runs of a measurement that other processes disturbed, GEN_MODE
# (auto: bagen gen's BPF_PROG_RUN live frames when the kernel allows them,
# else its AF_XDP TX generator; live; xsk), BIN
# (bin/bond-appliance, built with `make build` when missing or older than
# the sources), BATOPO_BIN (a prebuilt batopo instead of this tree's: one
# built from the same commit as an older BIN writes a config that binary
# understands), KEEP=1 keeps the work directory (logs, status JSON),
# PROFILE=1 records the forwarding core with `perf record` during the first
# frame size's forwarding runs (Debian package linux-perf) and reports where
# its time went.
set -Eeuo pipefail
trap 'echo "run.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

SECS=${PERF_SECONDS:-5}
GEN_CPU=${GEN_CPU:-0}
LANE_CPU=${LANE_CPU:-1}
SIZES=${SIZES:-"64 1500"}
FLOWS=${FLOWS:-1024}
FAST_PATH=${FAST_PATH:-off}
GEN_MODE=${GEN_MODE:-auto}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/bin/bond-appliance}

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }

[[ $EUID -eq 0 ]] || die "needs root (namespaces, XDP, AF_XDP)"
for c in go ip ethtool make cc taskset awk; do
	command -v "$c" >/dev/null || die "missing $c"
done
(( $(nproc) > LANE_CPU && $(nproc) > GEN_CPU )) || die "needs CPUs $GEN_CPU and $LANE_CPU"
case $FAST_PATH in auto | off) ;; *) die "FAST_PATH=$FAST_PATH: must be auto or off" ;; esac

# mtu_of SIZE: the MTU a frame of SIZE bytes (with FCS) needs: 1500, or
# 9000 for jumbo frames (SIZE - 18 above 1500: Ethernet header and FCS)
mtu_of() {
	[[ $1 =~ ^[0-9]+$ ]] && (($1 >= 64 && $1 <= 9018)) || die "SIZES: $1 is not a frame size 64..9018 (bytes with FCS)"
	if (($1 - 18 > 1500)); then echo 9000; else echo 1500; fi
}
# MTUS: the MTUs SIZES needs, in order of first use; sizes_at MTU: its sizes
MTUS=""
for size in $SIZES; do
	m=$(mtu_of "$size")
	[[ " $MTUS " == *" $m "* ]] || MTUS+="${MTUS:+ }$m"
done
sizes_at() {
	local s out=""
	for s in $SIZES; do
		[[ $(mtu_of "$s") == "$1" ]] && out+="${out:+ }$s"
	done
	echo "$out"
}
# gbps MPPS SIZE: Gbit/s of MPPS frames of SIZE bytes on the wire, FCS
# counted, preamble and inter-frame gap (20 bytes) not
gbps() { awk -v m="${1:-0}" -v s="$2" 'BEGIN { printf "%.3f", m * s * 8 / 1000 }'; }

WORK=$(mktemp -d /tmp/ba-perf.XXXXXX)
PIDS=()   # background processes we started
NETNS=()  # namespaces we created with ip netns add
TOPOS=()  # "GW PEER" pairs created by batopo

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	local t
	for t in "${TOPOS[@]}"; do
		# shellcheck disable=SC2086
		"$WORK/batopo" down $t 2>/dev/null || true
	done
	for t in "${NETNS[@]}"; do
		ip netns del "$t" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 || $rc -ne 0 ]]; then
		echo "run.sh: logs kept in $WORK" >&2
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ----
log "building into $WORK"
if [[ ! -x $BIN ]] || [[ -n $(find "$ROOT/appliance" "$ROOT/cmd" "$ROOT/umem" "$ROOT/rings" "$ROOT/policy" -name '*.go' -newer "$BIN" 2>/dev/null | head -1) ]]; then
	make -s -C "$ROOT" build >&2
fi
(cd "$ROOT" && go build -o "$WORK/bagen" ./perf/cmd/bagen)
if [[ -n ${BATOPO_BIN:-} ]]; then
	cp "$BATOPO_BIN" "$WORK/batopo"
else
	(cd "$ROOT" && go build -o "$WORK/batopo" ./perf/cmd/batopo)
fi
make -s -C "$ROOT/perf/ref" OUT="$WORK/xskfwd" >&2
# run a private copy: a rebuild of bin/ during the run changes nothing (and
# perf keeps resolving the appliance's symbols)
cp "$BIN" "$WORK/bond-appliance"
BIN=$WORK/bond-appliance
BAGEN=$WORK/bagen
BATOPO=$WORK/batopo
XSKFWD=$WORK/xskfwd

# kv KEY LINE: the value of KEY in a metric=value line
kv() {
	local k=$1
	shift
	tr ' ' '\n' <<<"$*" | sed -n "s/^$k=//p" | head -1
}
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

# foreign_ticks: CPU time (clock ticks) used so far by every process outside
# this script's process group (our generator, sinks, appliance and forwarder
# are all in it), kernel threads excluded; reaped children count in their
# parents' cutime/cstime, so the difference of two samples is the CPU time
# other work on the machine took during the window.
PGRP=$(awk '{ sub(/^.*\) /, ""); print $3 }' /proc/$$/stat)
HZ=$(getconf CLK_TCK)
foreign_ticks() {
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pg="$PGRP" '{
		pid = $1; sub(/^.*\) /, "")
		# now $2 = ppid, $3 = pgrp, $12..$15 = utime stime cutime cstime
		if (pid == 2 || $2 == 2 || $3 == pg) next
		t += $12 + $13 + $14 + $15
	} END { print t + 0 }'
}

# busiest_tid PID: the thread of PID that used the most CPU (the busy-polling
# lane or forwarder loop)
busiest_tid() {
	local t best=$1 max=-1 c
	for t in /proc/"$1"/task/*; do
		c=$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null || echo 0)
		if ((c > max)); then
			max=$c
			best=${t##*/}
		fi
	done
	echo "$best"
}

# proc_ticks PID: CPU time (clock ticks, user + system) of a process so far
proc_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$1"/stat 2>/dev/null || echo 0
}

# runq_ms PID [TID]: run-queue wait (runnable, not running) of a thread so
# far, in ms; the forwarding loop's wait shows CPU contention from elsewhere
runq_ms() {
	awk '{ printf "%.1f", $2 / 1e6 }' /proc/"$1"/task/"${2:-$1}"/schedstat 2>/dev/null || echo 0
}

# start_bg LOGFILE CMD...: start CMD in the background, remember its PID in BG
start_bg() {
	local out=$1
	shift
	"$@" >"$out" 2>"$out.err" &
	BG=$!
	PIDS+=("$BG")
}

# wait_pid PID: wait for a background process we started
wait_pid() {
	wait "$1" || true
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

# ref_counters PID: ask the reference forwarder (SIGUSR1) for its counters
# and print the line it writes to $REF_LOG
ref_counters() {
	local n i
	n=$(grep -c xskfwd-counters "$REF_LOG" || true)
	kill -USR1 "$1"
	for i in $(seq 50); do
		if (($(grep -c xskfwd-counters "$REF_LOG" || true) > n)); then
			grep xskfwd-counters "$REF_LOG" | tail -1
			return
		fi
		sleep 0.1
	done
	die "reference forwarder did not answer SIGUSR1"
}

# profile DIR: summarize DIR/perf.data (where the forwarding core's time
# went) into DIR/perf.txt (top symbols) and DIR/perf.split (one line)
profile() {
	local d=$1
	[[ -s $d/perf.data ]] || return 0
	perf report -i "$d/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -60 >"$d/perf.txt" || true
	perf report -i "$d/perf.data" --no-children --sort dso --stdio 2>/dev/null | awk '
		/^ +[0-9]/ { p = $1; sub(/%/, "", p); d = $2
			if (d ~ /kernel/) k += p; else if (d ~ /^bpf_prog/) b += p; else if (d ~ /bond-appliance|xskfwd/) u += p; else o += p }
		END { printf "kernel %.0f%%, forwarder user space %.0f%%, XDP programs %.0f%%, other %.0f%% (top symbols: perf.txt)", k, u, b, o }' >"$d/perf.split" || true
}

# stop_pid PID: let in-flight frames drain, then SIGTERM a consumer we
# started (it prints its summary on SIGTERM) and wait for it
stop_pid() {
	sleep 0.5
	kill -TERM "$1" 2>/dev/null || true
	wait_pid "$1"
}

# wait_for FILE PATTERN: wait (≤10 s) until FILE contains PATTERN
wait_for() {
	local i
	for i in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "timeout waiting for '$2' in $1: $(cat "$1" 2>/dev/null)"
}

# note_gen DIR: remember which generator bagen gen used (gen=live or
# gen=xsk in its summary, the reason on stderr) for the report
GEN_KIND=""
GEN_WHY=""
note_gen() {
	local k
	k=$(kv gen "$(cat "$1/gen")")
	if [[ -n $GEN_KIND && $k != "$GEN_KIND" ]]; then
		GEN_KIND="mixed"
	elif [[ $GEN_KIND != mixed ]]; then
		GEN_KIND=$k
	fi
	[[ -n $GEN_WHY ]] || GEN_WHY=$(grep -m1 'bagen gen: generator' "$1/gen.err" | sed 's/^bagen gen: generator //' || true)
}

ROWS=()
declare -A RES
SINK_EXTRA=() # more bagen sink options (perf/more.sh: --pass-slow on an LACP partner's ports)

# contended OTHER_MS GEN_WAIT_MS FWD_WAIT_MS NOTESVAR: a result is suspect
# when other work on the machine took more than 10% of a CPU during the run
# (shared or noisy machine); the run-queue waits of the generator and of the
# forwarding thread are shown with it (they also include our own softirq
# work deferred to ksoftirqd, so they are not a verdict on their own)
contended() {
	local -n nv=$4
	OTHER=$1
	if (($1 > SECS * 100)); then
		nv="CONTENDED: other processes used ${1} ms CPU (runq wait gen ${2} ms, fwd ${3} ms); $nv"
		CONT=1
	fi
}

# measure FUNC KEY ARGS...: run a measurement; while other processes disturbed
# it, run it again (RETRIES times at most) and keep the least disturbed run
RETRIES=${RETRIES:-2}
measure() {
	local fn=$1 key=$2 i best=-1 brow="" bres="" boff="" bns="" bcont=0 blost="" bcpu="" bbusy=""
	for ((i = 0; i <= RETRIES; i++)); do
		CONT=0
		OTHER=0
		"$fn" "${@:2}"
		if ((best < 0 || OTHER < best)); then
			best=$OTHER brow=$LAST_ROW bres=${RES[$key]} boff=${RES[$key.offered]:-} bns=${RES[$key.ns]:-} bcont=$CONT
			blost=${RES[$key.lost]:-} bcpu=${RES[$key.cpu]:-} bbusy=${RES[$key.busy]:-}
		fi
		((CONT)) || break
		((i < RETRIES)) && log "$key: other processes used ${OTHER} ms CPU during the run, measuring again"
	done
	ROWS+=("$brow")
	RES[$key]=$bres
	RES[$key.offered]=$boff
	RES[$key.ns]=$bns
	RES[$key.lost]=$blost
	RES[$key.cpu]=$bcpu
	RES[$key.busy]=$bbusy
	if ((bcont)); then
		RES[contended]=$((${RES[contended]:-0} + 1))
	fi
}

# row NAME SIZE OFFERED DELIVERED LOSS REORDER WAIT NOTES: delivered is
# followed by its Gbit/s (gbps)
row() {
	local g=-
	[[ $4 =~ ^[0-9.]+$ ]] && g=$(gbps "$4" "$2")
	LAST_ROW=$(printf '%-34s %5s %8s %10s %8s %7s %8s %9s  %s' "$1" "$2" "$3" "$4" "$g" "${@:5}")
}

# run_case KEY NAME SIZE SINK_NS SINK_DEVS GEN_NS GEN_DEVS FWD_PID FWD_KIND [gen args...]
#   FWD_KIND: appliance (FWD_PID, counters from $SOCKET), ref (FWD log in $FWD_LOG), none
run_case() {
	local key=$1 name=$2 size=$3 sns=$4 sdevs=$5 gns=$6 gdevs=$7 fpid=$8 fkind=$9
	shift 9
	local d=$WORK/$key
	mkdir -p "$d"
	[[ $fkind == appliance ]] && "$BIN" status --json --socket "$SOCKET" >"$d/status0.json"
	local w0=0 rc0="" ftid="" f0
	[[ $fpid != - ]] && ftid=$(busiest_tid "$fpid") && w0=$(runq_ms "$fpid" "$ftid")
	f0=$(foreign_ticks)
	local pt0=0 tw0
	[[ $fpid != - ]] && pt0=$(proc_ticks "$fpid")
	tw0=$(date +%s.%N)
	[[ $fkind == ref ]] && rc0=$(ref_counters "$fpid")
	start_bg "$d/sink" taskset -c "$GEN_CPU" "$BAGEN" sink --dev "$sdevs" --netns "$sns" --seconds $((SECS + 60)) "${SINK_EXTRA[@]}"
	local spid=$BG
	wait_for "$d/sink.err" "counting on"
	sleep 0.3
	local ppid=""
	if [[ ${PROFILE:-0} == 1 && $fpid != - && $size == "${SIZES%% *}" ]]; then
		# profile the forwarding core for the middle of the run
		start_bg "$d/perf.log" bash -c "sleep 1; exec perf record -C $LANE_CPU -g -o $d/perf.data -- sleep $((SECS > 3 ? SECS - 2 : 1))"
		ppid=$BG
	fi
	local rate=()
	if [[ $fkind != none && ${RATE:-0} != 0 ]]; then
		rate=(--rate "$RATE")
	fi
	"$BAGEN" gen --mode "$GEN_MODE" --dev "$gdevs" --netns "$gns" --size "$size" --flows "$FLOWS" --seconds "$SECS" --cpu "$GEN_CPU" "${rate[@]}" "$@" >"$d/gen" 2>"$d/gen.err" ||
		die "$name: generator failed: $(cat "$d/gen.err")"
	note_gen "$d"
	local other=$((($(foreign_ticks) - f0) * 1000 / HZ))
	local pt1=0 tw1
	[[ $fpid != - ]] && pt1=$(proc_ticks "$fpid")
	tw1=$(date +%s.%N)
	stop_pid "$spid"
	if [[ -n $ppid ]]; then
		wait_pid "$ppid"
		profile "$d"
	fi
	local g s
	g=$(cat "$d/gen")
	s=$(cat "$d/sink")
	[[ -n $s ]] || die "$name: sink printed nothing: $(cat "$d/sink.err")"
	local w=0 notes=""
	[[ $fpid != - ]] && w=$(calc "$(runq_ms "$fpid" "$ftid") - $w0" 0)
	if [[ $fkind == appliance ]]; then
		"$BIN" status --json --socket "$SOCKET" >"$d/status1.json"
		"$BATOPO" delta "$d/status0.json" "$d/status1.json" >"$d/delta"
		local dl
		dl=$(cat "$d/delta")
		if [[ $sdevs == bond0 ]]; then
			notes="appliance: members_rx=$(kv members_rx "$dl") host_tx=$(kv host_tx "$dl") members_xsk_rx_ring_full=$(kv members_xsk_rx_ring_full "$dl") host_drop_tx_full=$(kv host_drop_tx_full "$dl")"
		else
			notes="appliance: host_rx=$(kv host_rx "$dl") members_tx=$(kv members_tx "$dl") (m0 $(kv m0_tx "$dl") m1 $(kv m1_tx "$dl")) host_xsk_rx_ring_full=$(kv host_xsk_rx_ring_full "$dl") members_drop_tx_full=$(kv members_drop_tx_full "$dl")"
		fi
	fi
	if [[ $fkind == ref ]]; then
		local rc1 gs
		rc1=$(ref_counters "$fpid")
		gs=$(kv seconds "$g")
		notes="reference: rx_in=$(($(kv rx_in "$rc1") - $(kv rx_in "$rc0"))) tx_out=$(($(kv tx_out "$rc1") - $(kv tx_out "$rc0"))) rx_out=$(($(kv rx_out "$rc1") - $(kv rx_out "$rc0"))) tx_in=$(($(kv tx_in "$rc1") - $(kv tx_in "$rc0")))"
		notes+=" time in TX sendto: $(calc "100 * ($(kv tx_kick_s "$rc1") - $(kv tx_kick_s "$rc0")) / $gs" 0)%"
	fi
	[[ -s $d/perf.split ]] && notes+="; CPU $LANE_CPU profile: $(cat "$d/perf.split")"
	# the forwarder's CPU use while the generator ran (cores), the lanes'
	# busy share (appliance: time its lanes spent moving frames / wall time,
	# summed over lanes) and the frames
	# that never reached the sink
	RES[$key.cpu]=$(calc "($pt1 - $pt0) / $HZ / ($tw1 - $tw0)" 3)
	RES[$key.busy]=""
	if [[ $fkind == appliance ]]; then
		RES[$key.busy]=$(calc "($(kv wall_ns "$dl") > 0) ? $(kv lane_busy_ns "$dl") / $(kv wall_ns "$dl") : 0" 3)
	fi
	RES[$key.lost]=$(($(kv frames "$g") - $(kv gen_frames "$s")))
	local off del loss ro gw
	off=$(kv mpps "$g")
	del=$(kv mpps "$s")
	loss=$(calc "100 * ($(kv frames "$g") - $(kv gen_frames "$s")) / $(kv frames "$g")" 2)
	ro=$(kv flow_reorder "$s")
	gw=$(kv runq_wait_ms "$g")
	contended "$other" "$gw" "$w" notes
	row "$name" "$size" "$off" "$del" "$loss" "$ro" "$other" "$notes"
	RES[$key]=$del
	RES[$key.offered]=$off
	log "$name size $size: offered $off Mpps, delivered $del Mpps, loss $loss%"
}

header() {
	printf '%-34s %5s %8s %10s %8s %7s %8s %9s  %s\n' test size offered delivered delivered loss% flow_ro other_cpu notes
	printf '%-34s %5s %8s %10s %8s %7s %8s %9s  %s\n' "" bytes Mpps Mpps Gbit/s "" frames ms ""
}

# the appliance's dataplane.fast_path (environment layer of its configuration)
export BOND_APPLIANCE_DATAPLANE_FAST_PATH=$FAST_PATH

# perf/more.sh sources this file for its set-up and helpers only
[[ ${PERF_LIB:-0} == 1 ]] && return 0

log "load before start: $(cat /proc/loadavg)"

# ---- 1. generator alone: veth pair, XDP_DROP sink on the peer ----
GNS=ba-perf-$$-gen
ip netns add "$GNS"
NETNS+=("$GNS")
ip -n "$GNS" link set lo up
ip -n "$GNS" link add ga type veth peer name gb
ip -n "$GNS" link set ga up
ip -n "$GNS" link set gb up
for size in $SIZES; do
	for d in ga gb; do ip -n "$GNS" link set "$d" mtu "$(mtu_of "$size")"; done
	measure run_case "gen$size" "generator alone (veth, XDP sink)" "$size" "$GNS" gb "$GNS" ga - none
done
for d in ga gb; do ip -n "$GNS" link set "$d" mtu 1500; done

# ---- 2. AF_XDP receive-and-drop, copy mode: C vs the appliance's Go packages ----
# The kernel side (XDP redirect + copy into the UMEM) runs on the generator's
# CPU; the user-space loop on LANE_CPU. busy_ns_per_frame is the user-space
# cost of handling a received batch.
rxdrop() {
	local key=$1 name=$2
	shift 2
	local d=$WORK/$key
	mkdir -p "$d"
	start_bg "$d/drop" "$@"
	local dpid=$BG
	wait_for "$d/drop.err" "xskdrop:\|rxdrop on"
	sleep 0.3
	local f0
	f0=$(foreign_ticks)
	"$BAGEN" gen --mode "$GEN_MODE" --dev ga --netns "$GNS" --size 64 --flows "$FLOWS" --seconds "$SECS" --cpu "$GEN_CPU" >"$d/gen" 2>"$d/gen.err" ||
		die "$name: generator failed: $(cat "$d/gen.err")"
	note_gen "$d"
	local other=$((($(foreign_ticks) - f0) * 1000 / HZ))
	stop_pid "$dpid"
	local g r
	g=$(cat "$d/gen")
	r=$(cat "$d/drop")
	[[ -n $r ]] || die "$name: printed nothing: $(cat "$d/drop.err")"
	local loss
	loss=$(calc "100 * ($(kv frames "$g") - $(kv packets "$r")) / $(kv frames "$g")" 2)
	local notes="user ns/frame $(kv busy_ns_per_frame "$r"), avg batch $(kv avg_batch "$r"), xsk fill-empty drops $(kv xsk_fill_ring_empty "$r")$(kv in_xsk_fill_ring_empty "$r")"
	local gw w
	gw=$(kv runq_wait_ms "$g")
	w=$(kv runq_wait_ms "$r")
	contended "$other" "$gw" "$w" notes
	row "$name" 64 "$(kv mpps "$g")" "$(kv mpps "$r")" "$loss" - "$other" "$notes"
	RES[$key]=$(kv mpps "$r")
	RES[$key.ns]=$(kv busy_ns_per_frame "$r")
	log "$name: $(kv mpps "$r") Mpps"
}
measure rxdrop rxdrop_c "AF_XDP rxdrop, C (xskfwd)" ip netns exec "$GNS" "$XSKFWD" --rxdrop -i gb -c "$LANE_CPU" -s $((SECS + 60))
measure rxdrop rxdrop_go "AF_XDP rxdrop, Go (appliance pkgs)" "$BAGEN" xskdrop --dev gb --netns "$GNS" --cpu "$LANE_CPU" --seconds $((SECS + 60))

# ---- 3. the appliance: balance-xor layer3+4, one lane on LANE_CPU ----
topo_up() { # topo_up DIR MTU [--ref]: the bond at MTU (mtu: 9000 for jumbo)
	local dir=$1 mtu=$2 opt=xmit_hash_policy=layer3+4
	shift 2
	((mtu == 1500)) || opt+=",mtu=$mtu"
	"$BATOPO" up --dir "$dir" --members 2 --queues 1 --mode balance-xor --opt "$opt" \
		--cores "$LANE_CPU" --poll busy "$@" >"$dir.env"
	# shellcheck disable=SC1090
	. "$dir.env"
	TOPOS+=("$GW $PEER")
	((mtu == 1500)) && return 0
	# jumbo: the peer's ports and bridge (the appliance sets its members and
	# bond0 itself; for the reference, set_ref_mtu does)
	local p
	for p in $PORTS br0; do
		ip -n "$PEER" link set "$p" mtu "$mtu"
	done
}

BINDS=()
for mtu in $MTUS; do
	d=$WORK/appl$mtu
	mkdir -p "$d"
	topo_up "$d" "$mtu"
	# the whole process on LANE_CPU, so nothing of it disturbs the generator's core
	start_bg "$d/appliance.log" taskset -c "$LANE_CPU" ip netns exec "$GW" "$BIN" -c "$CONFIG"
	APID=$BG
	"$BATOPO" wait --socket "$SOCKET" || die "appliance did not come up: $(cat "$d/appliance.log.err")"
	b=$(grep -o 'bind=[a-z-]*\|multi_buffer=true' "$d/appliance.log.err" | sort -u | paste -sd, -)
	BINDS+=("MTU $mtu: ${b:-?}")
	log "appliance up at MTU $mtu (pid $APID, $b)"
	for size in $(sizes_at "$mtu"); do
		measure run_case "appl_h2m$size" "appliance host->members" "$size" "$PEER" p0,p1 "$GW" bond0 "$APID" appliance
	done
	for size in $(sizes_at "$mtu"); do
		measure run_case "appl_m2h$size" "appliance members->host" "$size" "$GW" bond0 "$PEER" p0,p1 "$APID" appliance \
			--dst-mac "$BOND_MAC" --dst-ip "$HOST_IP" --src-ip 198.19.0.0
	done
	kill -TERM "$APID"
	wait_pid "$APID"
done
BIND=$(IFS=';'; echo "${BINDS[*]}")

# ---- 4. the C reference forwarder on the same topology ----
# set_ref_mtu MTU: what the appliance does to its devices at that MTU
set_ref_mtu() {
	local d
	for d in $MEMBERS bond0 bond0-dp; do
		ip -n "$GW" link set "$d" mtu "$1"
	done
}
for mtu in $MTUS; do
	d=$WORK/ref$mtu
	mkdir -p "$d"
	topo_up "$d" "$mtu" --ref
	sg=()
	if ((mtu != 1500)); then
		set_ref_mtu "$mtu"
		sg=(--sg) # multi-buffer: XDP_USE_SG, xdp.frags, descriptor chains
	fi
	REF_LOG=$d/xskfwd.log
	start_bg "$REF_LOG" ip netns exec "$GW" "$XSKFWD" -i bond0-dp -o "${MEMBERS// /,}" -c "$LANE_CPU" -r 1024 -b 64 "${sg[@]}"
	RPID=$BG
	wait_for "$d/xskfwd.log.err" "forwarding"
	for size in $(sizes_at "$mtu"); do
		measure run_case "ref_h2m$size" "reference (C) host->members" "$size" "$PEER" p0,p1 "$GW" bond0 "$RPID" ref
	done
	for size in $(sizes_at "$mtu"); do
		measure run_case "ref_m2h$size" "reference (C) members->host" "$size" "$GW" bond0 "$PEER" p0,p1 "$RPID" ref \
			--dst-mac "$BOND_MAC" --dst-ip "$HOST_IP" --src-ip 198.19.0.0
	done
	kill -TERM "$RPID"
	wait_pid "$RPID"
done

# ---- report ----
echo
echo "bond-appliance forwarding on veth (AF_XDP ${BIND:-copy mode}; fast_path $FAST_PATH), ${SECS} s per run, $FLOWS flows, generator on CPU $GEN_CPU, lane on CPU $LANE_CPU, $(uname -r)"
echo "offered = generator rate, delivered = sink rate (steady state), Gbit/s = delivered Mpps x size x 8 / 1000 (size with FCS; preamble and gap not counted),"
echo "loss = frames not delivered, flow_ro = frames out of order within their flow,"
echo "other_cpu = CPU time other processes on the machine used during the run (a clean run has ~0); sizes above 1518 at MTU 9000 (multi-buffer)"
echo "generator: ${GEN_WHY:-$GEN_KIND}"
if [[ $GEN_KIND == xsk ]]; then
	echo "  (AF_XDP copy-mode TX: the kernel builds an skb per frame on the generator's CPU; compare 'generator alone' with the forwarders' delivered rates to see which side is the bottleneck)"
fi
echo
header
printf '%s\n' "${ROWS[@]}"
echo
sum="perf=summary seconds=$SECS flows=$FLOWS gen=$GEN_KIND fast_path=$FAST_PATH"
ratios=()
for size in $SIZES; do
	sum+=" gen_${size}_mpps=${RES[gen$size]} gen_${size}_gbps=$(gbps "${RES[gen$size]}" "$size")"
done
sum+=" rxdrop_c_mpps=${RES[rxdrop_c]} rxdrop_go_mpps=${RES[rxdrop_go]} rxdrop_c_ns=${RES[rxdrop_c.ns]} rxdrop_go_ns=${RES[rxdrop_go.ns]}"
for dir in h2m m2h; do
	for size in $SIZES; do
		a=${RES[appl_$dir$size]} r=${RES[ref_$dir$size]}
		q=$(calc "($r > 0) ? $a / $r : 0" 3)
		ratios+=("$q")
		sum+=" appl_${dir}_${size}_mpps=$a appl_${dir}_${size}_gbps=$(gbps "$a" "$size") ref_${dir}_${size}_mpps=$r ref_${dir}_${size}_gbps=$(gbps "$r" "$size") ratio_${dir}_${size}=$q"
	done
done
geo=$(printf '%s\n' "${ratios[@]}" | awk '$1 > 0 { s += log($1); n++ } END { printf "%.3f", n ? exp(s / n) : 0 }')
sum+=" ratio=$geo contended_runs=${RES[contended]:-0}"
echo "$sum"
