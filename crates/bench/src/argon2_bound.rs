//! The argon2 bound: a password login costs one argon2id verification, which
//! costs the same as one hash, so 1 ÷ (time of one hash) is the most logins
//! one CPU-second can serve. Measured here, in the bench process, with the
//! server's parameters and, like the server's hashing threads, in one
//! memory block reused from hash to hash. Hashes that allocate a fresh
//! block each time (page faults, zeroing) are timed too, for comparison.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::report::row;

/// Hashes timed per measurement.
const TIMED_HASHES: usize = 21;
/// The first hashes in a process are slower (fresh pages for the memory
/// block), as the server's first login is.
const WARMUP_HASHES: usize = 3;
/// The server's hash length (32 bytes).
const OUTPUT_LEN: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Timed hashes: one measurement, or several joined.
#[derive(Debug, Clone)]
pub struct Argon2Bound {
    pub params: Argon2Params,
    /// In a reused block: the bound.
    hash_times: Vec<Duration>,
    /// In a freshly allocated block each.
    fresh_hash_times: Vec<Duration>,
}

impl Argon2Bound {
    /// One bound from measurements taken at different times (before and
    /// after a load run), so that a machine whose speed drifts — shared
    /// virtual cores — is not judged by one moment.
    pub fn joined(mut self, other: Argon2Bound) -> Argon2Bound {
        self.hash_times.extend(other.hash_times);
        self.fresh_hash_times.extend(other.fresh_hash_times);
        self
    }

    pub fn median_hash_time(&self) -> Duration {
        median(&self.hash_times)
    }

    pub fn median_fresh_hash_time(&self) -> Duration {
        median(&self.fresh_hash_times)
    }

    pub fn logins_per_cpu_second(&self) -> f64 {
        1.0 / self.median_hash_time().as_secs_f64()
    }

    /// Prints the bound and, given the measured logins per server
    /// CPU-second, how close the server came to it.
    pub fn print(&self, logins_per_server_cpu_second: Option<f64>) {
        let p = self.params;
        row(
            "argon2id hash",
            format!(
                "{:.2} ms, median of {} hashes before and after the load \
                 (m={} KiB, t={}, p={}, one reused block, one thread, in the bench)",
                self.median_hash_time().as_secs_f64() * 1000.0,
                self.hash_times.len(),
                p.memory_kib,
                p.iterations,
                p.parallelism
            ),
        );
        row(
            "fresh block",
            format!(
                "{:.2} ms per hash when each allocates its block afresh (hash_password)",
                self.median_fresh_hash_time().as_secs_f64() * 1000.0
            ),
        );
        row(
            "argon2 bound",
            format!(
                "1/t = {:.1} logins per CPU-second",
                self.logins_per_cpu_second()
            ),
        );
        if let Some(rate) = logins_per_server_cpu_second {
            row(
                "login vs bound",
                format!(
                    "{rate:.1} logins per server CPU-second = {:.1} % of the argon2 bound",
                    100.0 * rate / self.logins_per_cpu_second()
                ),
            );
        }
    }
}

/// Times argon2id hashes with `params`, alternating reused-block and
/// fresh-block hashes so that a drift in the machine's speed hits both
/// alike: CPU-bound, so call it off the async workers and while the server
/// is idle.
pub fn measure(params: Argon2Params) -> Result<Argon2Bound> {
    let argon2_params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(OUTPUT_LEN),
    )
    .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params.clone());
    let password = b"bench password, 20c!";
    let salt = b"bench salt 16 b.";
    // As the server's hashing threads: one block, allocated once.
    let mut memory = vec![Block::new(); argon2_params.block_count()];
    let mut out = [0u8; OUTPUT_LEN];
    let mut hash_reused = || -> Result<Duration> {
        let started = Instant::now();
        argon2
            .hash_password_into_with_memory(password, salt, &mut out, &mut memory)
            .map_err(|e| anyhow!("argon2 hashing failed: {e}"))?;
        Ok(started.elapsed())
    };
    let hash_fresh = || -> Result<Duration> {
        let started = Instant::now();
        argon2
            .hash_password(password)
            .map_err(|e| anyhow!("argon2 hashing failed: {e}"))?;
        Ok(started.elapsed())
    };
    for _ in 0..WARMUP_HASHES {
        hash_reused()?;
        hash_fresh()?;
    }
    let mut hash_times = Vec::with_capacity(TIMED_HASHES);
    let mut fresh_hash_times = Vec::with_capacity(TIMED_HASHES);
    for _ in 0..TIMED_HASHES {
        hash_times.push(hash_reused()?);
        fresh_hash_times.push(hash_fresh()?);
    }
    Ok(Argon2Bound {
        params,
        hash_times,
        fresh_hash_times,
    })
}

fn median(times: &[Duration]) -> Duration {
    let mut times = times.to_vec();
    times.sort_unstable();
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_bound_takes_the_median_of_all_hashes() {
        let params = Argon2Params {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        };
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let before = Argon2Bound {
            params,
            hash_times: ms(&[10, 30, 20]),
            fresh_hash_times: ms(&[40, 41, 42]),
        };
        let after = Argon2Bound {
            params,
            hash_times: ms(&[25, 50]),
            fresh_hash_times: ms(&[43, 44]),
        };
        let joined = before.joined(after);
        assert_eq!(joined.median_hash_time(), Duration::from_millis(25));
        assert_eq!(joined.median_fresh_hash_time(), Duration::from_millis(42));
        assert_eq!(joined.logins_per_cpu_second(), 40.0);
    }
}
