//! Argon2id password hashing with a bound on what it may cost.
//!
//! A hash needs `ARGON2_MEMORY_KIB` of working memory (19 MiB by default) and
//! tens of milliseconds of CPU. Unbounded, a burst of failed logins ran one
//! hash per blocking thread and each thread's allocator kept its 19 MiB
//! afterwards, so the process grew by gigabytes. Here at most
//! `PASSWORD_HASH_CONCURRENCY` hashes run at once, each in one of that many
//! working buffers that are allocated once and reused, so the memory spent on
//! hashing never exceeds concurrency × memory cost. At most
//! `PASSWORD_HASH_QUEUE` more callers wait for a slot; beyond that the caller
//! is told at once that the server is busy (503), instead of queueing
//! without end.

use std::sync::Mutex;

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use rand::RngCore;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use crate::{config::Config, error::AppError};

/// Stored hashes asking for more memory than this many times the configured
/// cost are not computed (a tampered row could ask for gigabytes).
const MAX_MEMORY_FACTOR: u32 = 4;
const SALT_BYTES: usize = 16;

pub struct Passwords {
    params: Params,
    /// Slots to compute in, plus the places in the queue before them.
    admission: Semaphore,
    slots: Semaphore,
    buffers: Mutex<Vec<Vec<Block>>>,
    /// A hash of a random password, verified against when an email is unknown
    /// so that timing does not tell which emails have accounts.
    dummy: OnceCell<String>,
}

impl Passwords {
    pub fn new(config: &Config) -> Result<Self, AppError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|err| AppError::Internal(format!("invalid Argon2 parameters: {err}")))?;
        let concurrency = match config.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Self {
            params,
            admission: Semaphore::new(concurrency + config.password_hash_queue),
            slots: Semaphore::new(concurrency),
            buffers: Mutex::new(Vec::new()),
            dummy: OnceCell::new(),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…`) of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, AppError> {
        let mut salt = [0u8; SALT_BYTES];
        rand::rng().fill_bytes(&mut salt);
        let params = self.params.clone();
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let digest = self
            .compute(password, salt.to_vec(), params.clone(), output_len)
            .await?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.into(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(internal)?,
            salt: Some(Salt::new(&salt).map_err(internal)?),
            hash: Some(Output::new(&digest).map_err(internal)?),
        };
        Ok(hash.to_string())
    }

    /// False for a wrong password and for a malformed stored hash alike.
    pub async fn verify(&self, password: String, stored: &str) -> Result<bool, AppError> {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Ok(false);
        };
        let (Some(salt), Some(expected), Ok(params)) = (
            parsed.salt.as_ref(),
            parsed.hash.as_ref(),
            Params::try_from(&parsed),
        ) else {
            return Ok(false);
        };
        if params.m_cost() > self.params.m_cost().saturating_mul(MAX_MEMORY_FACTOR) {
            tracing::warn!(
                m_cost = params.m_cost(),
                "a stored password hash asks for too much memory"
            );
            return Ok(false);
        }
        let digest = self
            .compute(password, salt.to_vec(), params, expected.len())
            .await?;
        // `Output` compares in constant time.
        Ok(Output::new(&digest).is_ok_and(|computed| &computed == expected))
    }

    /// Spends the time of one verification, for callers with nothing to verify.
    pub async fn verify_nothing(&self, password: String) -> Result<(), AppError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| self.hash(crate::auth::service::random_token(32)))
            .await?;
        self.verify(password, dummy).await.map(|_| ())
    }

    async fn compute(
        &self,
        password: String,
        salt: Vec<u8>,
        params: Params,
        output_len: usize,
    ) -> Result<Vec<u8>, AppError> {
        let _admitted = self.admit()?;
        let _slot: SemaphorePermit<'_> = self
            .slots
            .acquire()
            .await
            .map_err(|err| AppError::Internal(err.to_string()))?;
        let blocks = params.block_count();
        let mut memory = self.take_buffer(blocks);
        let (digest, mut memory) = tokio::task::spawn_blocking(move || {
            let mut digest = vec![0u8; output_len];
            let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    &salt,
                    &mut digest,
                    &mut memory[..blocks],
                );
            (result.map(|()| digest), memory)
        })
        .await
        .map_err(|err| AppError::Internal(err.to_string()))?;
        // A stored hash with a higher cost grew the buffer; keep only the usual size.
        let usual = self.params.block_count();
        if memory.len() > usual {
            memory.truncate(usual);
            memory.shrink_to_fit();
        }
        self.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(memory);
        digest.map_err(internal)
    }

    fn admit(&self) -> Result<SemaphorePermit<'_>, AppError> {
        self.admission.try_acquire().map_err(|_| {
            crate::warn_limited!("password hashing is saturated; refusing logins until it drains");
            AppError::Unavailable {
                code: "SERVER_BUSY",
                message: "Too many sign-ins at once; try again in a moment".to_owned(),
            }
        })
    }

    /// A working buffer of at least `blocks` blocks: a kept one when there is
    /// one (there are never more than the slots), else a new one.
    fn take_buffer(&self, blocks: usize) -> Vec<Block> {
        let kept = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut memory = kept.unwrap_or_default();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        memory
    }
}

fn internal(err: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("password hashing: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords(extra: &[&str]) -> Passwords {
        let mut args = vec!["--argon2-memory-kib", "1024", "--argon2-iterations", "1"];
        args.extend_from_slice(extra);
        Passwords::new(&Config::from_args(args).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_match_the_argon2_crate() {
        let passwords = passwords(&[]);
        let hash = passwords.hash("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(
            passwords
                .verify("correct horse".to_owned(), &hash)
                .await
                .unwrap()
        );
        assert!(!passwords.verify("wrong".to_owned(), &hash).await.unwrap());
        assert!(
            !passwords
                .verify("x".to_owned(), "not a hash")
                .await
                .unwrap()
        );
        // A hash made by the argon2 crate itself verifies too.
        use argon2::PasswordHasher;
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2048, 2, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        assert!(passwords.verify("pw".to_owned(), &theirs).await.unwrap());
    }

    #[tokio::test]
    async fn greedy_stored_hashes_are_refused() {
        let passwords = passwords(&[]);
        let greedy = "$argon2id$v=19$m=1048576,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$0dtxz2VyTRqCJXcBSeJ8bN3vUcN7ZxE0y8nMBsS2RmU";
        assert!(!passwords.verify("x".to_owned(), greedy).await.unwrap());
    }

    #[tokio::test]
    async fn over_the_queue_callers_are_refused_at_once() {
        let passwords = std::sync::Arc::new(passwords(&[
            "--password-hash-concurrency",
            "1",
            "--password-hash-queue",
            "1",
            "--argon2-memory-kib",
            "65536",
            "--argon2-iterations",
            "4",
        ]));
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash("pw".to_owned()).await })
            })
            .collect();
        let mut busy = 0;
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => {}
                Err(AppError::Unavailable { code, .. }) => {
                    assert_eq!(code, "SERVER_BUSY");
                    busy += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(busy >= 1, "some callers are refused");
        assert!(
            passwords.buffers.lock().unwrap().len() <= 1,
            "one buffer per slot"
        );
    }
}
