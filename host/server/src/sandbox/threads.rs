//! The threads handler calls run on: `max_concurrent_calls` threads (the size of the runtime's
//! instance pool), each with the stack a call needs (`max_wasm_stack` plus a margin), at the
//! same CPU priority as the request path. A lower one (`SCHED_IDLE`, tried) starves handler
//! calls whenever anything else keeps the cores busy (heavy GET load, another process), and
//! their deadline is wall-clock time: every handler-bound write then ends in 504. What keeps a
//! tenant whose handlers spin from taking the machine is the per-tenant cap on calls running
//! at once (`Sandbox::handler_slots`, `--handler-calls-per-tenant`, half the cores by default).
//!
//! A request thread hands a call here and waits for its answer; how many calls of one tenant may
//! be waiting or running at once is capped before that (`Sandbox::handler_slots`).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

/// Stack of a sandbox thread beyond what a call may use (`max_wasm_stack`).
const STACK_MARGIN: usize = 4 << 20;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Threads {
    jobs: Mutex<Sender<Job>>,
}

impl Threads {
    pub(crate) fn start(threads: usize, max_wasm_stack: usize) -> std::io::Result<Threads> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("ocni-sandbox-{i}"))
                .stack_size(max_wasm_stack + STACK_MARGIN)
                .spawn(move || worker(&rx))?;
        }
        Ok(Threads { jobs: Mutex::new(tx) })
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
