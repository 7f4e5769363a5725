//! [`RedisServer`]: one real Redis for one test.

use std::io;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::port::free_port;
use crate::process::{RedisProcess, find_binary};
use crate::resp::{RawClient, Reply};

/// How many ports to try when another test grabs ours between the check and
/// redis-server's bind.
const SPAWN_ATTEMPTS: usize = 5;

const MISSING_BINARY: &str = "no redis-server found: install it (`apt-get install redis-server`), \
     or point REDIS_SERVER_BIN at one, or build test-support with its `docker` feature \
     and run a Docker engine";

/// Options for [`RedisServer`]: extra `redis-server` arguments and credentials.
#[derive(Debug, Default, Clone)]
pub struct RedisServerBuilder {
    args: Vec<String>,
    password: Option<String>,
    username: Option<String>,
    tls: bool,
}

impl RedisServerBuilder {
    /// Appends raw `redis-server` arguments (`["--maxmemory", "10mb"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Requires `password` for the default user (`--requirepass`).
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self.args(["--requirepass", password])
    }

    /// Adds an ACL user with full rights and `password`, and makes the harness's
    /// own commands authenticate as that user.
    pub fn acl_user(self, username: &str, password: &str) -> Self {
        self.acl_user_with_rules(username, password, &["~*", "&*", "+@all"])
    }

    /// Adds an ACL user with `password` and exactly these ACL `rules`
    /// (`~*`, `resetchannels`, `+@all`, ...), and makes the harness's own
    /// commands authenticate as that user.
    pub fn acl_user_with_rules(mut self, username: &str, password: &str, rules: &[&str]) -> Self {
        self.username = Some(username.to_owned());
        self.password = Some(password.to_owned());
        // redis-server joins the words after `--user` into one config line.
        let secret = format!(">{password}");
        let mut line = vec!["--user", username, "on", &secret];
        line.extend_from_slice(rules);
        self.args(line)
    }

    /// Also listens for TLS on a second port, with a freshly generated CA and
    /// server certificate (see [`RedisServer::tls_url`] and
    /// [`RedisServer::tls_ca_file`]). The plain port stays open for the
    /// harness's own commands.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts the server and waits until it answers PING.
    ///
    /// # Panics
    /// When no redis-server can be started; the message says what to install.
    pub async fn start(self) -> RedisServer {
        match find_binary() {
            Some(binary) => self.start_local(&binary),
            None => self.start_fallback().await,
        }
    }

    fn start_local(self, binary: &std::path::Path) -> RedisServer {
        let auth = self.password.clone().map(|p| (self.username.clone(), p));
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            let mut args = self.args.clone();
            let tls = self.tls.then(|| TlsListener::prepare(&mut args));
            match RedisProcess::spawn(binary, free_port(), args, auth.clone()) {
                Ok(process) => {
                    let backend = Backend::Local(process);
                    return RedisServer {
                        backend,
                        options: self,
                        tls,
                    };
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!(
            "could not start {} after {SPAWN_ATTEMPTS} attempts: {}",
            binary.display(),
            last_error.map(|e| e.to_string()).unwrap_or_default()
        );
    }

    #[cfg(not(feature = "docker"))]
    async fn start_fallback(self) -> RedisServer {
        panic!("{MISSING_BINARY}");
    }

    #[cfg(feature = "docker")]
    async fn start_fallback(self) -> RedisServer {
        let container = crate::docker::DockerRedis::start(&self.args)
            .await
            .unwrap_or_else(|e| panic!("{MISSING_BINARY} (Docker fallback failed: {e})"));
        assert!(
            !self.tls,
            "TLS test servers need a local redis-server binary"
        );
        RedisServer {
            backend: Backend::Docker(container),
            options: self,
            tls: None,
        }
    }
}

#[derive(Debug)]
enum Backend {
    Local(RedisProcess),
    #[cfg(feature = "docker")]
    Docker(crate::docker::DockerRedis),
}

/// A real Redis server for one test, on a free loopback port, without
/// persistence. Killed on drop.
///
/// ```no_run
/// # async fn demo() {
/// let mut redis = test_support::RedisServer::start().await;
/// redis.cmd(&["SET", "k", "v"]);
/// redis.stop().await;        // a crash: SIGKILL
/// redis.start_again().await; // same port, empty data
/// redis.pause();             // SIGSTOP: a hung server
/// redis.resume();
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    backend: Backend,
    options: RedisServerBuilder,
    tls: Option<TlsListener>,
}

/// The TLS side of a server started with [`RedisServerBuilder::tls`].
#[derive(Debug)]
struct TlsListener {
    port: u16,
    files: crate::tls::TlsFiles,
    _dir: tempfile::TempDir,
}

impl TlsListener {
    /// Writes fresh certificates and adds the TLS arguments to `args`.
    fn prepare(args: &mut Vec<String>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redis-tls-")
            .tempdir()
            .expect("tempdir");
        let files = crate::tls::write_server_files(dir.path());
        let port = free_port();
        let path = |p: &std::path::Path| p.display().to_string();
        args.extend([
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&files.server_cert),
            "--tls-key-file".to_owned(),
            path(&files.server_key),
            "--tls-ca-cert-file".to_owned(),
            path(&files.ca_cert),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ]);
        Self {
            port,
            files,
            _dir: dir,
        }
    }
}

impl RedisServer {
    /// Starts a server with default options.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// Options for a server with arguments or credentials.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The host the server listens on.
    pub fn host(&self) -> String {
        match &self.backend {
            Backend::Local(_) => "127.0.0.1".to_owned(),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.host().to_owned(),
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        match &self.backend {
            Backend::Local(p) => p.port(),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.port(),
        }
    }

    /// `redis://host:port` (without credentials).
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host(), self.port())
    }

    /// `rediss://127.0.0.1:<tls port>`, for a server started with TLS.
    ///
    /// # Panics
    /// When the server was started without [`RedisServerBuilder::tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port())
    }

    /// The TLS port.
    ///
    /// # Panics
    /// When the server was started without TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls
            .as_ref()
            .expect("server started without .tls()")
            .port
    }

    /// The PEM file of the CA that signed the server's certificate.
    ///
    /// # Panics
    /// When the server was started without TLS.
    pub fn tls_ca_file(&self) -> PathBuf {
        self.tls
            .as_ref()
            .expect("server started without .tls()")
            .files
            .ca_cert
            .clone()
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    /// The directory the server runs in (certificates and ACL files can go
    /// here). `None` for a container.
    pub fn dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(p) => Some(p.dir().to_owned()),
            #[cfg(feature = "docker")]
            Backend::Docker(_) => None,
        }
    }

    /// Kills the server (SIGKILL, like a crash). Its data is gone.
    pub async fn stop(&mut self) {
        match &mut self.backend {
            Backend::Local(p) => p.kill(),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.stop().await,
        }
    }

    /// Starts the server again on the same port after [`stop`](Self::stop),
    /// and waits until it answers.
    ///
    /// # Panics
    /// When the port was taken meanwhile or the server does not come up.
    pub async fn start_again(&mut self) {
        match &mut self.backend {
            Backend::Local(p) => p.launch().expect("restart redis-server on the same port"),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.start_again().await,
        }
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Whether the server process is running (it may still be paused).
    pub fn is_running(&self) -> bool {
        match &self.backend {
            Backend::Local(p) => p.is_running(),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.is_running(),
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        match &self.backend {
            Backend::Local(p) => p.signal(Signal::SIGSTOP),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.pause(),
        }
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        match &self.backend {
            Backend::Local(p) => p.signal(Signal::SIGCONT),
            #[cfg(feature = "docker")]
            Backend::Docker(d) => d.resume(),
        }
    }

    /// A new raw connection, authenticated like the harness.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses the credentials.
    pub fn raw_client(&self) -> io::Result<RawClient> {
        let auth = self
            .options
            .password
            .as_deref()
            .map(|p| (self.options.username.as_deref(), p));
        RawClient::connect(&self.addr(), auth)
    }

    /// Runs one command on a fresh connection, like `redis-cli`.
    ///
    /// # Panics
    /// When the server cannot be reached (use [`try_cmd`](Self::try_cmd) to
    /// observe that).
    pub fn cmd<S: AsRef<[u8]>>(&self, args: &[S]) -> Reply {
        self.try_cmd(args)
            .expect("run a command on the test redis-server")
    }

    /// Like [`cmd`](Self::cmd), returning I/O errors.
    ///
    /// # Errors
    /// When the server cannot be reached or does not answer within 5 s.
    pub fn try_cmd<S: AsRef<[u8]>>(&self, args: &[S]) -> io::Result<Reply> {
        self.raw_client()?.cmd(args)
    }

    /// `DBSIZE`.
    pub fn dbsize(&self) -> i64 {
        self.cmd(&["DBSIZE"])
            .as_int()
            .expect("DBSIZE is an integer")
    }

    /// How many times the ACL refused `object` (a command, such as
    /// `xrange`, or a channel or key) to `username`, read from `ACL LOG`,
    /// which folds repeats of one refusal into a count: a way to see that
    /// code under test tried, and was refused, without a hook in it.
    pub fn acl_refusals(&self, username: &str, object: &str) -> i64 {
        let Reply::Array(Some(entries)) = self.cmd(&["ACL", "LOG"]) else {
            return 0;
        };
        entries
            .iter()
            .map(Reply::as_strings)
            .filter_map(|entry| {
                let field = |name: &str| {
                    entry
                        .chunks(2)
                        .find(|kv| kv.len() == 2 && kv[0] == name)
                        .map(|kv| kv[1].clone())
                };
                let ours = field("username")? == username && field("object")? == object;
                ours.then(|| field("count")?.parse::<i64>().ok()).flatten()
            })
            .sum()
    }
}
