package lacp

// Port key encoding of Linux bonding (drivers/net/bonding/bond_3ad.c, and
// ad_user_port_key in Documentation/networking/bonding.rst):
//
//	bit  0     duplex (1 = full)
//	bits 1-5   speed, as the AD_LINK_SPEED_* enumeration
//	bits 6-15  user key (ad_user_port_key, 0-1023)
//
// Two ports can only aggregate when their keys are equal (802.1AX-2014
// 6.3, capability identification), so ports of different speed or duplex
// never share an Aggregator.

// linkSpeeds is AD_LINK_SPEED_*: the speed code is the index plus one.
var linkSpeeds = [...]int{
	1, 10, 100, 1000, 2500, 5000, 10000, 14000, 20000, 25000, 40000,
	50000, 56000, 100000, 200000, 400000, 800000, 1600000,
}

// SpeedCode returns the bonding AD_LINK_SPEED_* code of a speed in Mb/s, or
// 0 for an unknown speed (bonding then logs "speed changed to 0").
func SpeedCode(speedMbps int) uint16 {
	for i, s := range linkSpeeds {
		if s == speedMbps {
			return uint16(i + 1)
		}
	}
	return 0
}

// MaxUserKey is the largest ad_user_port_key.
const MaxUserKey = 1023

// PortKey computes a port's operational key the way bonding does
// (ad_update_actor_keys) from its speed, duplex and the user key (the upper
// ten bits; larger values are truncated to ten bits). lacpEnabled is false
// for a half-duplex link: bonding only runs LACP on full-duplex ports, and
// such a port is then Individual (802.1AX-2014 6.4.12, LACP_DISABLED).
func PortKey(speedMbps int, fullDuplex bool, userKey uint16) (key uint16, lacpEnabled bool) {
	key = (userKey&MaxUserKey)<<6 | SpeedCode(speedMbps)<<1
	if fullDuplex {
		key |= 1
	}
	return key, fullDuplex
}
