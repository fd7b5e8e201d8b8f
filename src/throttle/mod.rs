//! Throttling: per client IP, token buckets on the endpoints that check
//! secrets or create things (login, register, token, authorize, introspect);
//! per account, a growing lockout after consecutive failed logins
//! ([`lockout`]). The client IP is the socket peer's, unless the peer is a
//! configured trusted proxy, whose `X-Forwarded-For`/`Forwarded` is then
//! believed — so a client can't spoof its way around a limit.

pub mod lockout;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::configuration::ThrottleSettings;

/// The endpoints that share a bucket per IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Password checks and sign-ups: login, register, the SSO login form.
    Credentials,
    /// The OAuth token and introspection endpoints.
    Token,
}

/// A request over its limit: when to come back.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many requests; retry in {} s", retry_after.as_secs().max(1))]
pub struct Throttled {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets per (class, client IP), in memory: each instance limits
/// what reaches it (behind a load balancer, N instances allow N times the
/// rate; the per-account lockout is shared through the database).
pub struct RateLimiter {
    enabled: bool,
    credentials: Rate,
    token: Rate,
    buckets: Mutex<HashMap<(Class, IpAddr), Bucket>>,
}

/// Buckets kept at most; past this, full ones are forgotten first.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(settings: &ThrottleSettings) -> RateLimiter {
        let rate = |burst: u32, per_minute: u32| Rate {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
        };
        RateLimiter {
            enabled: settings.enabled,
            credentials: rate(settings.credentials_burst, settings.credentials_per_minute),
            token: rate(settings.token_burst, settings.token_per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the client's bucket, or says when one will be
    /// there.
    pub fn check(&self, class: Class, ip: Option<IpAddr>) -> Result<(), Throttled> {
        let Some(ip) = ip.filter(|_| self.enabled) else {
            return Ok(());
        };
        let rate = match class {
            Class::Credentials => self.credentials,
            Class::Token => self.token,
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Forget buckets that have refilled: they carry no state.
            buckets.retain(|(class, _), b| {
                let rate = match class {
                    Class::Credentials => self.credentials,
                    Class::Token => self.token,
                };
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate.per_second
                    < rate.burst
            });
        }
        let bucket = buckets.entry((class, ip)).or_insert(Bucket {
            tokens: rate.burst,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refill).min(rate.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(Throttled {
                retry_after: Duration::from_secs_f64(wait.ceil().max(1.0)),
            })
        }
    }
}

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

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(&ThrottleSettings {
            enabled: true,
            credentials_burst: 3,
            credentials_per_minute: 60,
            token_burst: 1,
            token_per_minute: 1,
            ..ThrottleSettings::default()
        });
        let a = Some(ip("192.0.2.1"));
        for _ in 0..3 {
            assert!(limiter.check(Class::Credentials, a).is_ok());
        }
        let throttled = limiter.check(Class::Credentials, a).unwrap_err();
        assert_eq!(throttled.retry_after, Duration::from_secs(1));
        // Another client, and another class, have their own buckets.
        assert!(
            limiter
                .check(Class::Credentials, Some(ip("192.0.2.2")))
                .is_ok()
        );
        assert!(limiter.check(Class::Token, a).is_ok());
        assert_eq!(
            limiter.check(Class::Token, a).unwrap_err().retry_after,
            Duration::from_secs(60)
        );
    }
}
