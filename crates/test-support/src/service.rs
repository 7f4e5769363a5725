//! Running a service binary as a real process, for end-to-end tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A service process, killed on drop. Its stdout and stderr are captured to
/// a file so tests can search its logs.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Option<Child>,
    addr: String,
    log: tempfile::NamedTempFile,
}

impl ServiceProcess {
    /// Starts `binary` with `env` (on top of a cleared environment, plus
    /// `PATH`), and waits until `GET /health/ready` on `addr` answers 200.
    ///
    /// Ready, not merely live: the services connect to Redis lazily, so a
    /// live process may still answer 503 to its first real request. Every
    /// test (and the soak and the benchmarks) starts services through here,
    /// so none races that connection.
    ///
    /// # Panics
    /// When the process cannot start or does not become ready in 20 s.
    pub fn start(binary: &Path, addr: &str, env: &[(&str, String)]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let out = log.reopen().expect("log file");
        let err = log.reopen().expect("log file");
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut service = Self {
            child: Some(child),
            addr: addr.to_owned(),
            log,
        };
        let start = Instant::now();
        while http_status(addr, "/health/ready") != Some(200) {
            if let Some(status) = service
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited with {status}: {}",
                    binary.display(),
                    service.logs()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{} did not become ready: {}",
                binary.display(),
                service.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        service
    }

    /// The process id.
    ///
    /// # Panics
    /// After [`terminate`](Self::terminate).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process still running").id()
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The last `n` lines of [`logs`](Self::logs), for a failure's message.
    pub fn log_tail(&self, n: usize) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit.
    ///
    /// # Panics
    /// When it does not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("process still running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        kill(pid, Signal::SIGTERM).expect("send SIGTERM");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for the process") {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                panic!("the process did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The status of a plain `GET path` on `addr`, or `None` if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
