//! Who the client is: the socket peer, unless the peer is a configured
//! trusted proxy, whose `X-Forwarded-For`/`Forwarded` is then believed — so
//! a client can't spoof its way around a per-IP limit.

use std::net::IpAddr;

/// Trusted proxies: addresses or CIDR blocks (`10.0.0.0/8`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        let mut out = Vec::new();
        for entry in list {
            let (addr, bits) = match entry.split_once('/') {
                Some((addr, bits)) => (addr, Some(bits)),
                None => (entry.as_str(), None),
            };
            let addr: IpAddr = addr
                .trim()
                .parse()
                .map_err(|_| format!("{entry:?} is not an IP address or CIDR block"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{entry:?} has a bad prefix length"))?,
            };
            out.push((addr, bits));
        }
        Ok(TrustedProxies(out))
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|&(net, bits)| in_block(ip, net, bits))
    }

    /// The client's address: the peer's, or — when the peer is a trusted
    /// proxy — the nearest address in `X-Forwarded-For` (or `Forwarded`)
    /// that isn't one of ours, read from the right so a client can't
    /// prepend a fake one.
    pub fn client_ip(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
        forwarded: Option<&str>,
    ) -> Option<IpAddr> {
        let peer = peer?;
        if !self.contains(peer) {
            return Some(peer);
        }
        let chain: Vec<IpAddr> = match (forwarded_for, forwarded) {
            (Some(xff), _) => xff.split(',').filter_map(parse_node).collect(),
            (None, Some(fwd)) => fwd
                .split(',')
                .filter_map(|element| {
                    element.split(';').find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("for")
                            .then(|| parse_node(v))
                            .flatten()
                    })
                })
                .collect(),
            (None, None) => Vec::new(),
        };
        Some(
            chain
                .into_iter()
                .rev()
                .find(|ip| !self.contains(*ip))
                .unwrap_or(peer),
        )
    }
}

/// One hop: `1.2.3.4`, `1.2.3.4:80`, `"[::1]:80"`, `::1`.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let peer = Some(ip("10.1.2.3"));
        // From the proxy: the rightmost untrusted hop, not a prepended fake.
        assert_eq!(
            proxies.client_ip(peer, Some("6.6.6.6, 203.0.113.9, 10.0.0.7"), None),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            proxies.client_ip(
                peer,
                None,
                Some(r#"for=198.51.100.1;proto=https, for="[2001:db8::1]:443""#)
            ),
            Some(ip("2001:db8::1"))
        );
        // Not from a proxy: the header is ignored.
        assert_eq!(
            proxies.client_ip(Some(ip("192.0.2.1")), Some("6.6.6.6"), None),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(proxies.client_ip(peer, Some("garbage"), None), peer);
        assert!(TrustedProxies::parse(&["10.0.0.0/40".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy".into()]).is_err());
    }
}
