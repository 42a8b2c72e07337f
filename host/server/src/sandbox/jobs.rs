//! The sandbox's side of jobs (WIT `jobs` and `job-runner`, since 0.1.3): what a call's
//! `jobs.submit` collects ([`Submissions`]), the records a write then stores, and the
//! [`Signal`] that tells the job runner (`jobs.rs`, above `services.rs`) there is work.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ocni_store::{JobRecord, JobState};

/// Most jobs one call may submit.
pub const MAX_JOBS_PER_CALL: usize = 4;
/// Most unfinished jobs one entity may have.
pub const MAX_OPEN_JOBS_PER_ENTITY: usize = 16;
/// Longest job name, in characters, and payload, in bytes.
const MAX_NAME: usize = 64;
const MAX_PAYLOAD: usize = 64 << 10;

/// Unix time now, in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The jobs one call asked for: (id, name, payload), and whether it may ask (`Err`: why not).
#[derive(Clone)]
pub(crate) struct Submissions {
    allowed: Result<(), &'static str>,
    jobs: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl Submissions {
    /// A call that may submit jobs (a create's or an action's).
    pub(crate) fn open() -> Submissions {
        Submissions { allowed: Ok(()), jobs: Arc::default() }
    }

    /// A call that may not, and why.
    pub(crate) fn closed(why: &'static str) -> Submissions {
        Submissions { allowed: Err(why), jobs: Arc::default() }
    }

    /// `jobs.submit`: the new job's id, or why not.
    pub(crate) fn submit(&self, name: &str, payload: &str) -> Result<String, String> {
        self.allowed.map_err(str::to_string)?;
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(format!("a job name is 1 to {MAX_NAME} characters, none a control character"));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(format!("a job payload is at most {MAX_PAYLOAD} bytes"));
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if jobs.len() >= MAX_JOBS_PER_CALL {
            return Err(format!("a call may submit at most {MAX_JOBS_PER_CALL} jobs"));
        }
        let id = uuid::Uuid::now_v7().to_string();
        jobs.push((id.clone(), name.to_string(), payload.to_string()));
        Ok(id)
    }

    /// The records of the jobs submitted, for `entity`, run by `handler`.
    pub(crate) fn records(&self, entity: &str, handler: &str) -> Vec<JobRecord> {
        let now = now_ms();
        let jobs = std::mem::take(&mut *self.jobs.lock().unwrap_or_else(PoisonError::into_inner));
        jobs.into_iter()
            .map(|(id, name, payload)| JobRecord {
                id,
                entity: entity.to_string(),
                handler: handler.to_string(),
                name,
                payload,
                state: JobState::Pending,
                attempts: 0,
                last_error: None,
                created_ms: now,
                updated_ms: now,
                not_before_ms: 0,
            })
            .collect()
    }
}

/// Wakes the job runner: a write submitted jobs, a job ended, or the server stops.
#[derive(Default)]
pub struct Signal {
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Signal {
    /// There may be work: the runner looks at the queue again.
    pub fn wake(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0 = true;
        self.changed.notify_all();
    }

    /// The runner stops.
    pub fn stop(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
        self.changed.notify_all();
    }

    /// Waits for a wake-up (or `timeout`); `false` once stopped.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.0 && !state.1 {
            state = self.changed.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.0 = false;
        !state.1
    }
}
