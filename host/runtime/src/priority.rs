//! A call that runs long gives way: once it has used [`RuntimeConfig::yield_after`](crate::RuntimeConfig)
//! of CPU time (the thread's own clock, so a short call that only waited for a busy core does
//! not count as long) the thread running it is lowered to `SCHED_IDLE` (Linux: it runs only when no other thread
//! wants the core, and any thread that wakes takes the core from it at once). A handler that
//! spins to its deadline then costs the request path of every tenant nothing but the idle
//! time of the machine, while the short calls of well-behaved handlers keep their priority.
//! A lowered call that needs more CPU time than `yield_after` but is not spinning (a handler
//! with real work) waits for an idle core; that wait ([`core_wait`]) moves its deadline, so
//! it ends late rather than in a timeout the machine's load caused.
//!
//! An unprivileged thread cannot raise its priority again (`RLIMIT_NICE`), so a lowered thread
//! stays lowered: whoever owns it checks [`thread_yielded`] after a call and replaces the
//! thread with a fresh one (the server's sandbox threads do).
//!
//! A handler whose last call ran past `yield_after` has its next call lowered from the start
//! ([`Handler::runs_long`](crate::Handler::runs_long)): a handler that spins to its deadline
//! on every call then takes no core at the request path's priority after its first call (a
//! fresh call's first 2 ms held a core for up to a scheduler slice, about 3 ms, and the epoch
//! ticker that lowers it waited behind it). One short call clears the mark.
//!
//! Idle priority alone still let a lowered call delay a request thread by up to 4 ms: a thread
//! that wakes takes the core from a lowered one at once, but when a request thread that was
//! already runnable (preempted by another it woke, or by the epoch ticker) is passed over for
//! the lowered one (Linux's EEVDF picks by virtual time, in which the lowered thread may be
//! owed some), nothing takes the core back before the scheduler's next tick (4 ms at
//! `HZ=250`); lowering itself does not make the scheduler look again either. `perf sched`
//! showed B's slowest creates waiting so, with the other core idle. So a lowered call gives
//! its core away ([`give_way`]) when it is lowered and at every epoch tick after, which bounds
//! that wait to one tick; and while a lowered call runs, the epoch ticks every
//! [`LOWERED_TICK`](crate::LOWERED_TICK) (250 µs) instead of every millisecond. In a release
//! build, whose creates take about 0.45 ms, a 1 ms tick still left B's p99 at 1.5-2.2x.

use std::cell::{Cell, OnceCell};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};

thread_local! {
    static YIELDED: Cell<bool> = const { Cell::new(false) };
    /// This thread's `/proc/thread-self/schedstat`, opened at its first use (`None`: the kernel
    /// does not tell).
    static SCHEDSTAT: OnceCell<Option<File>> = const { OnceCell::new() };
}

/// Lowers the current thread to `SCHED_IDLE` (once; a failure is logged and the call goes on
/// at its priority).
pub(crate) fn yield_thread() {
    if YIELDED.get() {
        return;
    }
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    match thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        ThreadPriority::Min,
        idle,
    ) {
        Ok(()) => {
            YIELDED.set(true);
            // Lowering does not make the scheduler look again: a thread this one took the core
            // from would wait for the next scheduler tick.
            give_way();
        }
        Err(e) => tracing::warn!(error = ?e, "cannot lower the priority of a long handler call's thread"),
    }
}

/// Called at every epoch tick of a lowered call: lets any other thread runnable on this core run
/// first (`sched_yield`; see the module documentation). Costs a system call per tick.
pub(crate) fn give_way() {
    std::thread::yield_now();
}

/// Whether a call on the current thread ran past its `yield_after` and lowered the thread to
/// `SCHED_IDLE`: it stays so for good (see the module documentation).
pub fn thread_yielded() -> bool {
    YIELDED.get()
}

/// CPU time the current thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Time the current thread has spent runnable but waiting for a core (the second field of Linux's
/// `/proc/thread-self/schedstat`, kept open per thread), or `None` where the kernel does not say.
pub(crate) fn core_wait() -> Option<Duration> {
    SCHEDSTAT.with(|cell| {
        let file = cell.get_or_init(|| File::open("/proc/thread-self/schedstat").ok()).as_ref()?;
        let mut buf = [0u8; 96];
        let n = file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let nanos: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    })
}
