//! argon2id hashing on the blocking pool with bounded concurrency: at most
//! `max_concurrent` hashes run at once (each holds `memory_kib` of memory),
//! at most `max_queued` more wait, and past that callers are told to come
//! back later instead of piling up memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::configuration::PasswordSettings;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken and the queue is full.
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
}

pub struct PasswordHasher {
    argon2: Argon2<'static>,
    slots: Arc<Semaphore>,
    /// Requests holding or waiting for a slot.
    in_line: AtomicUsize,
    max_in_line: usize,
    /// A hash of a random password: unknown emails are verified against it
    /// so that they cost the same time as a wrong password.
    dummy_hash: String,
}

/// Gives the place in line back however the request ends.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<PasswordHasher, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Internal(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let concurrent = match settings.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let random: [u8; 32] = rand::random();
        let dummy_hash = argon2
            .hash_password(&random)
            .map_err(|e| HashError::Internal(e.to_string()))?
            .to_string();
        Ok(PasswordHasher {
            argon2,
            slots: Arc::new(Semaphore::new(concurrent)),
            in_line: AtomicUsize::new(0),
            max_in_line: concurrent + settings.max_queued_hashes,
            dummy_hash,
        })
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Internal(e.to_string()))
        })
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
        let argon2 = self.argon2.clone();
        let matches = self
            .run(move || {
                let parsed =
                    PasswordHash::new(&phc).map_err(|e| HashError::Internal(e.to_string()))?;
                Ok(argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    /// Hashes synchronously, for the CLI.
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        self.argon2
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Internal(e.to_string()))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        if self.in_line.fetch_add(1, Ordering::AcqRel) >= self.max_in_line {
            self.in_line.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let _in_line = InLine(&self.in_line);
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|e| HashError::Internal(e.to_string()))?
    }
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
            "a queue of 1 behind 1 slot must refuse some of 8 requests"
        );
        assert_eq!(hasher.in_line.load(Ordering::Acquire), 0);
    }
}
