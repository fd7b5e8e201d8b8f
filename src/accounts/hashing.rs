//! argon2id hashing on a fixed set of hashing threads, each reusing one
//! block of argon2 memory. Memory stays bounded under a flood of logins: at
//! most `max_concurrent` hashes run (each in its thread's own block, never
//! freed and re-allocated, so the allocator can't fragment it into
//! gigabytes), at most `max_queued` more wait, and past that callers are told
//! to come back later.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordVerifier as _;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use tokio::sync::oneshot;

use crate::configuration::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full.
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

/// A job for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct PasswordHasher {
    params: Params,
    jobs: SyncSender<Job>,
    /// Jobs accepted and not yet started (the queue's depth, for metrics).
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// A hash of a random password: unknown emails are verified against it
    /// so that they cost the same time as a wrong password.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<PasswordHasher, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let threads = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (jobs, queue) = sync_channel::<Job>(settings.max_queued_hashes);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || run_worker(&queue))
                .map_err(|e| HashError::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        let random: [u8; 32] = rand::random();
        let dummy_hash = hash_with(&params, &random, &mut Vec::new())?;
        Ok(PasswordHasher {
            params,
            jobs,
            waiting: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            dummy_hash,
        })
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let params = self.params.clone();
        self.run(move |memory| hash_with(&params, password.as_bytes(), memory))
            .await
    }

    /// Checks a password against a stored PHC string, or against the dummy
    /// hash when there is none, which always fails but takes as long.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move |memory| verify_with(&phc, password.as_bytes(), memory))
            .await?;
        Ok(known && matches)
    }

    /// Hashes synchronously, for the CLI.
    /// Hashes accepted and waiting for a thread.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.params, password.as_bytes(), &mut Vec::new())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        use std::sync::atomic::Ordering::Relaxed;
        let (done, result) = oneshot::channel();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move |memory| {
            waiting.fetch_sub(1, Relaxed);
            let _ = done.send(work(memory));
        });
        self.waiting.fetch_add(1, Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.waiting.fetch_sub(1, Relaxed);
                return Err(HashError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Relaxed);
                return Err(HashError::Internal("hashing threads are gone".into()));
            }
        }
        result
            .await
            .map_err(|_| HashError::Internal("a hashing thread failed".into()))?
    }
}

fn run_worker(queue: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for a job, not while hashing.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return, // the hasher was dropped
        }
    }
}

/// `memory` grown (once) to hold `params`' blocks.
fn blocks_for<'a>(memory: &'a mut Vec<Block>, params: &Params) -> &'a mut [Block] {
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::new());
    }
    &mut memory[..needed]
}

/// argon2id of `password` with a fresh random salt, as a PHC string.
fn hash_with(
    params: &Params,
    password: &[u8],
    memory: &mut Vec<Block>,
) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, blocks_for(memory, params))
        .map_err(|e| HashError::Internal(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out),
    ))
}

/// Whether `password` matches the PHC string, computed in `memory` with the
/// string's own parameters; hashes of another algorithm go through the
/// argon2 crate's general verifier.
fn verify_with(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(|e| HashError::Internal(e.to_string()))?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(HashError::Internal(
            "stored hash has no salt or output".into(),
        ));
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let params = Params::try_from(&parsed);
    let (true, Ok(version), Ok(params)) =
        (parsed.algorithm.as_str() == "argon2id", version, params)
    else {
        return Ok(Argon2::default().verify_password(password, &parsed).is_ok());
    };
    let mut out = vec![0u8; expected.as_bytes().len()];
    let params = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(out.len()),
    )
    .map_err(|e| HashError::Internal(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, version, params.clone())
        .hash_password_into_with_memory(
            password,
            salt.as_ref(),
            &mut out,
            blocks_for(memory, &params),
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
    Ok(verify_slices_are_equal(&out, expected.as_bytes()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_concurrent: usize, max_queued: usize) -> PasswordSettings {
        PasswordSettings {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: max_concurrent,
            max_queued_hashes: max_queued,
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(&settings(1, 4)).unwrap();
        let phc = hasher.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(phc))
                .await
                .unwrap()
        );
        // No stored hash: never matches, even the dummy's own password.
        assert!(!hasher.verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn phc_strings_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::PasswordHasher as _;
        let params = Params::new(8192, 2, 1, Some(OUTPUT_LEN)).unwrap();
        // Ours, checked by the argon2 crate.
        let ours = hash_with(&params, b"pass phrase", &mut Vec::new()).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"pass phrase", &parsed)
                .is_ok()
        );
        // The argon2 crate's, checked by ours (other params than the buffer's).
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(9000, 1, 1, None).unwrap(),
        )
        .hash_password(b"pass phrase")
        .unwrap()
        .to_string();
        let mut memory = Vec::new();
        assert!(verify_with(&theirs, b"pass phrase", &mut memory).unwrap());
        assert!(!verify_with(&theirs, b"pass phrasE", &mut memory).unwrap());
        assert!(verify_with(&ours, b"pass phrase", &mut memory).unwrap());
    }

    #[tokio::test]
    async fn full_queue_is_refused() {
        let hasher = Arc::new(PasswordHasher::new(&settings(1, 1)).unwrap());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let h = hasher.clone();
            tasks.push(tokio::spawn(
                async move { h.hash("correct horse".into()).await },
            ));
        }
        let mut busy = 0;
        for t in tasks {
            if let Err(HashError::Busy) = t.await.unwrap() {
                busy += 1;
            }
        }
        assert!(
            busy > 0,
            "a queue of 1 behind 1 thread must refuse some of 8 requests"
        );
        assert!(
            hasher.hash("later".into()).await.is_ok(),
            "the queue drains"
        );
    }
}
