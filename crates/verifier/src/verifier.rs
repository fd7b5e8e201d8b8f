//! The verifier a sibling service holds: keys discovered from the issuer,
//! cached per the JWKS `Cache-Control`, refreshed in the background, refetched
//! once (rate-limited, coalesced) when a token names an unknown kid.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::validate::{self, KeySet, Rules};
use crate::{Claims, Error};

/// Settings of a [`Verifier`]; start with [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    leeway: Duration,
    min_cache: Duration,
    max_cache: Duration,
    min_refetch_interval: Duration,
    retry_interval: Duration,
    http_timeout: Duration,
}

impl VerifierBuilder {
    /// An audience the tokens must carry (at least one is required).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Bounds on how long fetched keys are trusted, whatever the JWKS
    /// `max-age` says (default 60 s to 1 h).
    pub fn cache_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_cache = min;
        self.max_cache = max.max(min);
        self
    }

    /// Least time between two refetches caused by unknown kids (default
    /// 30 s), so forged kids can't make us hammer the issuer.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Timeout of each request to the issuer (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Fetches the discovery document and the JWKS, and starts the
    /// background refresh. Needs a tokio runtime.
    pub async fn discover(self) -> Result<Verifier, Error> {
        if self.audiences.is_empty() {
            return Err(Error::Config("at least one audience is required".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(self.http_timeout)
            // Never follow a redirect to somewhere else for keys.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        let discovery_url = format!("{issuer}/.well-known/openid-configuration");
        let (body, _) = fetch(&http, &discovery_url).await?;
        let discovery: Discovery = serde_json::from_slice(&body)
            .map_err(|e| Error::Discovery(format!("{discovery_url}: {e}")))?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(Error::Discovery(format!(
                "the discovery document names issuer {:?}, not {issuer:?}",
                discovery.issuer
            )));
        }
        let rules = Rules::new(&discovery.issuer, &self.audiences, self.leeway.as_secs());
        let inner = Arc::new(Inner {
            rules,
            source: Some(KeySource {
                http,
                jwks_uri: discovery.jwks_uri,
                min_cache: self.min_cache,
                max_cache: self.max_cache,
                min_refetch_interval: self.min_refetch_interval,
                retry_interval: self.retry_interval,
                fetches: AtomicU64::new(0),
            }),
            keys: RwLock::new(Arc::new(KeySet::default())),
            refetch: tokio::sync::Mutex::new(()),
            last_refetch: Mutex::new(None),
        });
        let source = inner.source.as_ref().expect("just set");
        let (keys, ttl) = source.fetch().await?;
        *inner.keys.write().expect("not poisoned") = Arc::new(keys);
        tokio::spawn(refresh_loop(Arc::downgrade(&inner), ttl));
        Ok(Verifier { inner })
    }

    /// A verifier with fixed keys and no issuer to ask: for tests,
    /// benchmarks and air-gapped set-ups.
    pub fn with_keys(self, keys: KeySet) -> Verifier {
        Verifier {
            inner: Arc::new(Inner {
                rules: Rules::new(
                    self.issuer.trim_end_matches('/'),
                    &self.audiences,
                    self.leeway.as_secs(),
                ),
                source: None,
                keys: RwLock::new(Arc::new(keys)),
                refetch: tokio::sync::Mutex::new(()),
                last_refetch: Mutex::new(None),
            }),
        }
    }
}

/// Verifies Tessera access tokens locally. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.inner.current())
            .finish()
    }
}

struct Inner {
    rules: Rules,
    source: Option<KeySource>,
    keys: RwLock<Arc<KeySet>>,
    /// Held while refetching for an unknown kid: concurrent misses wait
    /// for one fetch instead of each making their own.
    refetch: tokio::sync::Mutex<()>,
    last_refetch: Mutex<Option<Instant>>,
}

struct KeySource {
    http: reqwest::Client,
    jwks_uri: String,
    min_cache: Duration,
    max_cache: Duration,
    min_refetch_interval: Duration,
    retry_interval: Duration,
    /// JWKS requests made, successful or not.
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    /// Starts building a verifier for tokens issued by `issuer` (Tessera's
    /// public base URL, the `iss` of its tokens).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(30),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
        }
    }

    /// Verifies a token: RS256 with a published key, `typ` at+jwt, `iss`,
    /// `aud`, `exp` and `nbf`. A kid we don't know causes one refetch of the
    /// JWKS (at most once per `min_refetch_interval`) before rejection.
    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let kid = validate::checked_kid(token)?;
        let keys = self.inner.current();
        if !keys.contains(&kid) && self.inner.refetch_for(&kid).await {
            return validate::verify_with(token, &kid, &self.inner.current(), &self.inner.rules);
        }
        validate::verify_with(token, &kid, &keys, &self.inner.rules)
    }

    /// Verifies with the keys at hand, never fetching: for synchronous code.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, Error> {
        validate::verify(token, &self.inner.current(), &self.inner.rules)
    }

    /// How many keys are cached now.
    pub fn key_count(&self) -> usize {
        self.inner.current().len()
    }

    /// How many times the JWKS has been requested (for metrics and tests).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner
            .source
            .as_ref()
            .map_or(0, |s| s.fetches.load(Ordering::Relaxed))
    }
}

impl Inner {
    fn current(&self) -> Arc<KeySet> {
        self.keys.read().expect("not poisoned").clone()
    }

    fn replace(&self, keys: KeySet) {
        *self.keys.write().expect("not poisoned") = Arc::new(keys);
    }

    /// Refetches the JWKS because of `kid`, unless one was fetched too
    /// recently; true when `kid` is known afterwards.
    async fn refetch_for(&self, kid: &str) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let _one_at_a_time = self.refetch.lock().await;
        if self.current().contains(kid) {
            return true; // a concurrent miss fetched it
        }
        {
            let mut last = self.last_refetch.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < source.min_refetch_interval) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match source.fetch().await {
            Ok((keys, _)) => {
                tracing::info!(keys = keys.len(), "JWKS refetched for an unknown kid");
                self.replace(keys);
            }
            Err(e) => tracing::warn!(error = %e, "JWKS refetch failed; keeping the last good keys"),
        }
        self.current().contains(kid)
    }
}

impl KeySource {
    async fn fetch(&self) -> Result<(KeySet, Duration), Error> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let (body, max_age) = fetch(&self.http, &self.jwks_uri).await?;
        let keys = KeySet::from_jwks(&body)?;
        if keys.is_empty() {
            return Err(Error::Jwks("the JWKS holds no RS256 signing key".into()));
        }
        Ok((keys, self.cache_lifetime(max_age)))
    }

    /// The JWKS `max-age`, within the configured bounds.
    fn cache_lifetime(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.min_cache)
            .clamp(self.min_cache, self.max_cache)
    }
}

/// Refreshes the keys before they go stale; while the issuer is
/// unreachable, keeps the last good keys and retries.
async fn refresh_loop(inner: Weak<Inner>, ttl: Duration) {
    // Refresh at 80% of the lifetime, so keys never go stale.
    let mut wait = ttl.mul_f32(0.8);
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = inner.upgrade() else { return }; // verifier dropped
        let source = inner
            .source
            .as_ref()
            .expect("only discovered verifiers refresh");
        match source.fetch().await {
            Ok((keys, next)) => {
                inner.replace(keys);
                wait = next.mul_f32(0.8);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh the JWKS; still using the last good keys");
                wait = source.retry_interval;
            }
        }
    }
}

/// GETs a document; also returns the response's `Cache-Control: max-age`.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<(Vec<u8>, Option<Duration>), Error> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Unreachable(format!("{url}: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::Unreachable(format!(
            "{url}: HTTP {}",
            response.status()
        )));
    }
    let max_age = response
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let body = response
        .bytes()
        .await
        .map_err(|e| Error::Unreachable(format!("{url}: {e}")))?;
    Ok((body.to_vec(), max_age))
}

/// The `max-age` directive of a Cache-Control value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_is_max_age_within_bounds() {
        let source = KeySource {
            http: reqwest::Client::new(),
            jwks_uri: String::new(),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(30),
            retry_interval: Duration::from_secs(10),
            fetches: AtomicU64::new(0),
        };
        let secs = Duration::from_secs;
        assert_eq!(source.cache_lifetime(Some(secs(300))), secs(300));
        assert_eq!(source.cache_lifetime(Some(secs(5))), secs(60));
        assert_eq!(source.cache_lifetime(Some(secs(86_400))), secs(3600));
        assert_eq!(source.cache_lifetime(None), secs(60));
    }

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age("Max-Age=\"60\", public"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
