//! [`Prober`]: another client's GETs at a steady rate, to see what a
//! workload does to everyone else's latency.
//!
//! It is open-loop and pipelined, like a service with many requests in
//! flight: a writer thread sends each GET when it falls due, whether or not
//! earlier ones were answered, and a reader thread takes the replies in
//! order. Each latency counts from the moment the GET was due, so a stall
//! of the server shows in full in every GET that fell due during it (no
//! coordinated omission), but GETs do not queue behind each other's round
//! trips as a one-at-a-time client's would. Waking up costs the writer some
//! tens of microseconds of timer slack, which idle figures include.
//!
//! It speaks RESP over its own socket, independently of fred, so it
//! measures the server, not our client.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::latency::Latencies;

/// A running prober; [`finish`](Self::finish) stops it and returns what it saw.
#[derive(Debug)]
pub(crate) struct Prober {
    stop: Arc<AtomicBool>,
    writer: JoinHandle<Result<(), String>>,
    reader: JoinHandle<Result<Latencies, String>>,
}

impl Prober {
    /// Sends `GET key_for(i)` every `every`, for i = 0, 1, ...; every key
    /// must exist (a miss is an error: the prober would be measuring
    /// nothing).
    pub(crate) fn start(
        addr: &str,
        every: Duration,
        key_for: impl Fn(u64) -> String + Send + 'static,
    ) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("prober connection: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(60))))
            .map_err(|e| format!("prober socket: {e}"))?;
        let mut output = stream
            .try_clone()
            .map_err(|e| format!("prober socket: {e}"))?;
        let (dues, due_rx) = mpsc::channel::<Instant>();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut due = Instant::now();
            let mut i = 0;
            while !flag.load(Ordering::Acquire) {
                due += every;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let key = key_for(i);
                i += 1;
                let request = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
                output
                    .write_all(request.as_bytes())
                    .map_err(|e| format!("probe write: {e}"))?;
                // The reader ends when this sender is dropped and drained.
                dues.send(due).map_err(|_| "the probe reader stopped")?;
            }
            Ok(())
        });
        let reader = std::thread::spawn(move || {
            let mut input = BufReader::new(stream);
            let mut latencies = Latencies::default();
            for due in due_rx {
                read_bulk_reply(&mut input)?;
                latencies.record(due.elapsed());
            }
            Ok(latencies)
        });
        Ok(Self {
            stop,
            writer,
            reader,
        })
    }

    /// Stops sending, waits for the outstanding replies, and returns every
    /// GET's latency.
    pub(crate) async fn finish(self) -> Result<Latencies, String> {
        self.stop.store(true, Ordering::Release);
        tokio::task::spawn_blocking(move || {
            let written = self
                .writer
                .join()
                .map_err(|_| "the probe writer panicked")?;
            let read = self
                .reader
                .join()
                .map_err(|_| "the probe reader panicked")?;
            written?;
            read
        })
        .await
        .map_err(|e| format!("prober: {e}"))?
    }
}

/// Reads one `$<len>\r\n<bytes>\r\n` reply; nil or an error is an error.
fn read_bulk_reply(input: &mut impl BufRead) -> Result<(), String> {
    let mut header = Vec::new();
    input
        .read_until(b'\n', &mut header)
        .map_err(|e| format!("probe read: {e}"))?;
    let text = String::from_utf8_lossy(&header);
    let len: usize = text
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("probe GET: unexpected reply {:?}", text.trim_end()))?;
    let mut body = vec![0; len + 2];
    input
        .read_exact(&mut body)
        .map_err(|e| format!("probe read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bulk replies are consumed whole; nil and errors are refused.
    #[test]
    fn reads_bulk_replies() {
        let mut input: &[u8] = b"$3\r\nabc\r\n$0\r\n\r\n$-1\r\n-ERR no\r\n";
        assert!(read_bulk_reply(&mut input).is_ok());
        assert!(read_bulk_reply(&mut input).is_ok());
        assert!(read_bulk_reply(&mut input).is_err());
        assert!(read_bulk_reply(&mut input).is_err());
    }
}
