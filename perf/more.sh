#!/usr/bin/env bash
# perf/more.sh — the measurements beyond run.sh's maximum-rate table, on the
# same helpers (it sources run.sh's set-up): throughput against frame size
# for the appliance and the C reference, zero-drop throughput (binary search
# over the generator's rate), CPU per Mpps and memory per lane, one lane
# against all lanes, and 802.3ad with an Open vSwitch LACP partner.
# Root only, ~4 min. Writes CSV files for perf/cmd/baplot into OUT.
#
#   sudo perf/more.sh
#   sudo PARTS="sizes zerodrop" perf/more.sh
#
# Environment (besides run.sh's PERF_SECONDS — default 2 here —, GEN_CPU,
# LANE_CPU, FLOWS, RETRIES, BIN, KEEP): PARTS ("sizes zerodrop lanes ad"),
# SWEEP_SIZES ("64 128 256 512 1024 1500"), ZD_STEPS (6) binary-search
# steps, ZD_SIZE (64), OUT (perf/out).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PERF_SECONDS=${PERF_SECONDS:-2}
SIZES=64
PERF_LIB=1
# shellcheck source=perf/run.sh
. "$HERE/run.sh"
trap 'echo "more.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

PARTS=${PARTS:-"sizes zerodrop lanes ad"}
SWEEP_SIZES=${SWEEP_SIZES:-"64 128 256 512 1024 1500"}
for size in $SWEEP_SIZES; do
	# one appliance start per part: jumbo sizes (MTU 9000, multi-buffer) are run.sh's
	(($(mtu_of "$size") == 1500)) || die "SWEEP_SIZES: $size needs MTU 9000; the sweep here runs at MTU 1500 (64..1518), jumbo frames: SIZES=\"1500 9000\" perf/run.sh"
done
ZD_STEPS=${ZD_STEPS:-6}
ZD_SIZE=${ZD_SIZE:-64}
OUT=${OUT:-$HERE/out}
mkdir -p "$OUT"
has() { [[ " $PARTS " == *" $1 "* ]]; }
SUM="perf=more seconds=$SECS flows=$FLOWS"
NOTES=()

# appl_start DIR TOPO_ARGS...: topology + appliance (whole process under
# taskset -c CPUS, default LANE_CPU); sets APID, GW, PEER, SOCKET, ...
appl_start() {
	local dir=$1 cpus=${APPL_CPUS:-$LANE_CPU}
	shift
	mkdir -p "$dir"
	"$BATOPO" up --dir "$dir" --members 2 --poll busy "$@" >"$dir.env"
	OVS_DIR=""
	# shellcheck disable=SC1090
	. "$dir.env"
	TOPOS+=("$GW $PEER $OVS_DIR")
	start_bg "$dir/appliance.log" taskset -c "$cpus" ip netns exec "$GW" "$BIN" -c "$CONFIG"
	APID=$BG
	"$BATOPO" wait --socket "$SOCKET" || die "appliance did not come up: $(cat "$dir/appliance.log.err")"
}
appl_stop() {
	kill -TERM "$APID"
	wait_pid "$APID"
}
# mem_notes DIR: the appliance's resident memory and its lanes' UMEM
# (log lines "lane ready ... umem_frames=N", frame_size 2048 by default)
mem_line() {
	local dir=$1 rss frames lanes fs
	rss=$(awk '/^VmRSS:/ { print $2 }' /proc/"$APID"/status)
	frames=$(grep -o 'lane ready.*umem_frames=[0-9]*' "$dir/appliance.log.err" | sed 's/.*umem_frames=//' | awk "{ s += \$1 } END { print s + 0 }")
	lanes=$(grep -c 'lane ready' "$dir/appliance.log.err" || true)
	fs=$(sed -n 's/^ *frame_size: *//p' "$CONFIG" | head -1)
	fs=${fs:-2048}
	echo "rss_kib=$rss lanes=$lanes umem_frames=$frames umem_kib=$((frames * fs / 1024)) umem_kib_per_lane=$((frames * fs / 1024 / (lanes > 0 ? lanes : 1))) frame_size=$fs"
}
# cpu_per_mpps KEY: cores the forwarder used per delivered Mpps (process CPU
# time / wall time while the generator ran; for the appliance scaled by the
# lanes' busy share, the time they spent moving frames: the busy-polling lane
# spins at 100 % whatever the load)
cpu_per_mpps() {
	local k=$1 c=${RES[$1.cpu]:-0} b=${RES[$1.busy]:-} d=${RES[$1]:-0}
	[[ -n $b ]] || b=1
	calc "($d > 0) ? $c * $b / $d : 0" 3
}

# ---- throughput against frame size (host->members, balance-xor) ----
if has sizes || has zerodrop; then
	SZ=$SWEEP_SIZES
	has sizes || SZ=$ZD_SIZE
	appl_start "$WORK/appl" --queues 1 --mode balance-xor --opt xmit_hash_policy=layer3+4 --cores "$LANE_CPU"
	for size in $SZ; do
		measure run_case "appl_h2m$size" "appliance host->members" "$size" "$PEER" p0,p1 "$GW" bond0 "$APID" appliance
	done
	MEM=$(mem_line "$WORK/appl")
	if has zerodrop; then
		# zero-drop: binary search between 0 (no loss) and 1.2 x the maximum
		hi=$(calc "${RES[appl_h2m$ZD_SIZE]} * 1.2e6" 0) lo=0
		for ((st = 1; st <= ZD_STEPS; st++)); do
			r=$(((lo + hi) / 2))
			measure run_case "zd_appl$st" "appliance h2m zero-drop step $st" "$ZD_SIZE" "$PEER" p0,p1 "$GW" bond0 "$APID" appliance --rate "$r"
			echo "appliance,$st,$r,${RES[zd_appl$st]},${RES[zd_appl$st.lost]}" >>"$WORK/zd.csv"
			if ((${RES[zd_appl$st.lost]} == 0)); then lo=$r; else hi=$r; fi
			log "zero-drop appliance step $st: rate $r lost ${RES[zd_appl$st.lost]} -> [$lo, $hi]"
		done
		RES[zd_appl]=$(calc "$lo / 1e6" 3)
		# CPU per Mpps at the highest zero-loss rate
		measure run_case "zdcpu_appl" "appliance h2m at zero-drop rate" "$ZD_SIZE" "$PEER" p0,p1 "$GW" bond0 "$APID" appliance --rate "$((lo > 0 ? lo : 100000))"
	fi
	appl_stop
	SUM+=" appl_rss_kib=$(kv rss_kib "$MEM") appl_umem_kib_per_lane=$(kv umem_kib_per_lane "$MEM") appl_umem_frames=$(kv umem_frames "$MEM") appl_frame_size=$(kv frame_size "$MEM")"

	mkdir -p "$WORK/ref"
	"$BATOPO" up --dir "$WORK/ref" --members 2 --queues 1 --ref --cores "$LANE_CPU" >"$WORK/ref.env"
	# shellcheck disable=SC1090
	. "$WORK/ref.env"
	TOPOS+=("$GW $PEER")
	REF_LOG=$WORK/ref/xskfwd.log
	start_bg "$REF_LOG" ip netns exec "$GW" "$XSKFWD" -i bond0-dp -o "${MEMBERS// /,}" -c "$LANE_CPU" -r 1024 -b 64
	RPID=$BG
	wait_for "$WORK/ref/xskfwd.log.err" "forwarding"
	for size in $SZ; do
		measure run_case "ref_h2m$size" "reference (C) host->members" "$size" "$PEER" p0,p1 "$GW" bond0 "$RPID" ref
	done
	REF_RSS=$(awk '/^VmRSS:/ { print $2 }' /proc/"$RPID"/status)
	if has zerodrop; then
		hi=$(calc "${RES[ref_h2m$ZD_SIZE]} * 1.2e6" 0) lo=0
		for ((st = 1; st <= ZD_STEPS; st++)); do
			r=$(((lo + hi) / 2))
			measure run_case "zd_ref$st" "reference h2m zero-drop step $st" "$ZD_SIZE" "$PEER" p0,p1 "$GW" bond0 "$RPID" ref --rate "$r"
			echo "reference,$st,$r,${RES[zd_ref$st]},${RES[zd_ref$st.lost]}" >>"$WORK/zd.csv"
			if ((${RES[zd_ref$st.lost]} == 0)); then lo=$r; else hi=$r; fi
			log "zero-drop reference step $st: rate $r lost ${RES[zd_ref$st.lost]} -> [$lo, $hi]"
		done
		RES[zd_ref]=$(calc "$lo / 1e6" 3)
		measure run_case "zdcpu_ref" "reference h2m at zero-drop rate" "$ZD_SIZE" "$PEER" p0,p1 "$GW" bond0 "$RPID" ref --rate "$((lo > 0 ? lo : 100000))"
	fi
	kill -TERM "$RPID"
	wait_pid "$RPID"
	SUM+=" ref_rss_kib=$REF_RSS"

	{
		echo "size,appliance_mpps,reference_mpps,appliance_gbps,reference_gbps"
		for size in $SZ; do
			echo "$size,${RES[appl_h2m$size]},${RES[ref_h2m$size]},$(calc "${RES[appl_h2m$size]} * $size * 8 / 1000" 3),$(calc "${RES[ref_h2m$size]} * $size * 8 / 1000" 3)"
		done
	} >"$OUT/sizes.csv"
	for size in $SZ; do
		SUM+=" appl_h2m_${size}_mpps=${RES[appl_h2m$size]} ref_h2m_${size}_mpps=${RES[ref_h2m$size]}"
	done
	SUM+=" appl_h2m_${ZD_SIZE}_cpu=${RES[appl_h2m$ZD_SIZE.cpu]} appl_h2m_${ZD_SIZE}_busy=${RES[appl_h2m$ZD_SIZE.busy]} appl_h2m_${ZD_SIZE}_cores_per_mpps=$(cpu_per_mpps "appl_h2m$ZD_SIZE")"
	SUM+=" ref_h2m_${ZD_SIZE}_cpu=${RES[ref_h2m$ZD_SIZE.cpu]} ref_h2m_${ZD_SIZE}_cores_per_mpps=$(cpu_per_mpps "ref_h2m$ZD_SIZE")"
	if has zerodrop; then
		{
			echo "forwarder,step,rate_pps,delivered_mpps,lost_frames"
			cat "$WORK/zd.csv"
		} >"$OUT/zerodrop.csv"
		SUM+=" appl_zerodrop_${ZD_SIZE}_mpps=${RES[zd_appl]} ref_zerodrop_${ZD_SIZE}_mpps=${RES[zd_ref]} ratio_zerodrop=$(calc "(${RES[zd_ref]} > 0) ? ${RES[zd_appl]} / ${RES[zd_ref]} : 0" 3)"
		SUM+=" appl_zerodrop_cpu=${RES[zdcpu_appl.cpu]} appl_zerodrop_busy=${RES[zdcpu_appl.busy]} appl_zerodrop_cores_per_mpps=$(cpu_per_mpps zdcpu_appl)"
		SUM+=" ref_zerodrop_cpu=${RES[zdcpu_ref.cpu]} ref_zerodrop_cores_per_mpps=$(cpu_per_mpps zdcpu_ref)"
	fi
fi

# ---- one lane against all lanes (members with 2 queues) ----
if has lanes; then
	OTHER_CPU=$(((LANE_CPU + 1) % $(nproc)))
	APPL_CPUS=$LANE_CPU appl_start "$WORK/lane1" --queues 2 --mode balance-xor --opt xmit_hash_policy=layer3+4 --cores "$LANE_CPU"
	measure run_case "lane1" "1 lane (cores [$LANE_CPU]) h2m" 64 "$PEER" p0,p1 "$GW" bond0 "$APID" appliance
	M1=$(mem_line "$WORK/lane1")
	appl_stop
	APPL_CPUS=$OTHER_CPU,$LANE_CPU appl_start "$WORK/lanes" --queues 2 --mode balance-xor --opt xmit_hash_policy=layer3+4 --cores "$OTHER_CPU,$LANE_CPU"
	# veth puts a redirected frame on rx queue (sending CPU mod queues): one
	# generator thread per CPU feeds both lanes
	measure run_case "lanes" "2 lanes (cores [$OTHER_CPU,$LANE_CPU]) h2m, gen on both" 64 "$PEER" p0,p1 "$GW" bond0 "$APID" appliance --cpu "$OTHER_CPU,$LANE_CPU"
	M2=$(mem_line "$WORK/lanes")
	appl_stop
	SUM+=" lanes1_h2m_64_mpps=${RES[lane1]} lanes1_cpu=${RES[lane1.cpu]} lanes1_rss_kib=$(kv rss_kib "$M1") lanes1_umem_kib=$(kv umem_kib "$M1")"
	SUM+=" lanes2_h2m_64_mpps=${RES[lanes]} lanes2_cpu=${RES[lanes.cpu]} lanes2_rss_kib=$(kv rss_kib "$M2") lanes2_umem_kib=$(kv umem_kib "$M2")"
	if (($(nproc) <= 2)); then
		NOTES+=("lanes: $(nproc) CPUs only — with all lanes, each lane shares its core with a generator thread (and the veth receive work it drives), so lanes2 is not a scaling figure here")
	fi
fi

# ---- 802.3ad with an Open vSwitch LACP partner ----
if has ad; then
	command -v ovs-vswitchd >/dev/null || die "ad: needs Open vSwitch (Debian openvswitch-switch)"
	appl_start "$WORK/ad" --ovs --queues 1 --mode 802.3ad --opt lacp_rate=fast,xmit_hash_policy=layer3+4,miimon=100 --cores "$LANE_CPU"
	AGG=$("$BATOPO" lacpwait --ovs-dir "$OVS_DIR" --ns "$PEER" --ports "${PORTS// /,}")
	log "802.3ad aggregated ($AGG)"
	# the sink on the partner's ports runs before Open vSwitch's AF_PACKET
	# socket: it drops the data frames and hands LACPDUs on
	SINK_EXTRA=(--pass-slow)
	for size in 64 1500; do
		measure run_case "ad_h2m$size" "802.3ad host->members (OVS partner)" "$size" "$PEER" p0,p1 "$GW" bond0 "$APID" appliance
	done
	SINK_EXTRA=()
	for size in 64 1500; do
		measure run_case "ad_m2h$size" "802.3ad members->host (OVS partner)" "$size" "$GW" bond0 "$PEER" p0,p1 "$APID" appliance \
			--dst-mac "$BOND_MAC" --dst-ip "$HOST_IP" --src-ip 198.19.0.0
	done
	"$BIN" status --json --socket "$SOCKET" >"$WORK/ad/status-end.json"
	STILL=$("$BATOPO" lacpwait --ovs-dir "$OVS_DIR" --ns "$PEER" --ports "${PORTS// /,}" --timeout 1s 2>&1 || echo "NOT aggregated")
	appl_stop
	SUM+=" ad_$AGG ad_still_aggregated=$([[ $STILL == *NOT* ]] && echo 0 || echo 1)"
	for dir in h2m m2h; do
		for size in 64 1500; do
			SUM+=" ad_${dir}_${size}_mpps=${RES[ad_$dir$size]}"
		done
	done
fi

echo
echo "bond-appliance: more measurements on veth, ${SECS} s per run, $FLOWS flows, generator on CPU $GEN_CPU, lane on CPU $LANE_CPU, $(uname -r)"
echo "cpu = forwarder process CPU (cores) while the generator ran; busy = lanes' busy_iterations/iterations; lost = generated frames the sinks did not count"
echo
header
printf '%s\n' "${ROWS[@]}"
echo
for n in "${NOTES[@]}"; do
	echo "note: $n"
done
SUM+=" contended_runs=${RES[contended]:-0}"
echo "$SUM"
echo "$SUM" >"$OUT/more.summary"
