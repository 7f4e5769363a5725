//! `cargo xtask up`: the whole stack on a machine without Docker.
//!
//! Uses the Redis at `REDIS_URL` (or 127.0.0.1:6379) if one answers PING (after
//! `AUTH` with the URL's credentials; a `rediss://` URL is not checked here),
//! else starts `redis-server` from PATH on a free port; builds auth-broker
//! and main-api (cargo's own progress shown) and starts them from the
//! target directory `cargo metadata` names (so `CARGO_TARGET_DIR` is
//! respected), listening on `AUTH_BROKER_ADDR` and `MAIN_API_ADDR` when set;
//! prints their URLs and a curl walk-through; and runs until Ctrl-C (which
//! the terminal delivers to every process of the group, so each shuts down
//! gracefully) or until one of them exits, when the others are stopped. A
//! service that exits while starting fails the command at once. `--check`
//! runs the walk-through itself and stops: CI uses it to prove this command
//! works. A password in `REDIS_URL` is never printed ([`redact`]).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::cmd::{Result, run};
use crate::redis::{TempRedis, free_port};

const AUTH_ADDR: &str = "127.0.0.1:8081";
const API_ADDR: &str = "127.0.0.1:8080";

/// Children, stopped (SIGTERM, then kill) on drop.
pub(crate) struct Stack {
    children: Vec<(&'static str, Child)>,
}

impl Stack {
    /// An error naming the first child that has exited, if any: waiting
    /// for a dead service to become ready would only time out.
    fn check_running(&mut self) -> Result {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{name} exited while starting ({status}); its output above says why"
                ));
            }
        }
        Ok(())
    }

    /// Polls `ready` until it holds, for at most 30 s, failing at once when
    /// a service exits meanwhile.
    pub(crate) fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            self.check_running()?;
            if Instant::now() > deadline {
                return Err(format!("{what} did not become ready in 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if let Ok(Some(_)) = child.try_wait() {
                continue; // already gone (and reaped): nothing to stop
            }
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.children {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = child.try_wait() {
                println!("{name} did not stop in time; killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

pub(crate) fn up(args: &[String]) -> Result {
    let check = args.iter().any(|a| a == "--check");
    let mut running = start(check, &[])?;
    if check {
        return walk_through(
            &mut running.stack,
            &running.auth_addr,
            &running.api_addr,
            &running.token,
        );
    }
    let shown = shown_token(&running.token, running.token_from_env);
    println!(
        "{}",
        walk_through_text(&running.auth_addr, &running.api_addr, shown)
    );
    loop {
        for (name, child) in &mut running.stack.children {
            if let Ok(Some(status)) = child.try_wait() {
                println!("{name} exited ({status}); stopping the stack");
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The stack, started and ready; stopped on drop (services first, then a
/// redis-server started for it).
pub(crate) struct Running {
    /// The services (dropped before `_redis`: fields drop in order).
    pub(crate) stack: Stack,
    /// A redis-server started for the stack, if none answered.
    _redis: Option<TempRedis>,
    /// auth-broker's `host:port`.
    pub(crate) auth_addr: String,
    /// main-api's `host:port`.
    pub(crate) api_addr: String,
    /// The internal API token the services were given.
    pub(crate) token: String,
    /// Whether `token` is the operator's (`INTERNAL_API_TOKEN` was set):
    /// then it is a secret, and nothing prints it.
    token_from_env: bool,
}

/// Starts the stack as `up` does, and waits until both services are ready.
/// `check` (as `up --check`): a fresh redis-server unless `REDIS_URL` is
/// set (never one found on 6379), and free ports unless the address
/// variables are set. `env` is given to both services on top.
pub(crate) fn start(check: bool, env: &[(&str, &str)]) -> Result<Running> {
    // Declared before the stack, so it is dropped after: services stop first.
    let mut redis_guard: Option<TempRedis> = None;
    let mut stack = Stack {
        children: Vec::new(),
    };
    let redis_url = match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) if redis_answers(&url) => {
            println!("using the Redis at {}", redact(&url));
            url
        }
        Some(url) if url.starts_with("rediss://") => {
            // No TLS client here: the services' readiness tells instead.
            println!(
                "using the Redis at {} (TLS: not checked here)",
                redact(&url)
            );
            url
        }
        Some(url) => {
            return Err(format!(
                "REDIS_URL={} does not answer PING (or refuses its credentials)",
                redact(&url)
            ));
        }
        None if !check && redis_answers("redis://127.0.0.1:6379") => {
            println!("using the Redis at 127.0.0.1:6379");
            "redis://127.0.0.1:6379".to_owned()
        }
        None => {
            let redis = TempRedis::start()?;
            println!("started redis-server on port {}", redis.port());
            let url = redis.url();
            redis_guard = Some(redis);
            url
        }
    };

    // Not --quiet: a first build takes minutes, and cargo's progress says
    // what is happening meanwhile.
    run("cargo", &["build", "-p", "auth-broker", "-p", "main-api"])?;
    if let Some(redis) = &redis_guard {
        println!(
            "(redis-server on port {} stops with the stack)",
            redis.port()
        );
    }
    let operator_token = std::env::var("INTERNAL_API_TOKEN").ok();
    let token_from_env = operator_token.is_some();
    let token = operator_token.unwrap_or_else(random_token);
    // The operator's addresses when set; else the defaults, or free ports
    // under --check (CI may run beside anything holding 8080).
    let addr = |var: &str, default: &str| -> Result<String> {
        match std::env::var(var).ok().filter(|a| !a.is_empty()) {
            Some(addr) => Ok(addr),
            None if check => local_addr(),
            None => Ok(default.to_owned()),
        }
    };
    let (auth_addr, api_addr) = (
        addr("AUTH_BROKER_ADDR", AUTH_ADDR)?,
        addr("MAIN_API_ADDR", API_ADDR)?,
    );
    let bin = crate::target::dir()?.join("debug");
    for (name, addr_var, addr) in [
        ("auth-broker", "AUTH_BROKER_ADDR", &auth_addr),
        ("main-api", "MAIN_API_ADDR", &api_addr),
    ] {
        let child = Command::new(bin.join(name))
            .env(addr_var, addr)
            .env("REDIS_URL", &redis_url)
            .env("INTERNAL_API_TOKEN", &token)
            .env(
                "LOG_FORMAT",
                std::env::var("LOG_FORMAT").unwrap_or_else(|_| "pretty".to_owned()),
            )
            .envs(env.iter().copied())
            .spawn()
            .map_err(|e| format!("could not start {name}: {e}"))?;
        stack.children.push((name, child));
        stack.wait_until(name, || {
            http(addr, "GET", "/health/live", None, None).is_some_and(|(s, _)| s == 200)
        })?;
    }

    // The services are live before Redis answers them (lazy connect): the
    // walk-through begins once both say they are ready.
    for (name, addr) in [("auth-broker", &auth_addr), ("main-api", &api_addr)] {
        stack.wait_until(&format!("{name} (/health/ready)"), || {
            http(addr, "GET", "/health/ready", None, None).is_some_and(|(s, _)| s == 200)
        })?;
    }
    Ok(Running {
        stack,
        _redis: redis_guard,
        auth_addr,
        api_addr,
        token,
        token_from_env,
    })
}

/// What the walk-through shows for the internal token: the generated
/// development token, or, for the operator's own (`from_env`), the variable
/// that holds it.
fn shown_token(token: &str, from_env: bool) -> &str {
    if from_env {
        "$INTERNAL_API_TOKEN"
    } else {
        token
    }
}

/// The curl walk-through `up` prints. `token` is what the first command
/// shows as the internal token: the generated development token itself, or
/// `$INTERNAL_API_TOKEN` when the operator set that variable (a secret of
/// theirs, never printed; their shell expands it).
fn walk_through_text(auth: &str, api: &str, token: &str) -> String {
    format!(
        "
auth-broker: http://{auth}    main-api: http://{api}
metrics:     http://{api}/metrics    readiness: http://{api}/health/ready

# 1. create a session (internal endpoint)
TOKEN=$(curl -s -X POST http://{auth}/v1/sessions \\
  -H \"Authorization: Bearer {token}\" -H 'Content-Type: application/json' \\
  -d '{{\"tenant_id\":\"acme\",\"user_id\":\"alice\",\"roles\":[\"admin\"]}}' | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')

# 2. put and get a shard (x-cache says which tier answered)
curl -i -X PUT http://{api}/v1/tenants/acme/shards/eu-1/structured \\
  -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"rows\": 42}}'
curl -i http://{api}/v1/tenants/acme/shards/eu-1/structured -H \"Authorization: Bearer $TOKEN\"

# 3. revoke the session; the token then fails everywhere
curl -i -X DELETE http://{auth}/v1/sessions/current -H \"Authorization: Bearer $TOKEN\"

Ctrl-C stops everything.
"
    )
}

/// The walk-through, run and checked (for `--check`).
fn walk_through(stack: &mut Stack, auth: &str, api: &str, internal: &str) -> Result {
    let created = http(
        auth,
        "POST",
        "/v1/sessions",
        Some(internal),
        Some(r#"{"tenant_id":"acme","user_id":"alice","roles":["admin"]}"#),
    );
    let (status, body) = created.ok_or("auth-broker did not answer")?;
    expect(status, 201, "create a session", &body)?;
    let token = body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no token in the session")?
        .to_owned();
    let path = "/v1/tenants/acme/shards/eu-1/structured";
    let (status, body) = http(api, "PUT", path, Some(&token), Some(r#"{"rows":42}"#))
        .ok_or("main-api did not answer")?;
    expect(status, 204, "put a shard", &body)?;
    let (status, body) =
        http(api, "GET", path, Some(&token), None).ok_or("main-api did not answer")?;
    expect(status, 200, "get the shard", &body)?;
    if !body.contains("42") {
        return Err(format!("the shard came back as {body}"));
    }
    let (status, body) =
        http(auth, "DELETE", "/v1/sessions/current", Some(&token), None).ok_or("no answer")?;
    expect(status, 204, "revoke the session", &body)?;
    stack.wait_until("the revoked token to be refused", || {
        http(api, "GET", path, Some(&token), None).is_some_and(|(s, _)| s == 401)
    })?;
    println!("walk-through passed: session, put, get, revocation");
    Ok(())
}

fn expect(status: u16, wanted: u16, step: &str, body: &str) -> Result {
    if status == wanted {
        Ok(())
    } else {
        Err(format!("{step}: expected {wanted}, got {status}: {body}"))
    }
}

/// `url` with the password of its user info (or the whole user info, when
/// it has no `user:` part) replaced by `***`, for printing. Everything up to
/// the last `@` counts as user info, so a password holding `@`, `/` or `?`
/// is hidden too.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((user_info, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match user_info.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

/// Whether the Redis of a `redis://[user:password@]host:port...` URL
/// answers PING, after `AUTH` with the URL's credentials when it has them
/// (percent-decoded, as Redis clients read them).
fn redis_answers(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("redis://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    let Ok(mut stream) = TcpStream::connect(host_port) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if let Some(credentials) = credentials {
        let auth = match credentials.split_once(':') {
            Some(("", password)) => resp(&["AUTH", &percent_decoded(password)]),
            Some((user, password)) => {
                resp(&["AUTH", &percent_decoded(user), &percent_decoded(password)])
            }
            None => resp(&["AUTH", &percent_decoded(credentials)]),
        };
        let mut reply = [0u8; 5];
        if stream.write_all(&auth).is_err()
            || stream.read_exact(&mut reply).is_err()
            || &reply != b"+OK\r\n"
        {
            return false;
        }
    }
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// `parts` as one RESP command (binary-safe: a password may hold anything).
fn resp(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `%XX` escapes decoded (anything malformed is kept as written).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A minimal HTTP/1.1 exchange: status and body, or `None` if nothing answers.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn local_addr() -> std::result::Result<String, String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// 48 hex characters from the OS: a development token for this run only.
fn random_token() -> String {
    let mut bytes = [0u8; 24];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        let _ = urandom.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A password in REDIS_URL never reaches the terminal; the rest of the
    // URL (where Redis is) still does.
    #[test]
    fn a_password_in_redis_url_is_redacted() {
        for (url, shown) in [
            ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
            ("redis://app:s3cret@host:6379", "redis://app:***@host:6379"),
            ("rediss://s3cret@host", "rediss://***@host"),
            ("redis://app:p@ss/w?rd@host:1", "redis://app:***@host:1"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
        assert!(!redact("redis://u:p%40ss@h").contains("p%40ss"));
    }

    // The operator's INTERNAL_API_TOKEN is a secret: the walk-through names
    // the variable instead; a token generated for the run is shown.
    #[test]
    fn an_operators_internal_token_is_never_printed() {
        let secret = "operator-secret-0123456789";
        let text = walk_through_text("a:1", "b:2", shown_token(secret, true));
        assert!(!text.contains(secret), "{text}");
        assert!(text.contains("Bearer $INTERNAL_API_TOKEN"), "{text}");
        let text = walk_through_text("a:1", "b:2", shown_token(secret, false));
        assert!(text.contains(&format!("Bearer {secret}")), "{text}");
    }

    // A Redis that requires a password answers PING only after AUTH: a
    // REDIS_URL carrying the right password is "answering", a wrong one
    // is not (the operator is told, instead of a stack that cannot start).
    #[test]
    fn a_password_protected_redis_answers_with_the_urls_credentials() {
        let server = TempRedis::start_with(&["--requirepass", "pa:ss w%rd"]).unwrap();
        let port = server.port();
        assert!(redis_answers(&format!(
            "redis://:pa%3Ass%20w%25rd@127.0.0.1:{port}"
        )));
        assert!(redis_answers(&format!(
            "redis://default:pa%3Ass%20w%25rd@127.0.0.1:{port}/0"
        )));
        assert!(!redis_answers(&format!("redis://:wrong@127.0.0.1:{port}")));
        assert!(!redis_answers(&format!("redis://127.0.0.1:{port}")));
    }
}
