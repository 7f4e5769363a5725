//! Part two's load: HTTP tasks against auth-broker and two main-api
//! processes. Data documents go through the same ledger as part one (a PUT
//! writes `{key, version}`, a DELETE is a change to "absent" with its own
//! version); sessions are created, used and revoked.
//!
//! **Sessions.** A session that was created (201) must be accepted
//! everywhere (never 401) unless Redis lost its data since the creation
//! began; a session whose revocation was acknowledged (204) must be refused
//! (401, or 503 while Redis cannot answer) by every instance for requests
//! that start more than the grace after the acknowledgement (the relaxed
//! grace while a fault is in progress: an instance whose subscriber went
//! silent may serve a session from its L1 until the heartbeat notices).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::faults::FaultClock;
use crate::ledger::{Ledger, Verdict, Versioned};
use crate::report::Violations;
use crate::stats::{OpStats, ReadStats};

pub(crate) const ROUTES: [&str; 7] = [
    "GET document",
    "PUT document",
    "DELETE document",
    "GET session",
    "POST session",
    "DELETE session",
    "revoked token used",
];
const GET_DOC: usize = 0;
const PUT_DOC: usize = 1;
const DELETE_DOC: usize = 2;
const GET_SESSION: usize = 3;
const POST_SESSION: usize = 4;
const DELETE_SESSION: usize = 5;
const REVOKED: usize = 6;

/// Where the services listen, and how to call them.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) broker: String,
    pub(crate) apis: Vec<String>,
    pub(crate) internal_token: String,
    pub(crate) client: reqwest::Client,
}

impl Endpoints {
    pub(crate) fn doc_url(&self, api: usize, shard: &str) -> String {
        format!(
            "{}/v1/tenants/soak/shards/{shard}/structured",
            self.apis[api]
        )
    }

    /// Creates a session for `user`: the token, or the status.
    pub(crate) async fn create_session(&self, user: &str) -> Result<String, Option<u16>> {
        let response = self
            .client
            .post(format!("{}/v1/sessions", self.broker))
            .bearer_auth(&self.internal_token)
            .json(&json!({"tenant_id": "soak", "user_id": user, "roles": ["admin"]}))
            .send()
            .await
            .map_err(|_| None)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["token"].as_str() {
            Some(token) if status == 201 => Ok(token.to_owned()),
            _ => Err(Some(status)),
        }
    }
}

/// Session outcomes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionStats {
    pub(crate) created: u64,
    pub(crate) revoked: u64,
    pub(crate) revoked_refused: u64,
    pub(crate) revoked_accepted_within_grace: u64,
    pub(crate) revoked_accepted_late: u64,
    pub(crate) live_refused_after_data_loss: u64,
    pub(crate) live_refused: u64,
}

impl SessionStats {
    fn merge(&mut self, o: &Self) {
        self.created += o.created;
        self.revoked += o.revoked;
        self.revoked_refused += o.revoked_refused;
        self.revoked_accepted_within_grace += o.revoked_accepted_within_grace;
        self.revoked_accepted_late += o.revoked_accepted_late;
        self.live_refused_after_data_loss += o.live_refused_after_data_loss;
        self.live_refused += o.live_refused;
    }
}

/// What one task did.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpStats {
    pub(crate) ops: [OpStats; ROUTES.len()],
    pub(crate) reads: ReadStats,
    pub(crate) statuses: BTreeMap<String, u64>,
    pub(crate) sessions: SessionStats,
}

impl HttpStats {
    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.merge(theirs);
        }
        self.reads.merge(&other.reads);
        for (status, n) in &other.statuses {
            *self.statuses.entry(status.clone()).or_default() += n;
        }
        self.sessions.merge(&other.sessions);
    }
}

/// Everything the HTTP tasks share.
#[derive(Debug)]
pub(crate) struct HttpLoad {
    pub(crate) endpoints: Endpoints,
    pub(crate) shards: Vec<String>,
    pub(crate) ledger: Ledger,
    pub(crate) clock: Arc<FaultClock>,
    /// Bumped right before Redis loses its data and again once it answers.
    pub(crate) data_generation: AtomicU64,
    pub(crate) stop: AtomicBool,
    pub(crate) violations: Violations,
    pub(crate) pace: Duration,
    pub(crate) stuck_limit: Duration,
    pub(crate) started: Instant,
}

/// One answer.
struct Answer {
    status: Option<u16>,
    body: Vec<u8>,
    started: Instant,
    /// The request overlapped a fault (or its recovery).
    during_fault: bool,
    /// The data generation when the answer came.
    generation_after: u64,
}

/// A session this task holds, with the data generation when its creation
/// began.
struct Held {
    token: String,
    generation: u64,
}

struct Task {
    user: String,
    session: Option<Held>,
    revoked: VecDeque<(String, Instant)>,
    rng: fastrand::Rng,
    stats: HttpStats,
}

/// One HTTP task, until `load.stop`.
pub(crate) async fn run(load: Arc<HttpLoad>, id: u64) -> HttpStats {
    let mut task = Task {
        user: format!("w{id}"),
        session: None,
        revoked: VecDeque::new(),
        rng: fastrand::Rng::with_seed(id),
        stats: HttpStats::default(),
    };
    let pace_us = u64::try_from(load.pace.as_micros()).unwrap_or(u64::MAX);
    while !load.stop.load(Ordering::Relaxed) {
        if task.session.is_none() {
            create_session(&load, &mut task).await;
        } else {
            let shard = task.rng.usize(..load.shards.len());
            let api = task.rng.usize(..load.endpoints.apis.len());
            match task.rng.u8(..100) {
                0..40 => get_doc(&load, &mut task, api, shard).await,
                40..55 => change_doc(&load, &mut task, api, shard, false).await,
                55..63 => change_doc(&load, &mut task, api, shard, true).await,
                63..75 => get_session(&load, &mut task).await,
                75..88 => use_revoked(&load, &mut task, api, shard).await,
                _ => revoke_session(&load, &mut task).await,
            }
        }
        tokio::time::sleep(Duration::from_micros(task.rng.u64(0..=2 * pace_us))).await;
    }
    task.stats
}

impl HttpLoad {
    /// Sends a request and does what every route shares: timing, status
    /// counts, 503s as errors by kind, and violations for a missing answer
    /// or any other 5xx.
    async fn send(&self, route: usize, request: RequestBuilder, stats: &mut HttpStats) -> Answer {
        let mark = self.clock.mark();
        let started = Instant::now();
        let result = request.send().await;
        let (status, body) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                (Some(status), body)
            }
            Err(_) => (None, Vec::new()),
        };
        let took = started.elapsed();
        let during_fault = self.clock.overlapped(mark);
        let op = &mut stats.ops[route];
        op.latency.record(took);
        if took > self.stuck_limit {
            op.stuck += 1;
            self.violations.add(format!(
                "stuck: {} took {} ms (limit {} ms)",
                ROUTES[route],
                took.as_millis(),
                self.stuck_limit.as_millis()
            ));
        }
        let status_name = status.map_or("no answer".to_owned(), |s| s.to_string());
        *stats.statuses.entry(status_name.clone()).or_default() += 1;
        match status {
            Some(503) => {
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                op.error(&format!("503 {code}"), during_fault);
            }
            Some(s) if s >= 500 => {
                op.error(&status_name, during_fault);
                self.violations.add(format!(
                    "{} answered {s}: {}",
                    ROUTES[route],
                    String::from_utf8_lossy(&body)
                ));
            }
            None => {
                op.error("no answer", during_fault);
                self.violations
                    .add(format!("{} got no HTTP answer", ROUTES[route]));
            }
            Some(_) => {}
        }
        Answer {
            status,
            body,
            started,
            during_fault,
            generation_after: self.data_generation.load(Ordering::SeqCst),
        }
    }

    /// A status the route should never see.
    fn unexpected(&self, route: usize, answer: &Answer, stats: &mut HttpStats) {
        let status = answer.status.unwrap_or(0);
        stats.ops[route].error(&status.to_string(), answer.during_fault);
        self.violations.add(format!(
            "{} answered {status}: {}",
            ROUTES[route],
            String::from_utf8_lossy(&answer.body)
        ));
    }

    /// A 401 on a session this task holds: fine only if Redis lost its data
    /// since the session's creation began (then a new one is made).
    fn refused(&self, route: usize, task: &mut Task, answer: &Answer) {
        let held = task.session.take().map_or(0, |h| h.generation);
        if held != answer.generation_after {
            task.stats.ops[route].ok += 1;
            task.stats.sessions.live_refused_after_data_loss += 1;
        } else {
            task.stats.ops[route].error("401", answer.during_fault);
            task.stats.sessions.live_refused += 1;
            self.violations.add(format!(
                "{}: a live session was refused (401) with no data loss since its creation",
                ROUTES[route]
            ));
        }
    }
}

fn token(task: &Task) -> &str {
    task.session.as_ref().map_or("", |h| h.token.as_str())
}

async fn create_session(load: &HttpLoad, task: &mut Task) {
    let generation = load.data_generation.load(Ordering::SeqCst);
    let request = load
        .endpoints
        .client
        .post(format!("{}/v1/sessions", load.endpoints.broker))
        .bearer_auth(&load.endpoints.internal_token)
        .json(&json!({"tenant_id": "soak", "user_id": task.user, "roles": ["admin"]}));
    let answer = load.send(POST_SESSION, request, &mut task.stats).await;
    match answer.status {
        Some(201) => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            if let Some(token) = body["token"].as_str() {
                task.stats.ops[POST_SESSION].ok += 1;
                task.stats.sessions.created += 1;
                task.session = Some(Held {
                    token: token.to_owned(),
                    generation,
                });
            } else {
                load.unexpected(POST_SESSION, &answer, &mut task.stats);
            }
        }
        Some(s) if s >= 500 => {}
        None => {}
        Some(_) => load.unexpected(POST_SESSION, &answer, &mut task.stats),
    }
}

async fn get_session(load: &HttpLoad, task: &mut Task) {
    let request = load
        .endpoints
        .client
        .get(format!("{}/v1/sessions/current", load.endpoints.broker))
        .bearer_auth(token(task));
    let answer = load.send(GET_SESSION, request, &mut task.stats).await;
    match answer.status {
        Some(200) => task.stats.ops[GET_SESSION].ok += 1,
        Some(401) => load.refused(GET_SESSION, task, &answer),
        Some(s) if s >= 500 => {}
        None => {}
        Some(_) => load.unexpected(GET_SESSION, &answer, &mut task.stats),
    }
}

async fn get_doc(load: &HttpLoad, task: &mut Task, api: usize, shard: usize) {
    let url = load.endpoints.doc_url(api, &load.shards[shard]);
    let request = load.endpoints.client.get(url).bearer_auth(token(task));
    let answer = load.send(GET_DOC, request, &mut task.stats).await;
    match answer.status {
        Some(200) => {
            task.stats.ops[GET_DOC].ok += 1;
            let Ok(value) = serde_json::from_slice::<Versioned>(&answer.body) else {
                load.unexpected(GET_DOC, &answer, &mut task.stats);
                return;
            };
            let relaxed = answer.during_fault;
            let verdict = load.ledger.check(shard, value, answer.started, relaxed);
            task.stats.reads.record(verdict, relaxed);
            if matches!(verdict, Verdict::Stale { .. } | Verdict::Phantom) {
                load.violations.add(format!(
                    "{verdict:?}: main-api {api} served shard {} as {value:?}, \
                     request started at {:.3} s (during a fault: {relaxed})",
                    load.shards[shard],
                    (answer.started - load.started).as_secs_f64()
                ));
            }
        }
        Some(404) => {
            task.stats.ops[GET_DOC].ok += 1;
            task.stats.reads.absent += 1;
        }
        Some(401) => load.refused(GET_DOC, task, &answer),
        Some(s) if s >= 500 => {}
        None => {}
        Some(_) => load.unexpected(GET_DOC, &answer, &mut task.stats),
    }
}

/// A PUT of a new version, or a DELETE (a change to "absent").
async fn change_doc(load: &HttpLoad, task: &mut Task, api: usize, shard: usize, delete: bool) {
    let route = if delete { DELETE_DOC } else { PUT_DOC };
    let url = load.endpoints.doc_url(api, &load.shards[shard]);
    let change = load.ledger.begin(shard).await;
    let client = &load.endpoints.client;
    let request = if delete {
        client.request(Method::DELETE, url)
    } else {
        client
            .put(url)
            .json(&json!({"key": shard, "version": change.version}))
    }
    .bearer_auth(token(task));
    let answer = load.send(route, request, &mut task.stats).await;
    load.ledger.finish(change, answer.status == Some(204));
    match answer.status {
        Some(204) => task.stats.ops[route].ok += 1,
        Some(401) => load.refused(route, task, &answer),
        Some(s) if s >= 500 => {}
        None => {}
        Some(_) => load.unexpected(route, &answer, &mut task.stats),
    }
}

async fn revoke_session(load: &HttpLoad, task: &mut Task) {
    let request = load
        .endpoints
        .client
        .delete(format!("{}/v1/sessions/current", load.endpoints.broker))
        .bearer_auth(token(task));
    let answer = load.send(DELETE_SESSION, request, &mut task.stats).await;
    match answer.status {
        Some(204) => {
            task.stats.ops[DELETE_SESSION].ok += 1;
            task.stats.sessions.revoked += 1;
            if let Some(held) = task.session.take() {
                task.revoked.push_back((held.token, Instant::now()));
                if task.revoked.len() > 4 {
                    task.revoked.pop_front();
                }
            }
        }
        Some(401) => load.refused(DELETE_SESSION, task, &answer),
        // Unknown outcome: the session may or may not be revoked; forget it.
        Some(s) if s >= 500 => task.session = None,
        None => task.session = None,
        Some(_) => load.unexpected(DELETE_SESSION, &answer, &mut task.stats),
    }
}

/// Presents a revoked token to a random service: it must be refused once
/// the revocation is older than the grace.
async fn use_revoked(load: &HttpLoad, task: &mut Task, api: usize, shard: usize) {
    if task.revoked.is_empty() {
        return get_session(load, task).await;
    }
    let (token, revoked_at) = task.revoked[task.rng.usize(..task.revoked.len())].clone();
    let url = if task.rng.bool() {
        load.endpoints.doc_url(api, &load.shards[shard])
    } else {
        format!("{}/v1/sessions/current", load.endpoints.broker)
    };
    let request = load.endpoints.client.get(url).bearer_auth(&token);
    let answer = load.send(REVOKED, request, &mut task.stats).await;
    match answer.status {
        Some(401) => {
            task.stats.ops[REVOKED].ok += 1;
            task.stats.sessions.revoked_refused += 1;
        }
        Some(200 | 404) => {
            let grace = if answer.during_fault {
                load.ledger.relaxed_grace()
            } else {
                load.ledger.grace()
            };
            let behind = answer.started.saturating_duration_since(revoked_at);
            if behind > grace {
                task.stats.ops[REVOKED].error("accepted", answer.during_fault);
                task.stats.sessions.revoked_accepted_late += 1;
                load.violations.add(format!(
                    "a session revoked {} ms before the request was accepted (grace {} ms)",
                    behind.as_millis(),
                    grace.as_millis()
                ));
            } else {
                task.stats.ops[REVOKED].ok += 1;
                task.stats.sessions.revoked_accepted_within_grace += 1;
            }
        }
        Some(s) if s >= 500 => {}
        None => {}
        Some(_) => load.unexpected(REVOKED, &answer, &mut task.stats),
    }
}
