//! `TRUSTED_PROXIES`: the peers whose forwarded headers (`X-Forwarded-For`,
//! `X-Forwarded-Host`, `X-Forwarded-Proto`, …) are believed. One parser for
//! every service, so `10.0.0.0/8` means the same to the verifier and the
//! authorization server.
//!
//! Every per-address budget keys on the address this type vouches for
//! ([`TrustedProxies::client_address`]), never on something a client can type.

use std::net::IpAddr;

use ipnet::IpNet;

/// CIDRs or single addresses, or `*` (every peer: only behind a proxy that
/// strips what clients send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    any: bool,
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// 127.0.0.0/8 and ::1: a proxy on the same machine (the default).
    pub fn loopback() -> Self {
        Self {
            any: false,
            nets: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::from(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// Trusts every peer (`TRUSTED_PROXIES=*`).
    pub fn any() -> Self {
        Self {
            any: true,
            nets: Vec::new(),
        }
    }

    /// Parses a list of CIDRs or single addresses; `["*"]` trusts every peer.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        if list.len() == 1 && list[0] == "*" {
            return Ok(Self::any());
        }
        let mut nets = Vec::with_capacity(list.len());
        for item in list {
            let net = if item.contains('/') {
                item.parse::<IpNet>()
                    .map_err(|_| format!("{item:?} is not a CIDR"))?
                    .trunc()
            } else {
                IpNet::from(
                    item.parse::<IpAddr>()
                        .map_err(|_| format!("{item:?} is not an IP address or CIDR"))?,
                )
            };
            nets.push(net);
        }
        Ok(Self { any: false, nets })
    }

    pub fn contains(&self, peer: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let peer = peer.to_canonical();
        self.nets.iter().any(|net| net.contains(&peer))
    }

    /// Whether an optional peer is trusted (no peer: not trusted).
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|p| self.contains(p))
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy —
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted
    /// proxy. Entries to its left are whatever the client chose to send, so
    /// they are never believed. `forwarded_for` yields the header values in
    /// order of appearance.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer.map(|p| p.to_canonical());
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in entries.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                // A malformed hop: nothing to its left can be trusted either.
                return peer;
            };
            let ip = ip.to_canonical();
            if !self.contains(ip) {
                return Some(ip);
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn cidrs_and_single_addresses() {
        let t = TrustedProxies::parse(&list(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]))
            .expect("valid");
        assert!(t.contains("10.200.3.4".parse().expect("ip")));
        assert!(t.contains("192.168.1.7".parse().expect("ip")));
        assert!(!t.contains("192.168.1.8".parse().expect("ip")));
        assert!(t.contains("fd12::1".parse().expect("ip")));
        // IPv4-mapped peers (dual-stack sockets) are judged as IPv4.
        assert!(t.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(TrustedProxies::parse(&list(&["10.0.0.0/33"])).is_err());
        assert!(TrustedProxies::parse(&list(&["proxy.local"])).is_err());
        assert!(TrustedProxies::parse(&list(&["*"]))
            .expect("any")
            .contains("203.0.113.1".parse().expect("ip")));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::loopback();
        let local = Some("127.0.0.1".parse().expect("ip"));
        let remote = Some("198.51.100.1".parse().expect("ip"));
        let got = |peer, xff: &[&str]| t.client_address(peer, xff.iter().copied());
        assert_eq!(got(local, &[]), local);
        assert_eq!(
            got(local, &["203.0.113.9, 198.51.100.4"]),
            Some("198.51.100.4".parse().expect("ip")),
            "the left part is the client's own claim"
        );
        assert_eq!(
            got(local, &["203.0.113.9", "198.51.100.4, 127.0.0.1"]),
            Some("198.51.100.4".parse().expect("ip"))
        );
        assert_eq!(got(local, &["not-an-ip"]), local);
        // An untrusted peer's header is ignored.
        assert_eq!(got(remote, &["203.0.113.9"]), remote);
    }
}
