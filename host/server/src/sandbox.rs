//! The threads handler calls run on: `max_concurrent_calls` threads (the size of the runtime's
//! instance pool), each with the stack a call needs (`max_wasm_stack` plus a margin) and a lower
//! CPU priority than the threads that serve requests (Linux's `SCHED_IDLE` policy: they run on
//! what CPU time the request path leaves, and a request thread that wakes up takes the core at
//! once). A tenant's handler that
//! spins to its deadline then takes CPU time only that request-serving threads do not want: the
//! OS runs the request path (parsing, store reads, the writer's commits) first, so other tenants'
//! latency does not depend on how hard one tenant's handlers spin.
//!
//! A request thread hands a call here and waits for its answer; how many calls of one tenant may
//! be waiting or running at once is capped before that (`App::handler_slots`).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

/// Stack of a sandbox thread beyond what a call may use (`max_wasm_stack`).
const STACK_MARGIN: usize = 4 << 20;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Sandbox {
    jobs: Mutex<Sender<Job>>,
}

impl Sandbox {
    pub(crate) fn start(threads: usize, max_wasm_stack: usize) -> std::io::Result<Sandbox> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("ocni-sandbox-{i}"))
                .stack_size(max_wasm_stack + STACK_MARGIN)
                .spawn(move || worker(&rx))?;
        }
        Ok(Sandbox { jobs: Mutex::new(tx) })
    }

    /// Runs `f` on a sandbox thread and waits (blocking) for its result.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(f());
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| "the sandbox threads have stopped".to_string())?;
        answer.blocking_recv().map_err(|_| "a handler call panicked".to_string())
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking call loses its answer (the waiting request reports it), not the thread.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
    // SCHED_IDLE: any thread may lower itself to it, and a waking request thread always preempts
    // it. A `nice` value does not give that: the kernel's EEVDF scheduler lets a running nice 19
    // thread finish its slice (milliseconds) before a woken nice 0 thread runs.
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) =
        thread_priority::set_thread_priority_and_policy(thread_priority::thread_native_id(), ThreadPriority::Min, idle)
    {
        tracing::warn!(error = ?e, "could not lower the scheduling policy of a handler thread to SCHED_IDLE");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}
