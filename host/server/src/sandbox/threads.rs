//! The threads handler calls run on: `max_concurrent_calls` threads (the size of the runtime's
//! instance pool), each with the stack a call needs (`max_wasm_stack` plus a margin), at the
//! same CPU priority as the request path while a call is short. A call that runs past the
//! runtime's `yield_after` (2 ms by default, `--handler-yield-after-ms`) has its thread lowered
//! to `SCHED_IDLE` by the runtime (`ocni_runtime::thread_yielded`), and so is, from its start,
//! the next call of a handler whose last call ran that long (`Handler::runs_long`): a handler
//! spinning to its deadline then delays no other request, of its tenant or any other. Lowering every call
//! instead (tried) starved short calls whenever anything else kept the cores busy, and their
//! deadline was wall-clock time: every handler-bound write ended in 504. (Time a call waits for
//! a core no longer counts against its deadline, up to nine times it.) An unprivileged thread
//! cannot raise its priority again, so a lowered thread ends after its call and a fresh one
//! takes its place. What keeps a tenant from taking every thread is the per-tenant cap on calls
//! running at once (`Sandbox::handler_slots`, `--handler-calls-per-tenant`).
//!
//! A request thread hands a call here and waits for its answer; how many calls of one tenant may
//! be waiting or running at once is capped before that (`Sandbox::handler_slots`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

/// Stack of a sandbox thread beyond what a call may use (`max_wasm_stack`).
const STACK_MARGIN: usize = 4 << 20;

type Job = Box<dyn FnOnce() + Send>;
type Jobs = Arc<Mutex<Receiver<Job>>>;

pub(crate) struct Threads {
    jobs: Mutex<Sender<Job>>,
    /// What every thread takes its calls from (a replacement too).
    rx: Jobs,
    stack: usize,
    /// Threads started so far (names them).
    started: AtomicUsize,
}

impl Threads {
    pub(crate) fn start(threads: usize, max_wasm_stack: usize) -> std::io::Result<Threads> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let t = Threads {
            jobs: Mutex::new(tx),
            rx: Arc::new(Mutex::new(rx)),
            stack: max_wasm_stack + STACK_MARGIN,
            started: AtomicUsize::new(0),
        };
        for _ in 0..threads.max(1) {
            t.spawn()?;
        }
        Ok(t)
    }

    /// Starts one more thread. Called from a thread at the request path's priority: a thread
    /// inherits the scheduling policy of the one that starts it.
    fn spawn(&self) -> std::io::Result<()> {
        let i = self.started.fetch_add(1, Ordering::Relaxed);
        let rx = Arc::clone(&self.rx);
        std::thread::Builder::new()
            .name(format!("ocni-sandbox-{i}"))
            .stack_size(self.stack)
            .spawn(move || worker(&rx))?;
        Ok(())
    }

    /// Runs `f` on a sandbox thread and waits (blocking) for its result. If the call lowered
    /// that thread to idle priority, the thread has ended and a fresh one is started here.
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panicking call loses its answer (the waiting request reports it), not the thread.
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
            let _ = reply.send((out, ocni_runtime::thread_yielded()));
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job)
            .map_err(|_| "the sandbox threads have stopped".to_string())?;
        let (out, yielded) = answer.blocking_recv().map_err(|_| "the sandbox thread ended".to_string())?;
        if yielded && let Err(e) = self.spawn() {
            tracing::error!(error = %e, "cannot replace a sandbox thread that ran a long call");
        }
        out.ok_or_else(|| "a handler call panicked".to_string())
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while one runs.
        let job = match rx.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
        if ocni_runtime::thread_yielded() {
            // A long call lowered this thread to idle priority for good; the caller starts a
            // fresh thread in its place (see `Threads::run`).
            return;
        }
    }
}
