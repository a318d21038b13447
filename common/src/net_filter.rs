//! "Is this address safe to dial?" — for every outbound fetch whose target a
//! stranger chooses (client ID metadata documents, and later `jwks_uri` and
//! the bridge's fetch server): an SSRF filter applied to every address
//! actually dialled, after DNS resolution.
//!
//! Refused: every range of the IANA IPv4 and IPv6 Special-Purpose Address
//! Registries (RFC 6890, updated by RFC 8190) that is not "Globally
//! Reachable", plus multicast (RFC 5771, RFC 4291 §2.7), IPv4 reserved
//! `240.0.0.0/4`, deprecated site-local `fec0::/10` (RFC 3879) and — for IPv6 —
//! everything outside global unicast `2000::/3` (IANA IPv6 Address Space
//! registry: the rest is reserved or special-purpose, so no server a client
//! names lives there).
//!
//! IPv6 forms that carry an IPv4 address are judged by that IPv4 address:
//! IPv4-mapped `::ffff:0:0/96` (a dual-stack socket dials the IPv4 address),
//! deprecated IPv4-compatible `::/96` (RFC 4291 §2.5.5.1; `::7f00:1` is
//! 127.0.0.1) and the NAT64 well-known prefix `64:ff9b::/96` (RFC 6052 §2.1:
//! the translator dials the embedded IPv4 address). A network-specific NAT64
//! prefix (RFC 6052 §2.2) is the operator's choice and cannot be recognised
//! here. 6to4 `2002::/16` and Teredo `2001::/32` are refused outright rather
//! than judged: both reach their embedded IPv4 through relays whose behaviour
//! we do not control (6to4 relays are deprecated, RFC 7526; Teredo obfuscates
//! its addresses), and no server a client names needs them.
//!
//! A few special ranges that IANA marks globally reachable (anycast service
//! addresses inside `192.0.0.0/24` and `2001::/23`, ORCHIDv2, DETs) are refused
//! too, as part of their enclosing block: none of them serves documents.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why an address must not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The special range the address (or the IPv4 address it embeds) is in.
    pub range: IpNet,
    /// What the range is.
    pub name: &'static str,
    /// Where it is defined.
    pub reference: &'static str,
    /// The IPv6 form that embedded the refused IPv4 address, if any.
    pub embedded_in: Option<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.range, self.name, self.reference)?;
        if let Some(form) = self.embedded_in {
            write!(f, " embedded in an {form} IPv6 address")?;
        }
        Ok(())
    }
}

struct V4Range(Ipv4Net, &'static str, &'static str);
struct V6Range(Ipv6Net, &'static str, &'static str);

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)] // the eight groups of an IPv6 address
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 ranges never dialled, most specific first (the first match names the refusal).
/// IANA IPv4 Special-Purpose Address Registry, RFC 6890 §2.2.2 as updated.
const V4_REFUSED: &[V4Range] = &[
    V4Range(
        v4(255, 255, 255, 255, 32),
        "limited broadcast",
        "RFC 919 §7, RFC 8190",
    ),
    V4Range(
        v4(192, 0, 0, 0, 29),
        "IPv4 service continuity prefix",
        "RFC 7335",
    ),
    V4Range(v4(192, 0, 0, 8, 32), "IPv4 dummy address", "RFC 7600"),
    V4Range(v4(192, 0, 0, 170, 31), "NAT64/DNS64 discovery", "RFC 8880"),
    V4Range(v4(192, 88, 99, 2, 32), "6a44 relay anycast", "RFC 6751"),
    V4Range(v4(0, 0, 0, 0, 8), "\"this network\"", "RFC 791 §3.2"),
    V4Range(v4(10, 0, 0, 0, 8), "private use", "RFC 1918"),
    V4Range(
        v4(100, 64, 0, 0, 10),
        "shared address space (CGNAT)",
        "RFC 6598",
    ),
    V4Range(v4(127, 0, 0, 0, 8), "loopback", "RFC 1122 §3.2.1.3"),
    V4Range(v4(169, 254, 0, 0, 16), "link local", "RFC 3927"),
    V4Range(v4(172, 16, 0, 0, 12), "private use", "RFC 1918"),
    V4Range(
        v4(192, 0, 0, 0, 24),
        "IETF protocol assignments",
        "RFC 6890 §2.1",
    ),
    V4Range(
        v4(192, 0, 2, 0, 24),
        "documentation (TEST-NET-1)",
        "RFC 5737",
    ),
    V4Range(
        v4(192, 88, 99, 0, 24),
        "6to4 relay anycast (deprecated)",
        "RFC 7526",
    ),
    V4Range(v4(192, 168, 0, 0, 16), "private use", "RFC 1918"),
    V4Range(v4(198, 18, 0, 0, 15), "benchmarking", "RFC 2544"),
    V4Range(
        v4(198, 51, 100, 0, 24),
        "documentation (TEST-NET-2)",
        "RFC 5737",
    ),
    V4Range(
        v4(203, 0, 113, 0, 24),
        "documentation (TEST-NET-3)",
        "RFC 5737",
    ),
    V4Range(v4(224, 0, 0, 0, 4), "multicast", "RFC 5771"),
    V4Range(v4(240, 0, 0, 0, 4), "reserved", "RFC 1112 §4"),
];

/// IPv6 ranges never dialled, most specific first. IANA IPv6 Special-Purpose
/// Address Registry, RFC 6890 §2.2.3 as updated; the IPv4-embedding forms
/// (mapped, compatible, NAT64 well-known prefix) are handled before this table.
const V6_REFUSED: &[V6Range] = &[
    V6Range(
        v6(0, 0, 0, 0, 0, 0, 0, 0, 128),
        "unspecified",
        "RFC 4291 §2.5.2",
    ),
    V6Range(
        v6(0, 0, 0, 0, 0, 0, 0, 1, 128),
        "loopback",
        "RFC 4291 §2.5.3",
    ),
    V6Range(
        v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48),
        "local-use IPv4/IPv6 translation",
        "RFC 8215",
    ),
    V6Range(
        v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64),
        "discard-only",
        "RFC 6666",
    ),
    V6Range(
        v6(0x100, 0, 0, 1, 0, 0, 0, 0, 64),
        "dummy IPv6 prefix",
        "RFC 9780",
    ),
    V6Range(
        v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32),
        "Teredo",
        "RFC 4380, RFC 8190",
    ),
    V6Range(
        v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48),
        "benchmarking",
        "RFC 5180",
    ),
    V6Range(
        v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28),
        "ORCHID (deprecated)",
        "RFC 4843",
    ),
    V6Range(
        v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28),
        "ORCHIDv2",
        "RFC 7343",
    ),
    V6Range(
        v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0, 28),
        "drone remote ID (DET)",
        "RFC 9374",
    ),
    V6Range(
        v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23),
        "IETF protocol assignments",
        "RFC 2928",
    ),
    V6Range(
        v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32),
        "documentation",
        "RFC 3849",
    ),
    V6Range(
        v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16),
        "6to4",
        "RFC 3056, RFC 7526",
    ),
    V6Range(
        v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20),
        "documentation",
        "RFC 9637",
    ),
    V6Range(
        v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16),
        "segment routing SIDs",
        "RFC 9602",
    ),
    V6Range(
        v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7),
        "unique local",
        "RFC 4193",
    ),
    V6Range(
        v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10),
        "link local",
        "RFC 4291 §2.5.6",
    ),
    V6Range(
        v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10),
        "site local (deprecated)",
        "RFC 3879",
    ),
    V6Range(
        v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8),
        "multicast",
        "RFC 4291 §2.7",
    ),
];

const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);
const V4_MAPPED: Ipv6Net = v6(0, 0, 0, 0, 0, 0xffff, 0, 0, 96);
const V4_COMPATIBLE: Ipv6Net = v6(0, 0, 0, 0, 0, 0, 0, 0, 96);
const NAT64_WELL_KNOWN: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);

/// Why `ip` must not be dialled, or `None` when it is a globally reachable unicast address.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

/// True when `ip` is a globally reachable unicast address: safe to dial for a stranger.
pub fn is_safe_to_dial(ip: IpAddr) -> bool {
    refusal(ip).is_none()
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    V4_REFUSED
        .iter()
        .find(|r| r.0.contains(&ip))
        .map(|r| Refusal {
            range: IpNet::V4(r.0),
            name: r.1,
            reference: r.2,
            embedded_in: None,
        })
}

/// The last 32 bits of an IPv6 address, where every IPv4-embedding form we judge puts them.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let o = ip.octets();
    Ipv4Addr::new(o[12], o[13], o[14], o[15])
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let embedded = [
        (V4_MAPPED, "IPv4-mapped (RFC 4291 §2.5.5.2)"),
        (NAT64_WELL_KNOWN, "NAT64 (RFC 6052 §2.1)"),
    ];
    for (net, form) in embedded {
        if net.contains(&ip) {
            return refusal_v4(low_v4(ip)).map(|r| Refusal {
                embedded_in: Some(form),
                ..r
            });
        }
    }
    if let Some(r) = V6_REFUSED.iter().find(|r| r.0.contains(&ip)) {
        return Some(Refusal {
            range: IpNet::V6(r.0),
            name: r.1,
            reference: r.2,
            embedded_in: None,
        });
    }
    // After `::` and `::1` (in the table): IPv4-compatible, judged by the IPv4 address.
    if V4_COMPATIBLE.contains(&ip) {
        return refusal_v4(low_v4(ip)).map(|r| Refusal {
            embedded_in: Some("IPv4-compatible (RFC 4291 §2.5.5.1)"),
            ..r
        });
    }
    if !GLOBAL_UNICAST.contains(&ip) {
        return Some(Refusal {
            range: IpNet::V6(outside_global_unicast(ip)),
            name: "reserved (outside global unicast 2000::/3)",
            reference: "IANA IPv6 Address Space registry, RFC 4291 §2.4",
            embedded_in: None,
        });
    }
    None
}

/// The IANA IPv6 Address Space block (`::/8`, `100::/8`, `200::/7`, … `f800::/6`)
/// outside `2000::/3` holding `ip`, to name it in a refusal.
fn outside_global_unicast(ip: Ipv6Addr) -> Ipv6Net {
    // Blocks of the IANA registry below 2000::/3 and above 3fff::: each ends
    // where the next begins; the prefix length of the block holding `ip`.
    const BLOCKS: &[(u16, u8)] = &[
        (0x0000, 8),
        (0x0100, 8),
        (0x0200, 7),
        (0x0400, 6),
        (0x0800, 5),
        (0x1000, 4),
        (0x4000, 3),
        (0x6000, 3),
        (0x8000, 3),
        (0xa000, 3),
        (0xc000, 3),
        (0xe000, 4),
        (0xf000, 5),
        (0xf800, 6),
        (0xfc00, 7),
        (0xfe00, 9),
        (0xfe80, 10),
        (0xfec0, 10),
        (0xff00, 8),
    ];
    let first = ip.segments()[0];
    let len = BLOCKS
        .iter()
        .rev()
        .find(|(start, _)| first >= *start)
        .map_or(3, |(_, len)| *len);
    Ipv6Net::new(ip, len).map_or(GLOBAL_UNICAST, |n| n.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(s: &str) -> Refusal {
        let ip: IpAddr = s.parse().expect("address literal");
        refusal(ip).unwrap_or_else(|| panic!("{s} should be refused"))
    }

    /// Every range of the brief and of the IANA registries, by one address in
    /// it, with the range that refuses it.
    #[test]
    fn every_special_form_is_refused_and_named() {
        let table: &[(&str, &str)] = &[
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.255.1.2", "0.0.0.0/8"),
            ("10.1.2.3", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.255.255", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.1", "192.0.0.0/29"),
            ("192.0.0.8", "192.0.0.8/32"),
            ("192.0.0.9", "192.0.0.0/24"),
            ("192.0.0.170", "192.0.0.170/31"),
            ("192.0.0.171", "192.0.0.170/31"),
            ("192.0.0.255", "192.0.0.0/24"),
            ("192.0.2.1", "192.0.2.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.88.99.2", "192.88.99.2/32"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("239.255.255.255", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("255.255.255.254", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
            ("::", "::/128"),
            ("::1", "::1/128"),
            // IPv4-mapped and IPv4-compatible: the embedded IPv4 address decides.
            ("::ffff:127.0.0.1", "127.0.0.0/8"),
            ("::ffff:10.0.0.1", "10.0.0.0/8"),
            ("::ffff:0.0.0.0", "0.0.0.0/8"),
            ("::7f00:1", "127.0.0.0/8"),
            ("::a9fe:a9fe", "169.254.0.0/16"),
            ("::0.0.0.2", "0.0.0.0/8"),
            // NAT64 well-known prefix: the embedded IPv4 address decides.
            ("64:ff9b::7f00:1", "127.0.0.0/8"),
            ("64:ff9b::169.254.169.254", "169.254.0.0/16"),
            ("64:ff9b::c0a8:101", "192.168.0.0/16"),
            ("64:ff9b:1::1", "64:ff9b:1::/48"),
            ("64:ff9b:1::5db8:d822", "64:ff9b:1::/48"),
            ("100::1", "100::/64"),
            ("100:0:0:1::1", "100:0:0:1::/64"),
            ("2001::1", "2001::/32"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
            ("2001:1::1", "2001::/23"),
            ("2001:2::1", "2001:2::/48"),
            ("2001:3::1", "2001::/23"),
            ("2001:10::1", "2001:10::/28"),
            ("2001:20::1", "2001:20::/28"),
            ("2001:30::1", "2001:30::/28"),
            ("2001:1ff::1", "2001::/23"),
            ("2001:db8::1", "2001:db8::/32"),
            ("2002:7f00:1::1", "2002::/16"),
            ("2002:5db8:d822::1", "2002::/16"),
            ("3fff::1", "3fff::/20"),
            ("3fff:fff::1", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("febf::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("feff::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("ff05::2", "ff00::/8"),
            // Outside 2000::/3: reserved by IANA.
            ("::2:0:0:1", "::/8"),
            ("1::1", "::/8"),
            ("400::1", "400::/6"),
            ("4000::1", "4000::/3"),
            ("e000::1", "e000::/4"),
        ];
        for (addr, range) in table {
            let r = refused(addr);
            assert_eq!(r.range.to_string(), *range, "{addr}: {r}");
        }
        assert_eq!(
            refused("::ffff:127.0.0.1").embedded_in,
            Some("IPv4-mapped (RFC 4291 §2.5.5.2)")
        );
        assert_eq!(
            refused("::7f00:1").embedded_in,
            Some("IPv4-compatible (RFC 4291 §2.5.5.1)")
        );
        assert_eq!(
            refused("64:ff9b::7f00:1").embedded_in,
            Some("NAT64 (RFC 6052 §2.1)")
        );
        assert!(refused("::ffff:127.0.0.1").to_string().contains("loopback"));
    }

    #[test]
    fn global_unicast_addresses_may_be_dialled() {
        for addr in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.31.196.1",
            "192.88.98.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2003::1",
            "3ffe::1",
            "3fff:1000::1",
            // Public IPv4 addresses in the forms that are judged by them.
            "::ffff:93.184.216.34",
            "::5db8:d822",
            "64:ff9b::5db8:d822",
            "64:ff9b::1.1.1.1",
        ] {
            let ip: IpAddr = addr.parse().expect("address literal");
            assert_eq!(refusal(ip), None, "{addr}");
            assert!(is_safe_to_dial(ip), "{addr}");
        }
    }

    fn v4_strategy() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        /// The IPv4-embedding forms agree with the IPv4 address they carry.
        #[test]
        fn embedded_ipv4_is_judged_as_itself(a in v4_strategy()) {
            let plain = is_safe_to_dial(IpAddr::V4(a));
            let mapped = a.to_ipv6_mapped();
            prop_assert_eq!(is_safe_to_dial(IpAddr::V6(mapped)), plain);
            let b = u32::from(a);
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, (b >> 16) as u16, b as u16);
            prop_assert_eq!(is_safe_to_dial(IpAddr::V6(nat64)), plain);
            let compatible = a.to_ipv6_compatible();
            // `::` and `::1` are unspecified and loopback whatever they embed.
            if b > 1 {
                prop_assert_eq!(is_safe_to_dial(IpAddr::V6(compatible)), plain);
            } else {
                prop_assert!(!is_safe_to_dial(IpAddr::V6(compatible)));
            }
        }

        /// Whatever the standard library knows to be local or special is refused.
        #[test]
        fn std_special_ipv4_is_refused(a in v4_strategy()) {
            if a.is_private() || a.is_loopback() || a.is_link_local() || a.is_broadcast()
                || a.is_documentation() || a.is_unspecified() || a.is_multicast()
            {
                prop_assert!(!is_safe_to_dial(IpAddr::V4(a)));
            }
        }

        #[test]
        fn std_special_ipv6_is_refused(s in any::<[u16; 8]>()) {
            let ip = Ipv6Addr::from(s);
            if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast()
                || ip.is_unique_local() || ip.is_unicast_link_local()
            {
                prop_assert!(!is_safe_to_dial(IpAddr::V6(ip)));
            }
            // Only global unicast, or a form judged by a public IPv4 address, passes.
            if is_safe_to_dial(IpAddr::V6(ip)) {
                let judged = V4_MAPPED.contains(&ip) || NAT64_WELL_KNOWN.contains(&ip)
                    || V4_COMPATIBLE.contains(&ip);
                prop_assert!(GLOBAL_UNICAST.contains(&ip) || judged, "{}", ip);
                if judged {
                    prop_assert!(is_safe_to_dial(IpAddr::V4(low_v4(ip))), "{}", ip);
                }
            }
        }

        /// A refusal always names a range holding the address (or the IPv4 address it embeds).
        #[test]
        fn a_refusal_names_a_range_that_holds_the_address(s in any::<[u8; 16]>(), v6 in any::<bool>()) {
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(s))
            } else {
                IpAddr::V4(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
            };
            if let Some(r) = refusal(ip) {
                let holder = match (r.embedded_in, ip) {
                    (Some(_), IpAddr::V6(v6)) => IpAddr::V4(low_v4(v6)),
                    _ => ip,
                };
                prop_assert!(r.range.contains(&holder), "{} {}", ip, r);
            }
        }
    }
}
