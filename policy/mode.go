package policy

import "strconv"

// Mode is a bonding mode, with the numeric values of the kernel's
// BOND_MODE_* constants (include/uapi/linux/if_bonding.h) so that the value
// written to /sys/class/net/<bond>/bonding/mode as a number means the same.
type Mode uint8

// Bonding modes.
const (
	BalanceRR    Mode = 0 // BOND_MODE_ROUNDROBIN, "balance-rr"
	ActiveBackup Mode = 1 // BOND_MODE_ACTIVEBACKUP, "active-backup"
	BalanceXOR   Mode = 2 // BOND_MODE_XOR, "balance-xor"
	Broadcast    Mode = 3 // BOND_MODE_BROADCAST, "broadcast"
	IEEE8023AD   Mode = 4 // BOND_MODE_8023AD, "802.3ad"
	BalanceTLB   Mode = 5 // BOND_MODE_TLB, "balance-tlb"
	BalanceALB   Mode = 6 // BOND_MODE_ALB, "balance-alb"
)

// Names from bond_options.c (bond_mode_tbl) and descriptions from
// bond_main.c (bond_mode_name), indexed by Mode.
var (
	modeNames = [...]string{
		BalanceRR:    "balance-rr",
		ActiveBackup: "active-backup",
		BalanceXOR:   "balance-xor",
		Broadcast:    "broadcast",
		IEEE8023AD:   "802.3ad",
		BalanceTLB:   "balance-tlb",
		BalanceALB:   "balance-alb",
	}
	modeDescriptions = [...]string{
		BalanceRR:    "load balancing (round-robin)",
		ActiveBackup: "fault-tolerance (active-backup)",
		BalanceXOR:   "load balancing (xor)",
		Broadcast:    "fault-tolerance (broadcast)",
		IEEE8023AD:   "IEEE 802.3ad Dynamic link aggregation",
		BalanceTLB:   "transmit load balancing",
		BalanceALB:   "adaptive load balancing",
	}
)

// Valid reports whether m is one of the seven bonding modes.
func (m Mode) Valid() bool { return int(m) < len(modeNames) }

// String returns the bonding name of the mode ("balance-rr", ...,
// "balance-alb"), as accepted by the mode option. An invalid value is
// formatted as "Mode(N)".
func (m Mode) String() string {
	if m.Valid() {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Description returns the text /proc/net/bonding/<bond> prints after
// "Bonding Mode: ", e.g. "load balancing (round-robin)". Like the kernel's
// bond_mode_name, it returns "unknown" for an invalid value.
func (m Mode) Description() string {
	if m.Valid() {
		return modeDescriptions[m]
	}
	return "unknown"
}

// UsesXmitHash reports whether the mode always selects slaves with
// xmit_hash_policy (balance-xor and 802.3ad). balance-tlb and balance-alb use
// it too when tlb_dynamic_lb is 0, which is a separate option.
func (m Mode) UsesXmitHash() bool { return m == BalanceXOR || m == IEEE8023AD }

// ParseMode accepts a mode by name ("802.3ad") or by number ("4"), like the
// mode option of the bonding driver.
func ParseMode(s string) (Mode, bool) {
	for i, n := range modeNames {
		if s == n || s == strconv.Itoa(i) {
			return Mode(i), true
		}
	}
	return 0, false
}

// HashPolicy is an xmit_hash_policy, with the numeric values of the kernel's
// BOND_XMIT_POLICY_* constants.
type HashPolicy uint8

// Transmit hash policies.
const (
	Layer2     HashPolicy = 0 // BOND_XMIT_POLICY_LAYER2, "layer2" (the default)
	Layer34    HashPolicy = 1 // BOND_XMIT_POLICY_LAYER34, "layer3+4"
	Layer23    HashPolicy = 2 // BOND_XMIT_POLICY_LAYER23, "layer2+3"
	Encap23    HashPolicy = 3 // BOND_XMIT_POLICY_ENCAP23, "encap2+3"
	Encap34    HashPolicy = 4 // BOND_XMIT_POLICY_ENCAP34, "encap3+4"
	VlanSrcMac HashPolicy = 5 // BOND_XMIT_POLICY_VLAN_SRCMAC, "vlan+srcmac"
)

// Names from bond_options.c (bond_xmit_hashtype_tbl), indexed by HashPolicy,
// and the "name (number)" form that bond_procfs.c prints.
var (
	policyNames = [...]string{
		Layer2:     "layer2",
		Layer34:    "layer3+4",
		Layer23:    "layer2+3",
		Encap23:    "encap2+3",
		Encap34:    "encap3+4",
		VlanSrcMac: "vlan+srcmac",
	}
	policyProcStrings = [...]string{
		Layer2:     "layer2 (0)",
		Layer34:    "layer3+4 (1)",
		Layer23:    "layer2+3 (2)",
		Encap23:    "encap2+3 (3)",
		Encap34:    "encap3+4 (4)",
		VlanSrcMac: "vlan+srcmac (5)",
	}
)

// Valid reports whether p is one of the six transmit hash policies.
func (p HashPolicy) Valid() bool { return int(p) < len(policyNames) }

// String returns the bonding name of the policy ("layer2", "layer3+4",
// "layer2+3", "encap2+3", "encap3+4", "vlan+srcmac"). An invalid value is
// formatted as "HashPolicy(N)".
func (p HashPolicy) String() string {
	if p.Valid() {
		return policyNames[p]
	}
	return "HashPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ProcString returns the text /proc/net/bonding/<bond> prints after
// "Transmit Hash Policy: " ("%s (%d)" in bond_procfs.c), e.g. "layer2 (0)".
// An invalid value gives "unknown (N)".
func (p HashPolicy) ProcString() string {
	if p.Valid() {
		return policyProcStrings[p]
	}
	return "unknown (" + strconv.Itoa(int(p)) + ")"
}

// ParseHashPolicy accepts a policy by name ("layer3+4") or by number ("1"),
// like the xmit_hash_policy option of the bonding driver.
func ParseHashPolicy(s string) (HashPolicy, bool) {
	for i, n := range policyNames {
		if s == n || s == strconv.Itoa(i) {
			return HashPolicy(i), true
		}
	}
	return 0, false
}
