//! Which key signs, which are published, and when that changes: a pure
//! function of the key files (their creation times) and the clock, so every
//! instance sharing a keys folder agrees without talking to the others.
//!
//! Keys are taken in *creation order* (creation time, ties broken by kid:
//! the same order everywhere). A key *activates* `prepublication` after its
//! creation — it is published as *next* meanwhile, longer than any JWKS
//! cache lives, so no verifier meets an unknown `kid` — or at once when
//! created with `--now`. The signing key is the latest key in creation order
//! that has activated. So a key is *superseded* when a key created after it
//! activates, and from then on it never signs again: the signing key only
//! ever moves forward in creation order. An emergency key (`--now`) thus
//! stays in force until a key created after it activates, and an ordinary
//! key created before it, still waiting, never signs. A superseded key stays
//! published as *previous* for `retention` (the longest a token it signed
//! can live), then it is *expired*.
//!
//! A *revoked* key (leaked) is never published nor used. Revoked after its
//! activation, it still counts as having superseded the keys before it: if
//! it was the one signing, nothing signs until a key created after it
//! activates (`--now` for at once) — never one it superseded. Revoked by its
//! activation, it never activated (it superseded nothing) and is left out
//! altogether.
//!
//! Until some key has activated (a first key, or only fresh ones), the
//! earliest key not revoked signs.

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
    /// No token it signed can still be live, and its file no longer marks
    /// older keys superseded: its file may be deleted.
    pub retired: bool,
}

/// The keys with what the schedule needs of each, computed once.
struct Timeline<'a> {
    policy: &'a KeyPolicy,
    keys: &'a [KeyTimes],
    /// Indices into `keys`, in creation order.
    order: Vec<usize>,
    /// Each key's activation, when it activates at all (not revoked by then).
    activation: Vec<Option<DateTime<Utc>>>,
    /// When a key created after it activates.
    superseded: Vec<Option<DateTime<Utc>>>,
}

impl<'a> Timeline<'a> {
    fn new(policy: &'a KeyPolicy, keys: &'a [KeyTimes]) -> Timeline<'a> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| {
            keys[a]
                .created_at
                .cmp(&keys[b].created_at)
                .then_with(|| keys[a].kid.cmp(&keys[b].kid))
        });
        let activation: Vec<Option<DateTime<Utc>>> = keys
            .iter()
            .map(|key| {
                let at = if key.immediate {
                    key.created_at
                } else {
                    key.created_at + policy.prepublication
                };
                // Revoked by its activation: it never activated, so it
                // superseded nothing (a first key may have signed through
                // the fallback, but nothing older exists to revive).
                key.revoked.is_none_or(|revoked| revoked > at).then_some(at)
            })
            .collect();
        let mut superseded = vec![None; keys.len()];
        let mut earliest_later: Option<DateTime<Utc>> = None;
        for &i in order.iter().rev() {
            superseded[i] = earliest_later;
            if let Some(at) = activation[i] {
                earliest_later = Some(earliest_later.map_or(at, |e| e.min(at)));
            }
        }
        Timeline {
            policy,
            keys,
            order,
            activation,
            superseded,
        }
    }

    /// The key that signs at `now`, if any.
    fn signer(&self, now: DateTime<Utc>) -> Option<usize> {
        let latest_activated = self
            .order
            .iter()
            .rev()
            .find(|&&i| self.activation[i].is_some_and(|at| at <= now));
        match latest_activated {
            Some(&i) => self.keys[i].revoked.is_none().then_some(i),
            // Nothing has activated yet (a first key, or only fresh ones):
            // the earliest signs, or nothing could.
            None => self
                .order
                .iter()
                .copied()
                .find(|&i| self.keys[i].revoked.is_none()),
        }
    }

    fn states(&self, now: DateTime<Utc>) -> Vec<KeyState> {
        let signer = self.signer(now);
        (0..self.keys.len())
            .map(|i| {
                if self.keys[i].revoked.is_some() {
                    KeyState::Revoked
                } else if let Some(at) = self.superseded[i].filter(|&at| at <= now) {
                    if now < at + self.policy.retention {
                        KeyState::Previous
                    } else {
                        KeyState::Expired
                    }
                } else if signer == Some(i) {
                    KeyState::Active
                } else {
                    KeyState::Next
                }
            })
            .collect()
    }

    /// The moments after `now` when some state may change: activations
    /// and the ends of retention.
    fn changes_after(&self, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut times: Vec<DateTime<Utc>> = self
            .activation
            .iter()
            .flatten()
            .flat_map(|&at| [at, at + self.policy.retention])
            .filter(|&at| at > now)
            .collect();
        times.sort();
        times.dedup();
        times
    }

    fn retired(&self, i: usize, state: KeyState, now: DateTime<Utc>) -> bool {
        match state {
            KeyState::Expired => true,
            // A revoked key that activated marks the keys before it
            // superseded: kept until it is past its own retention.
            KeyState::Revoked => match self.activation[i] {
                None => true,
                Some(_) => self.superseded[i].is_some_and(|at| at + self.policy.retention <= now),
            },
            _ => false,
        }
    }
}

impl KeyPolicy {
    /// The state of every key at `now`, in the order given.
    pub fn schedule(&self, keys: &[KeyTimes], now: DateTime<Utc>) -> Vec<Scheduled> {
        let timeline = Timeline::new(self, keys);
        let states = timeline.states(now);
        let later: Vec<(DateTime<Utc>, Vec<KeyState>)> = timeline
            .changes_after(now)
            .into_iter()
            .map(|at| (at, timeline.states(at)))
            .collect();
        states
            .iter()
            .enumerate()
            .map(|(i, &state)| Scheduled {
                state,
                next_change: later
                    .iter()
                    .find(|(_, then)| then[i] != state)
                    .map(|(at, _)| *at),
                retired: timeline.retired(i, state, now),
            })
            .collect()
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
    fn revoking_the_signing_key_never_brings_back_the_keys_it_superseded() {
        let keys = [
            key("old", 0, false),
            key("mid", 100, false),
            revoked(key("leaked", 200, false), 212),
        ];
        // At 215 "mid" was superseded 5 minutes ago: still published, but
        // it does not sign again; nothing does until a newer key activates.
        assert_eq!(states(&keys, 215), [Expired, Previous, Revoked]);
        // Long after: "mid" expired too.
        assert_eq!(states(&keys, 300), [Expired, Expired, Revoked]);
        // The revoked key still retires what came before it, so its file
        // is kept (it marks them superseded).
        let schedule = POLICY.schedule(&keys, at(300));
        assert!(schedule.iter().all(|s| s.retired || s.state == Revoked));
        assert!(!schedule[2].retired);
        assert!(!POLICY.schedule(&keys, at(215))[2].retired);
        // A rotation after the leak signs after its delay, as usual; the
        // revoked key may go once its own retention is over.
        let keys = [
            keys[0].clone(),
            keys[1].clone(),
            keys[2].clone(),
            key("new", 220, false),
        ];
        assert_eq!(states(&keys, 229), [Expired, Previous, Revoked, Next]);
        assert_eq!(states(&keys, 230), [Expired, Expired, Revoked, Active]);
        assert!(!POLICY.schedule(&keys, at(249))[2].retired);
        assert!(POLICY.schedule(&keys, at(250))[2].retired);
        // A key revoked before it signed changes nothing for the others.
        let keys = [
            key("current", 0, false),
            revoked(key("fresh", 100, false), 105),
        ];
        assert_eq!(states(&keys, 200), [Active, Revoked]);
        assert!(POLICY.schedule(&keys, at(105))[1].retired);
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
    /// The reported case: `--now` inside the first key's pre-publication
    /// window stays in force when the first key's activation comes.
    #[test]
    fn an_emergency_key_before_the_first_key_activates_stays_in_force() {
        let keys = [key("first", 0, false), key("urgent", 5, true)];
        assert_eq!(states(&keys, 0), [Active, Next]);
        assert_eq!(states(&keys, 5), [Previous, Active]);
        // The first key's own activation changes nothing.
        assert_eq!(states(&keys, 10), [Previous, Active]);
        assert_eq!(states(&keys, 24), [Previous, Active]);
        assert_eq!(states(&keys, 25), [Expired, Active]);
        assert_eq!(states(&keys, 10_000), [Expired, Active]);
        let schedule = POLICY.schedule(&keys, at(5));
        assert_eq!(schedule[0].next_change, Some(at(25)));
        assert_eq!(schedule[1].next_change, None);
    }

    #[test]
    fn an_ordinary_rotation_after_an_emergency_takes_over_after_its_delay() {
        let keys = [
            key("first", 0, false),
            key("urgent", 5, true),
            key("routine", 20, false),
        ];
        assert_eq!(states(&keys, 20), [Previous, Active, Next]);
        assert_eq!(states(&keys, 29), [Expired, Active, Next]);
        assert_eq!(states(&keys, 30), [Expired, Previous, Active]);
        assert_eq!(states(&keys, 50), [Expired, Expired, Active]);
        assert_eq!(POLICY.schedule(&keys, at(20))[1].next_change, Some(at(30)));
    }

    #[test]
    fn an_emergency_during_an_ordinary_rotation_wins_and_the_waiting_key_never_signs() {
        let keys = [
            key("old", 0, false),
            key("routine", 100, false),
            key("urgent", 105, true),
        ];
        assert_eq!(states(&keys, 104), [Active, Next, Next]);
        assert_eq!(states(&keys, 105), [Previous, Previous, Active]);
        // The routine key reaches its activation: created before the
        // emergency key, it was superseded and stays so.
        assert_eq!(states(&keys, 110), [Previous, Previous, Active]);
        assert_eq!(states(&keys, 125), [Expired, Expired, Active]);
    }

    #[test]
    fn two_emergency_keys_in_a_row_the_second_signs() {
        let keys = [
            key("first", 0, false),
            key("urgent", 5, true),
            key("again", 6, true),
        ];
        assert_eq!(states(&keys, 6), [Previous, Previous, Active]);
        assert_eq!(states(&keys, 10), [Previous, Previous, Active]);
        assert_eq!(states(&keys, 26), [Expired, Expired, Active]);
        // In the same second, with the old names: the kid decides, the
        // same way on every instance.
        let keys = [key("b", 5, true), key("a", 5, true)];
        assert_eq!(states(&keys, 5), [Active, Previous]);
    }

    #[test]
    fn revoking_the_first_key_before_its_activation_leaves_the_emergency_key() {
        let keys = [revoked(key("first", 0, false), 6), key("urgent", 5, true)];
        for now in [6, 10, 30] {
            assert_eq!(states(&keys, now), [Revoked, Active], "at {now}");
        }
        // It never activated: nothing keeps its file.
        assert!(POLICY.schedule(&keys, at(6))[0].retired);
    }

    /// Every small combination of three keys (created at a few moments,
    /// ordinary or `--now`, revoked or not), replayed minute by minute with
    /// the folder as it was at each minute (files appear when created and
    /// are renamed when revoked): at most one key signs, a key that stopped
    /// signing never signs again, and states only move forward. Over the
    /// final folder, each key's `next_change` is exactly when its state
    /// next differs.
    #[test]
    fn a_superseded_key_never_signs_again() {
        const HORIZON: i64 = 70;
        /// When a key is created, whether with `--now`, when revoked.
        type Plan = (i64, bool, Option<i64>);
        let mut options: Vec<Plan> = Vec::new();
        for created in [0, 4, 12] {
            for immediate in [false, true] {
                for revoked_at in [None, Some(6), Some(15)] {
                    if revoked_at.is_none_or(|r| r > created) {
                        options.push((created, immediate, revoked_at));
                    }
                }
            }
        }
        let rank = |s: KeyState| match s {
            Next => 0,
            Active => 1,
            Previous => 2,
            Expired => 3,
            Revoked => 4,
        };
        let folder_at = |all: &[(&str, Plan); 3], now: i64| -> Vec<KeyTimes> {
            all.iter()
                .filter(|(_, (created, _, _))| *created <= now)
                .map(|(kid, (created, immediate, revoked_at))| {
                    let k = key(kid, *created, *immediate);
                    match revoked_at {
                        Some(r) if *r <= now => revoked(k, *r),
                        _ => k,
                    }
                })
                .collect()
        };
        let mut scenarios = 0;
        for &a in &options {
            for &b in &options {
                for &c in &options {
                    let all = [("a", a), ("b", b), ("c", c)];
                    let mut signed: Vec<String> = Vec::new();
                    let mut last: Vec<(String, KeyState)> = Vec::new();
                    for now in 0..HORIZON {
                        let folder = folder_at(&all, now);
                        let schedule = POLICY.schedule(&folder, at(now));
                        let active: Vec<&str> = folder
                            .iter()
                            .zip(&schedule)
                            .filter(|(_, s)| s.state == Active)
                            .map(|(k, _)| k.kid.as_str())
                            .collect();
                        assert!(active.len() <= 1, "{all:?} at {now}: {active:?}");
                        if let Some(&kid) = active.first()
                            && signed.last().map(String::as_str) != Some(kid)
                        {
                            assert!(
                                !signed.iter().any(|s| s == kid),
                                "{all:?} at {now}: {kid} signs again after {signed:?}"
                            );
                            signed.push(kid.to_owned());
                        }
                        for (k, s) in folder.iter().zip(&schedule) {
                            match last.iter_mut().find(|(kid, _)| *kid == k.kid) {
                                Some((kid, before)) => {
                                    assert!(
                                        rank(*before) <= rank(s.state),
                                        "{all:?} at {now}: {kid} went {before:?} to {:?}",
                                        s.state
                                    );
                                    *before = s.state;
                                }
                                None => last.push((k.kid.clone(), s.state)),
                            }
                        }
                    }
                    let folder = folder_at(&all, HORIZON);
                    let timeline: Vec<Vec<Scheduled>> = (0..=HORIZON)
                        .map(|now| POLICY.schedule(&folder, at(now)))
                        .collect();
                    for (now, scheduled) in timeline.iter().enumerate().take(HORIZON as usize) {
                        for (i, s) in scheduled.iter().enumerate() {
                            let changes = (now + 1..=HORIZON as usize)
                                .find(|&t| timeline[t][i].state != s.state)
                                .map(|t| at(t as i64));
                            assert_eq!(s.next_change, changes, "{all:?}: key {i} at {now}");
                        }
                    }
                    scenarios += 1;
                }
            }
        }
        assert_eq!(scenarios, options.len().pow(3));
    }
}
