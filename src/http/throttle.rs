//! Rate limits per client network on the endpoints that check secrets or
//! create things (login, register, the sign-in form, token, introspect):
//! `governor`'s GCRA, one keyed limiter per [`Class`]. The client is the
//! address [`super::client_ip`] finds (a trusted proxy's word, or the socket
//! peer); an IPv4 address is one client, an IPv6 address counts as its /64.
//!
//! Each instance limits what reaches it (behind a load balancer, N instances
//! allow N times the rate); the per-account lockout, shared through the
//! database, is `crate::throttle::lockout`.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::{Quota, RateLimiter as Gcra};

use crate::configuration::ThrottleSettings;
pub use crate::throttle::Throttled;

/// The endpoints that share an allowance per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Password checks and sign-ups: login, register, the SSO login form.
    Credentials,
    /// The OAuth token and introspection endpoints.
    Token,
}

/// Clients tracked at most per class. An entry is a few dozen bytes, so the
/// table stays within a few MiB whatever the traffic.
pub const MAX_CLIENTS: usize = 100_000;

/// Whose allowance a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address: a /64 is what one subscriber
    /// is routinely given, so keying each address would give one host
    /// 2^64 fresh allowances (and as many table entries).
    V6Network(u64),
    /// Every client first seen while the table is full (see [`CappedStore`]).
    Overflow,
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        // `::ffff:a.b.c.d` (a dual-stack socket's view of an IPv4 peer) is
        // that IPv4 address, not a member of one shared /64.
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => Client::V6Network((u128::from(v6) >> 64) as u64),
        }
    }
}

/// `governor`'s concurrent map with a hard cap on its keys.
///
/// When the table is full (after forgetting the idle clients, see
/// [`ClassLimiter::check`]), a client not in it shares one
/// [`Client::Overflow`] allowance with every other newcomer. More than
/// [`MAX_CLIENTS`] networks active within one refill period is a
/// distributed flood: letting newcomers through unchecked would let a holder
/// of a large IPv6 block (a /48 is 65,536 networks) bypass the limit for
/// good by filling the table first, and refusing them all would shut out
/// every new client. Sharing one allowance bounds what the flood gets while
/// the clients already tracked keep their own allowance, and the table's
/// memory stays bounded either way.
#[derive(Debug)]
struct CappedStore {
    clients: DashMapStateStore<Client>,
    cap: usize,
    /// Set when a newcomer was sent to the overflow allowance.
    full: Arc<AtomicBool>,
}

impl StateStore for CappedStore {
    type Key = Client;

    fn measure_and_replace<T, F, E>(&self, key: &Client, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Racing newcomers may each pass the length check: the table can
        // exceed the cap by at most the number of worker threads.
        let key = if self.clients.contains_key(key) || self.clients.len() < self.cap {
            key
        } else {
            self.full.store(true, Ordering::Relaxed);
            &Client::Overflow
        };
        self.clients.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Client> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.clients.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.clients);
    }

    fn len(&self) -> usize {
        self.clients.len()
    }

    fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// How often, at most, a full table is swept from the request path.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// One class's limiter: a quota per client, a bounded table.
struct ClassLimiter<C: Clock = DefaultClock> {
    gcra: Gcra<Client, CappedStore, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    start: C::Instant,
    full: Arc<AtomicBool>,
    /// When the table was last swept, in nanoseconds since `start`.
    last_sweep: AtomicU64,
}

impl<C: Clock + Clone> ClassLimiter<C> {
    fn new(quota: Quota, cap: usize, clock: C) -> Self {
        let full = Arc::new(AtomicBool::new(false));
        let store = CappedStore {
            clients: DashMapStateStore::default(),
            cap,
            full: full.clone(),
        };
        ClassLimiter {
            start: clock.now(),
            gcra: Gcra::new(quota, store, clock.clone()),
            clock,
            full,
            last_sweep: AtomicU64::new(0),
        }
    }

    fn check(&self, ip: IpAddr) -> Result<(), Throttled> {
        let verdict = self.gcra.check_key(&Client::of(ip));
        if self.full.swap(false, Ordering::Relaxed) {
            self.sweep_at_most_every(SWEEP_INTERVAL);
        }
        verdict.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Rounded up: retrying at the advertised moment must succeed.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Throttled {
                retry_after: Duration::from_secs(seconds.max(1)),
            }
        })
    }

    /// Forgets the clients whose allowance is whole again (they carry no
    /// state), unless that was done less than `interval` ago: a sweep walks
    /// the whole table, so a flood must not trigger one per request.
    fn sweep_at_most_every(&self, interval: Duration) {
        let now = u64::from(self.clock.now().duration_since(self.start));
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= interval.as_nanos() as u64 || last == 0;
        if due
            && self
                .last_sweep
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.forget_idle();
        }
    }

    fn forget_idle(&self) {
        self.gcra.retain_recent();
        self.gcra.shrink_to_fit();
    }

    fn tracked(&self) -> usize {
        self.gcra.len()
    }
}

/// The per-client limits of every [`Class`].
pub struct RateLimiter {
    enabled: bool,
    credentials: ClassLimiter,
    token: ClassLimiter,
}

fn quota(burst: u32, per_minute: u32) -> Quota {
    let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(nonzero(per_minute)).allow_burst(nonzero(burst))
}

impl RateLimiter {
    pub fn new(settings: &ThrottleSettings) -> RateLimiter {
        let clock = DefaultClock::default();
        let limiter = |burst, per_minute| {
            ClassLimiter::new(quota(burst, per_minute), MAX_CLIENTS, clock.clone())
        };
        RateLimiter {
            enabled: settings.enabled,
            credentials: limiter(settings.credentials_burst, settings.credentials_per_minute),
            token: limiter(settings.token_burst, settings.token_per_minute),
        }
    }

    fn class(&self, class: Class) -> &ClassLimiter {
        match class {
            Class::Credentials => &self.credentials,
            Class::Token => &self.token,
        }
    }

    /// Takes one request from the client's allowance for `class`, or says
    /// when there will be one. Without a client address (no socket peer),
    /// nothing is limited.
    pub fn check(&self, class: Class, ip: Option<IpAddr>) -> Result<(), Throttled> {
        match ip.filter(|_| self.enabled) {
            Some(ip) => self.class(class).check(ip),
            None => Ok(()),
        }
    }

    /// Forgets the clients whose allowance is whole again, so the tables
    /// hold only clients seen within about one refill period. Called by the
    /// periodic clean-up.
    pub fn forget_idle(&self) {
        self.credentials.forget_idle();
        self.token.forget_idle();
    }

    /// The clients (networks) tracked for `class`.
    pub fn tracked(&self, class: Class) -> usize {
        self.class(class).tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn limiter(credentials: (u32, u32), token: (u32, u32)) -> RateLimiter {
        RateLimiter::new(&ThrottleSettings {
            enabled: true,
            credentials_burst: credentials.0,
            credentials_per_minute: credentials.1,
            token_burst: token.0,
            token_per_minute: token.1,
            ..ThrottleSettings::default()
        })
    }

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let limiter = limiter((3, 60), (1, 1));
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limiter.check(Class::Credentials, a).is_ok());
        }
        let throttled = limiter.check(Class::Credentials, a).unwrap_err();
        assert_eq!(throttled.retry_after, Duration::from_secs(1));
        // Another client, and another class, have their own buckets.
        assert!(limiter.check(Class::Credentials, ip("192.0.2.2")).is_ok());
        assert!(limiter.check(Class::Token, a).is_ok());
        assert_eq!(
            limiter.check(Class::Token, a).unwrap_err().retry_after,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_address_is_the_address() {
        let limiter = limiter((1, 1), (1, 1));
        assert!(
            limiter
                .check(Class::Credentials, ip("2001:db8:1:2::1"))
                .is_ok()
        );
        for same_64 in ["2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"] {
            assert!(limiter.check(Class::Credentials, ip(same_64)).is_err());
        }
        assert!(
            limiter
                .check(Class::Credentials, ip("2001:db8:1:3::1"))
                .is_ok()
        );
        assert!(
            limiter
                .check(Class::Credentials, ip("198.51.100.1"))
                .is_ok()
        );
        assert!(
            limiter
                .check(Class::Credentials, ip("::ffff:198.51.100.1"))
                .is_err()
        );
        // IPv4 addresses in one /64 of the mapped space are apart.
        assert!(
            limiter
                .check(Class::Credentials, ip("::ffff:198.51.100.2"))
                .is_ok()
        );
        assert_eq!(limiter.tracked(Class::Credentials), 4);
    }

    #[test]
    fn disabled_or_without_an_address_nothing_is_limited() {
        let mut settings = ThrottleSettings {
            credentials_burst: 1,
            credentials_per_minute: 1,
            ..ThrottleSettings::default()
        };
        settings.enabled = false;
        let off = RateLimiter::new(&settings);
        let on = limiter((1, 1), (1, 1));
        for _ in 0..3 {
            assert!(off.check(Class::Credentials, ip("192.0.2.1")).is_ok());
            assert!(on.check(Class::Credentials, None).is_ok());
        }
        assert_eq!(off.tracked(Class::Credentials), 0);
    }

    #[test]
    fn the_table_stays_bounded_and_newcomers_past_the_cap_share_one_allowance() {
        let limiter = limiter((2, 1), (1, 1));
        // 200,000 distinct networks within one refill period: none idle,
        // so nothing can be forgotten.
        for n in 0..200_000u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n));
            let _ = limiter.check(Class::Credentials, Some(client));
        }
        let tracked = limiter.tracked(Class::Credentials);
        assert!(tracked <= MAX_CLIENTS + 1, "{tracked}");
        // The first clients keep their own allowance (one left each)...
        assert!(limiter.check(Class::Credentials, ip("10.0.0.1")).is_ok());
        // ...while newcomers share the overflow one, long spent.
        let newcomer = limiter.check(Class::Credentials, ip("2001:db8::1"));
        assert!(newcomer.is_err());
        assert_eq!(limiter.tracked(Class::Credentials), tracked);
        // The other class has its own table.
        assert_eq!(limiter.tracked(Class::Token), 0);
    }

    #[test]
    fn a_full_table_forgets_idle_clients_and_takes_newcomers_again() {
        let clock = FakeRelativeClock::default();
        let limiter = ClassLimiter::new(quota(1, 60), 1000, clock.clone());
        for n in 0..1000u32 {
            assert!(limiter.check(IpAddr::V4(Ipv4Addr::from(n))).is_ok());
        }
        assert_eq!(limiter.tracked(), 1000);
        // Full: a newcomer draws on the overflow allowance, and the sweep
        // it triggers finds nothing idle yet.
        assert!(limiter.check("192.0.2.1".parse().unwrap()).is_ok());
        assert!(limiter.check("192.0.2.2".parse().unwrap()).is_err());
        assert_eq!(limiter.tracked(), 1001);
        // A refill period later every allowance is whole: the next
        // newcomer's sweep forgets them all and it gets its own.
        clock.advance(Duration::from_secs(2));
        assert!(limiter.check("192.0.2.3".parse().unwrap()).is_ok());
        assert!(limiter.check("192.0.2.4".parse().unwrap()).is_ok());
        assert!(limiter.tracked() <= 2, "{}", limiter.tracked());
    }
}
