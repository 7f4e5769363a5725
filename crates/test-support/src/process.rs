//! One local `redis-server` process: the building block of [`crate::RedisServer`]
//! (and of a cluster, which is several of them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::resp::{RawClient, Reply};
use crate::wait::wait_for_sync;

/// How long a fresh server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Finds the `redis-server` binary: `REDIS_SERVER_BIN`, else `PATH`.
pub(crate) fn find_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    find_on_path("redis-server")
}

/// The (major, minor) version of the `redis-server` tests run, from its
/// `--version`; `None` when there is none or it does not say.
pub fn server_version() -> Option<(u32, u32)> {
    let out = Command::new(find_binary()?)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split("v=").nth(1)?.split_whitespace().next()?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Whether the `redis-server` tests run is at least `major.minor`. A test
/// that needs a newer server's option says so and skips on an older one:
///
/// ```no_run
/// if !test_support::server_is_at_least(7, 0, "--enable-debug-command") {
///     return;
/// }
/// ```
pub fn server_is_at_least(major: u32, minor: u32, needs: &str) -> bool {
    match server_version() {
        Some(version) if version < (major, minor) => {
            // The test harness shows a passing test's output with
            // --no-capture; a skip must be visible there.
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "skipped: needs Redis {major}.{minor} or newer ({needs}); this redis-server is {}.{}",
                    version.0, version.1
                );
            }
            false
        }
        _ => true,
    }
}

/// The first file called `name` in a `PATH` directory.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A redis-server child process bound to 127.0.0.1:`port`, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisProcess {
    binary: PathBuf,
    port: u16,
    args: Vec<String>,
    dir: tempfile::TempDir,
    /// Credentials for the readiness PING, when the server requires them.
    ping_auth: Option<(Option<String>, String)>,
    child: Option<Child>,
}

impl RedisProcess {
    /// Spawns a server on `port` with `args` appended to our defaults, and waits
    /// until it answers PING.
    pub(crate) fn spawn(
        binary: &Path,
        port: u16,
        args: Vec<String>,
        ping_auth: Option<(Option<String>, String)>,
    ) -> std::io::Result<Self> {
        let mut process = Self::new(binary, port, args, ping_auth)?;
        process.launch()?;
        Ok(process)
    }

    /// Creates the process's directory without starting it, so that callers can
    /// add arguments naming files in [`dir`](Self::dir) (a cluster node's
    /// `nodes.conf`) before [`launch`](Self::launch).
    pub(crate) fn new(
        binary: &Path,
        port: u16,
        args: Vec<String>,
        ping_auth: Option<(Option<String>, String)>,
    ) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("redis-test-").tempdir()?;
        Ok(Self {
            binary: binary.to_owned(),
            port,
            args,
            dir,
            ping_auth,
            child: None,
        })
    }

    /// Appends arguments for the next [`launch`](Self::launch).
    pub(crate) fn push_args<I: IntoIterator<Item = String>>(&mut self, args: I) {
        self.args.extend(args);
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the process (again) on the same port and waits until it answers.
    pub(crate) fn launch(&mut self) -> std::io::Result<()> {
        assert!(
            self.child.is_none(),
            "redis-server on port {} is already running",
            self.port
        );
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(cmd.spawn()?);
        let addr = format!("127.0.0.1:{}", self.port);
        let auth = self.ping_auth.clone();
        let child = self.child.as_mut().expect("just spawned");
        let mut exited = None;
        wait_for_sync("redis-server to answer PING", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            let auth = auth.as_ref().map(|(u, p)| (u.as_deref(), p.as_str()));
            RawClient::connect(&addr, auth)
                .and_then(|mut c| c.cmd(&["PING"]))
                .is_ok_and(|r| r == Reply::Simple("PONG".into()))
        });
        if let Some(status) = exited {
            self.child = None;
            return Err(std::io::Error::other(format!(
                "redis-server on port {} exited with {status}: {}",
                self.port,
                self.log_tail(5)
            )));
        }
        Ok(())
    }

    /// The last `lines` lines of the server's log, joined with ` | `, for
    /// failure messages.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Kills the process (SIGKILL: a crash, not a clean shutdown) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Sends `signal` to the running process.
    pub(crate) fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("redis-server is not running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits in i32"));
        kill(pid, signal).expect("signal redis-server");
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
