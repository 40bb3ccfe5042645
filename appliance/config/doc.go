// Package config reads, defaults and validates the YAML configuration of the
// bonding appliance.
//
// The bond options mirror the Linux bonding driver (Documentation/networking/
// bonding.rst, drivers/net/bonding/bond_options.c): every per-bond option has
// the driver's name, default, range, value names and numbers ("mode: 4",
// "mode: \"4\"" and "mode: 802.3ad" are the same), the modes it is supported
// in and the driver's cross-option rules, so that an operator who knows
// "modprobe bonding mode=4 miimon=100" writes
//
//	bonds:
//	  - name: bond0
//	    slaves: [eth1, eth2]
//	    mode: 4
//	    miimon: 100
//
// One option table (see Options) describes every key of the file: its kind,
// allowed values, default, supported modes, flags and a one-line description.
// Decoding, defaults, validation, the generated reference (Reference) and the
// runtime "set BOND OPTION VALUE" command (Option.Parse, Option.Apply) all
// read that table, so they cannot drift apart.
//
// Which of the driver's rules apply: where the driver has a module parameter
// for an option, the configuration behaves like loading the module
// (bond_check_params: e.g. updelay is rounded down to a multiple of miimon
// with the driver's warning, arp_interval together with miimon disables ARP
// monitoring with a warning); options that exist only through sysfs or
// netlink behave as they do there (e.g. a duplicate ns_ip6_target is an
// error). In addition, an option given in a mode whose driver descriptor
// excludes that mode is an error, as sysfs and netlink report it ("mode
// dependency failed"), even where the module would only ignore it. Warnings
// the driver logs are returned, in the driver's wording, for the caller to
// log; errors are collected and returned together, one per line.
//
// Keys are case-sensitive snake_case; an unknown key at any level is an
// error that suggests the nearest known key.
package config
