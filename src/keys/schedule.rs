//! Which key signs, which are published, and when that changes: a pure
//! function of the key files (their creation times) and the clock, so every
//! instance sharing a keys folder agrees without talking to the others.
//!
//! A key becomes *active* (signs) `prepublication` after its creation — it is
//! published as *next* meanwhile, longer than any JWKS cache lives, so no
//! verifier meets an unknown `kid` — or at once when created with `--now`.
//! Of the keys past their activation the latest one signs; an older one
//! stays published as *previous* for `retention` after it was superseded
//! (the longest a token it signed can live), then it is *expired*.
//!
//! A *revoked* key (leaked) is never published nor used. Revoked after its
//! activation, it still counts as having superseded the keys before it: if
//! it was the one signing, the newest key still published (a *previous*
//! one) signs again, and a key that has expired never comes back. Revoked
//! before its activation, it never signed and is left out altogether. Until some key reaches its activation
//! (a first key, or only fresh ones), the earliest one signs.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// When a key may be used, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimes {
    pub kid: String,
    pub created_at: DateTime<Utc>,
    /// Created with `--now`: active from creation (emergency rotation).
    pub immediate: bool,
    /// When it was revoked: never published or used again.
    pub revoked: Option<DateTime<Utc>>,
}

/// How long keys wait before signing, and stay published after.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    pub prepublication: Duration,
    pub retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing.
    Next,
    /// Published and signing.
    Active,
    /// Published, no longer signing: tokens it signed may still be live.
    Previous,
    /// No longer published.
    Expired,
    /// Revoked: not published, not used.
    Revoked,
}

impl KeyState {
    pub fn is_published(self) -> bool {
        matches!(self, KeyState::Next | KeyState::Active | KeyState::Previous)
    }
}

/// A key's state at some moment, and when it next changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub state: KeyState,
    pub next_change: Option<DateTime<Utc>>,
    /// Past its retention, revoked or not: no token it signed can still be
    /// live, so its file may be deleted.
    pub retired: bool,
}

impl KeyPolicy {
    fn activation(&self, key: &KeyTimes) -> DateTime<Utc> {
        if key.immediate {
            key.created_at
        } else {
            key.created_at + self.prepublication
        }
    }

    /// Revoked before it could sign: as if it had never existed.
    fn never_signed(&self, key: &KeyTimes) -> bool {
        key.revoked.is_some_and(|at| at < self.activation(key))
    }

    /// The state of every key at `now`, in the order given.
    pub fn schedule(&self, keys: &[KeyTimes], now: DateTime<Utc>) -> Vec<Scheduled> {
        let counted: Vec<usize> = (0..keys.len())
            .filter(|&i| !self.never_signed(&keys[i]))
            .collect();
        let subset: Vec<KeyTimes> = counted.iter().map(|&i| keys[i].clone()).collect();
        let mut out = vec![
            Scheduled {
                state: KeyState::Revoked,
                next_change: None,
                retired: true,
            };
            keys.len()
        ];
        for (s, &i) in self
            .with_revocations(&subset, now)
            .into_iter()
            .zip(&counted)
        {
            out[i] = s;
        }
        out
    }

    /// The schedule of keys that all count (none revoked before activation).
    fn with_revocations(&self, keys: &[KeyTimes], now: DateTime<Utc>) -> Vec<Scheduled> {
        let mut out = self.natural_schedule(keys, now);
        for s in out.iter_mut() {
            s.retired = s.state == KeyState::Expired;
        }
        let natural_active = out.iter().position(|s| s.state == KeyState::Active);
        for (key, s) in keys.iter().zip(out.iter_mut()) {
            if key.revoked.is_some() {
                s.state = KeyState::Revoked;
                s.next_change = None;
            }
        }
        if let Some(i) = natural_active.filter(|&i| keys[i].revoked.is_some()) {
            // The signing key is revoked: the newest key still published
            // before it signs again, until the next activation.
            let resume = keys
                .iter()
                .zip(&out)
                .enumerate()
                .filter(|(_, (_, s))| s.state == KeyState::Previous)
                .max_by(|(_, (a, _)), (_, (b, _))| {
                    self.activation(a)
                        .cmp(&self.activation(b))
                        .then_with(|| a.kid.cmp(&b.kid))
                })
                .map(|(j, _)| j);
            if let Some(j) = resume {
                let next = self.natural_schedule(keys, now)[i].next_change;
                out[j].state = KeyState::Active;
                out[j].next_change = next;
            }
        }
        out
    }

    /// The schedule as if nothing were revoked.
    fn natural_schedule(&self, keys: &[KeyTimes], now: DateTime<Utc>) -> Vec<Scheduled> {
        // By activation, ties broken by kid: the same order everywhere.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            self.activation(&keys[a])
                .cmp(&self.activation(&keys[b]))
                .then_with(|| keys[a].kid.cmp(&keys[b].kid))
        });
        let activations: Vec<DateTime<Utc>> =
            order.iter().map(|&i| self.activation(&keys[i])).collect();
        let eligible = activations.iter().filter(|&&a| a <= now).count();
        let mut out = vec![
            Scheduled {
                state: KeyState::Expired,
                next_change: None,
                retired: false,
            };
            keys.len()
        ];
        for (rank, &i) in order.iter().enumerate() {
            let later = activations.get(rank + 1).copied();
            out[i] = if eligible == 0 {
                // Nothing has reached its activation (a first key, or only
                // fresh ones): the earliest signs, or nothing could.
                if rank == 0 {
                    Scheduled {
                        state: KeyState::Active,
                        next_change: later,
                        retired: false,
                    }
                } else {
                    Scheduled {
                        state: KeyState::Next,
                        next_change: Some(activations[rank]),
                        retired: false,
                    }
                }
            } else if rank + 1 == eligible {
                Scheduled {
                    state: KeyState::Active,
                    next_change: later,
                    retired: false,
                }
            } else if rank >= eligible {
                Scheduled {
                    state: KeyState::Next,
                    next_change: Some(activations[rank]),
                    retired: false,
                }
            } else {
                // Superseded when the next key in line became active.
                let superseded = later.expect("an earlier eligible key has a successor");
                let expires = superseded + self.retention;
                if now < expires {
                    Scheduled {
                        state: KeyState::Previous,
                        next_change: Some(expires),
                        retired: false,
                    }
                } else {
                    Scheduled {
                        state: KeyState::Expired,
                        next_change: None,
                        retired: false,
                    }
                }
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + Duration::minutes(minutes)
    }

    fn key(kid: &str, created: i64, immediate: bool) -> KeyTimes {
        KeyTimes {
            kid: kid.into(),
            created_at: at(created),
            immediate,
            revoked: None,
        }
    }

    fn revoked(mut key: KeyTimes, at_minute: i64) -> KeyTimes {
        key.revoked = Some(at(at_minute));
        key
    }

    const POLICY: KeyPolicy = KeyPolicy {
        prepublication: Duration::minutes(10),
        retention: Duration::minutes(20),
    };

    fn states(keys: &[KeyTimes], now: i64) -> Vec<KeyState> {
        POLICY
            .schedule(keys, at(now))
            .into_iter()
            .map(|s| s.state)
            .collect()
    }

    use KeyState::*;

    #[test]
    fn a_lone_key_signs_at_once() {
        assert_eq!(states(&[key("a", 0, false)], 0), [Active]);
        assert_eq!(states(&[key("a", 0, false)], 1000), [Active]);
    }

    #[test]
    fn a_rotation_publishes_first_then_signs_then_retires_the_old_key() {
        let keys = [key("old", 0, false), key("new", 100, false)];
        assert_eq!(states(&keys, 100), [Active, Next]);
        assert_eq!(states(&keys, 109), [Active, Next]);
        // At 110 the new key signs; the old one is kept 20 minutes.
        assert_eq!(states(&keys, 110), [Previous, Active]);
        assert_eq!(states(&keys, 129), [Previous, Active]);
        assert_eq!(states(&keys, 130), [Expired, Active]);
        let schedule = POLICY.schedule(&keys, at(100));
        assert_eq!(schedule[0].next_change, Some(at(110)));
        assert_eq!(schedule[1].next_change, Some(at(110)));
        assert_eq!(
            POLICY.schedule(&keys, at(115))[0].next_change,
            Some(at(130))
        );
    }

    #[test]
    fn an_emergency_key_signs_at_once() {
        let keys = [key("leaked", 0, false), key("fresh", 100, true)];
        assert_eq!(states(&keys, 100), [Previous, Active]);
    }

    #[test]
    fn the_order_of_the_files_does_not_matter() {
        let a = [key("x", 0, false), key("y", 50, false), key("z", 51, false)];
        let b = [a[2].clone(), a[0].clone(), a[1].clone()];
        for now in [0, 55, 60, 61, 70, 100] {
            let mut sa = states(&a, now);
            let sb = states(&b, now);
            sa.rotate_right(1);
            assert_eq!(sa, sb, "at {now}");
        }
    }

    #[test]
    fn revoking_the_signing_key_brings_back_a_published_one_never_an_expired_one() {
        let keys = [
            key("old", 0, false),
            key("mid", 100, false),
            revoked(key("leaked", 200, false), 212),
        ];
        // At 215 "mid" was superseded 5 minutes ago: still published, signs again.
        assert_eq!(states(&keys, 215), [Expired, Active, Revoked]);
        // Long after: "mid" expired too, and nothing may sign.
        assert_eq!(states(&keys, 300), [Expired, Expired, Revoked]);
        // The revoked key still retires what came before it.
        let schedule = POLICY.schedule(&keys, at(300));
        assert!(schedule.iter().all(|s| s.retired || s.state == Revoked));
        assert!(!POLICY.schedule(&keys, at(215))[2].retired);
        // A key revoked before it signed changes nothing for the others.
        let keys = [
            key("current", 0, false),
            revoked(key("fresh", 100, false), 105),
        ];
        assert_eq!(states(&keys, 200), [Active, Revoked]);
    }

    #[test]
    fn ties_are_broken_by_kid() {
        let keys = [key("b", 0, false), key("a", 0, false)];
        assert_eq!(states(&keys, 10), [Active, Previous]);
    }

    #[test]
    fn only_fresh_keys_the_earliest_signs() {
        let keys = [key("second", 5, false), key("first", 3, false)];
        assert_eq!(states(&keys, 5), [Next, Active]);
        assert_eq!(states(&keys, 13), [Next, Active]);
        assert_eq!(states(&keys, 15), [Active, Previous]);
    }
}
