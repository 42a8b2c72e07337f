//! Where `ocni serve` writes its log: standard error, through a buffer that the async workers
//! fill and empty whenever they have nothing else to do.
//!
//! Writing each request's log line straight to stderr cost a `write` system call per request
//! (a sixth of a GET's time on one core, with stderr on a file). A line logged on an async worker
//! (every request's `done` line is) is appended to a shared buffer instead; the buffer is written
//! out when a worker is about to park (`tokio::runtime::Builder::on_thread_park`, see
//! [`LogWriter::flush_buffered`]), or when it holds [`FLUSH_AT`] bytes. A line logged on any other
//! thread (start-up, the writer thread, a blocking task that runs long) first writes out what is
//! buffered, then itself, at once, so lines keep their order and none waits on an idle server.
//! What stays buffered is lost only if the process dies without unwinding (a signal, an abort).

use std::cell::Cell;
use std::io::{self, Write};

use parking_lot::Mutex;
use tracing_subscriber::fmt::MakeWriter;

/// The buffer is written out when it holds this much.
pub const FLUSH_AT: usize = 64 << 10;

static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());

thread_local! {
    /// Whether this thread is an async worker (it has parked at least once): its lines are
    /// buffered.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// The `MakeWriter` of the log (stderr, buffered on async workers).
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl LogWriter {
    /// For `on_thread_park`: marks this thread as an async worker and writes out what is
    /// buffered.
    pub fn flush_buffered() {
        WORKER.with(|w| w.set(true));
        let mut buf = BUFFER.lock();
        write_out(&mut buf);
    }
}

fn write_out(buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        // Nowhere to report a failed log write: like `eprintln!` without the panic.
        let _ = io::stderr().lock().write_all(buf);
        buf.clear();
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut buf = BUFFER.lock();
        if WORKER.with(Cell::get) {
            buf.extend_from_slice(line);
            if buf.len() >= FLUSH_AT {
                write_out(&mut buf);
            }
        } else {
            write_out(&mut buf);
            io::stderr().lock().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_lines_wait_for_a_park_and_others_write_them_out_first() {
        let worker = std::thread::spawn(|| {
            LogWriter::flush_buffered();
            LogWriter.write_all(b"from a worker\n").unwrap();
            BUFFER.lock().len()
        });
        assert_eq!(worker.join().unwrap(), b"from a worker\n".len(), "a worker's line is buffered");
        // Another thread's line writes out the buffer, then itself.
        LogWriter.write_all(b"from elsewhere\n").unwrap();
        assert!(BUFFER.lock().is_empty());
    }
}
