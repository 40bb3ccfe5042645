#!/usr/bin/env bash
# Installs the Debian packages the lab and the test suite use (root). Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(make iproute2 iputils-ping iperf3 ethtool tcpdump tshark nftables openvswitch-switch openvswitch-common)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
