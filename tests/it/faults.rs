//! Fault injection with real processes: PostgreSQL stopped under load, object storage stopped
//! or hung during publish, a function killed with SIGKILL in the middle of publishes,
//! PgBouncer restarted under load. Dependencies that cannot answer are 503 problems within a
//! bound, never hangs or 500s; the Hub recovers by itself; the database keeps whole releases.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atlas_hub::db::STATEMENT_DEADLINE;
use atlas_hub::dev::{free_port, pgbouncer::LocalPgBouncer};
use serde_json::{Value, json};

use crate::api::{ALL_SCOPES, admin_token, app_token, count_rows, create_product};
use crate::integrity::{REQUIRED, assert_whole, client_with_timeout, prepare, publish};
use crate::support::{
    Function, HubOptions, PrivatePostgres, PrivateS3, TestHub, services, unique_name, work_dir,
};

/// Every answer while a dependency is down must come within this (no hang).
const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// Once the dependency is back, every answer must succeed again within this.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// One request of a load run, as the client saw it.
#[derive(Debug, Clone)]
struct Answer {
    kind: &'static str,
    sent: Instant,
    took: Duration,
    /// 0: no HTTP answer (connection error or client timeout).
    status: u16,
    /// The problem `code`, for problem+json answers.
    code: Option<String>,
    error: Option<String>,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// Answered, and not for want of a dependency (a lost compare-and-swap race is served).
    fn served(&self) -> bool {
        (200..500).contains(&self.status)
    }
}

async fn send(kind: &'static str, req: reqwest::RequestBuilder) -> (Answer, Value) {
    let sent = Instant::now();
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let problem = r
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/problem+json");
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let code = problem.then(|| body["code"].as_str().unwrap_or("").to_owned());
            let answer = Answer {
                kind,
                sent,
                took: sent.elapsed(),
                status,
                code,
                error: None,
            };
            (answer, body)
        }
        Err(e) => (
            Answer {
                kind,
                sent,
                took: sent.elapsed(),
                status: 0,
                code: None,
                error: Some(e.to_string()),
            },
            Value::Null,
        ),
    }
}

/// What a load task does in a loop.
#[derive(Clone)]
enum Target {
    /// GET a URL.
    Get(&'static str, String),
    /// Read a channel, then move it to the other of two versions with `expectedVersion`
    /// (compare-and-swap; losing the race is a 409 `channel_moved`).
    Flip {
        base: String,
        token: String,
        product: String,
        channel: String,
        versions: [String; 2],
    },
}

/// Requests in a loop from a few tasks until stopped, every answer kept.
struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// One task per target, each pausing `pause` between requests.
    fn start(targets: Vec<Target>, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        // Longer than any bound, so a hang shows as a slow answer or an error, never a stall.
        let c = client_with_timeout(Duration::from_secs(30));
        let tasks = targets
            .into_iter()
            .map(|target| {
                let (stop, answers, c) = (stop.clone(), answers.clone(), c.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        for a in run_once(&c, &target).await {
                            answers.lock().unwrap().push(a);
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            answers,
            tasks,
        }
    }

    fn snapshot(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Waits until every kind has been served (no 5xx, an answer) `streak` times in a row
    /// since `since`; returns when the first of those answers was sent (the recovery point), or
    /// `None` after `limit`.
    async fn recovered(&self, since: Instant, streak: usize, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let answers = self.snapshot();
            let kinds: std::collections::BTreeSet<&str> = answers.iter().map(|a| a.kind).collect();
            let mut starts = Vec::new();
            for kind in kinds {
                let mine: Vec<&Answer> = answers
                    .iter()
                    .filter(|a| a.kind == kind && a.sent >= since)
                    .collect();
                let tail = mine.iter().rev().take_while(|a| a.served()).count();
                if tail < streak {
                    break;
                }
                starts.push(mine[mine.len() - tail].sent);
            }
            if !starts.is_empty() && starts.len() == answers_kinds(&answers) {
                return starts.into_iter().max();
            }
        }
        None
    }

    async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.answers).unwrap().into_inner().unwrap()
    }
}

fn answers_kinds(answers: &[Answer]) -> usize {
    answers
        .iter()
        .map(|a| a.kind)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

async fn run_once(c: &reqwest::Client, target: &Target) -> Vec<Answer> {
    match target {
        Target::Get(kind, url) => vec![send(kind, c.get(url)).await.0],
        Target::Flip {
            base,
            token,
            product,
            channel,
            versions,
        } => {
            let (read, body) = send(
                "channels",
                c.get(format!("{base}/api/v1/releases/{product}/channels")),
            )
            .await;
            if !read.ok() {
                return vec![read];
            }
            let current = body["channels"]
                .as_array()
                .and_then(|l| l.iter().find(|ch| ch["name"] == channel.as_str()))
                .map(|ch| ch["version"].clone())
                .unwrap_or(Value::Null);
            let to = if current == versions[0].as_str() {
                &versions[1]
            } else {
                &versions[0]
            };
            let (moved, _) = send(
                "move",
                c.put(format!(
                    "{base}/api/v1/releases/{product}/channels/{channel}"
                ))
                .bearer_auth(token)
                .json(&json!({"version": to, "expectedVersion": current})),
            )
            .await;
            vec![read, moved]
        }
    }
}

/// Asserts what holds for every answer of a fault run: an HTTP answer within
/// [`ANSWER_BOUND`], and either a success, one of `expected` (status, code) pairs, or a 503
/// problem with `unavailable_code`. Never a 500 or another 5xx.
fn assert_bounded_answers(answers: &[Answer], unavailable_code: &str, expected: &[(u16, &str)]) {
    assert_answers_within(answers, ANSWER_BOUND, unavailable_code, expected);
}

/// [`assert_bounded_answers`] with another bound.
fn assert_answers_within(
    answers: &[Answer],
    bound: Duration,
    unavailable_code: &str,
    expected: &[(u16, &str)],
) {
    for a in answers {
        assert!(a.error.is_none(), "{} got no answer: {a:?}", a.kind);
        assert!(a.took < bound, "{} answered after {:?}", a.kind, a.took);
        let fine = a.ok()
            || (a.status == 503 && a.code.as_deref() == Some(unavailable_code))
            || expected
                .iter()
                .any(|(s, c)| a.status == *s && a.code.as_deref() == Some(*c));
        assert!(fine, "{} answered {a:?}", a.kind);
    }
}

/// A short account of a run, printed for the log.
fn summarize(name: &str, answers: &[Answer]) -> String {
    let mut by: std::collections::BTreeMap<(&str, u16), usize> = Default::default();
    for a in answers {
        *by.entry((a.kind, a.status)).or_default() += 1;
    }
    let unavailable: Vec<Duration> = answers
        .iter()
        .filter(|a| a.status == 503)
        .map(|a| a.took)
        .collect();
    let slowest = unavailable.iter().max().copied().unwrap_or_default();
    let counts: Vec<String> = by
        .iter()
        .map(|((k, s), n)| format!("{k} {s}: {n}"))
        .collect();
    format!(
        "{name}: {} requests ({}); slowest 503: {slowest:?}",
        answers.len(),
        counts.join(", ")
    )
}

/// A product covering [`REQUIRED`] and an app token with every scope for it.
async fn product_and_token(hub: &TestHub, product: &str) -> String {
    let admin = admin_token(hub);
    create_product(hub, &admin, product, json!({"requiredPlatforms": REQUIRED})).await;
    app_token(hub, &admin, &[product], ALL_SCOPES, &[]).await
}

fn latest_path(product: &str) -> String {
    format!("/api/v1/releases/{product}/latest/linux/x86_64?channel=stable")
}

// ---- PostgreSQL stopped ------------------------------------------------------------------

/// PostgreSQL stops (fast shutdown) under load and comes back: reads on the local server and
/// on a function alone answer 503 `db_unavailable` at once while it is down, a publish too
/// (nothing written), and everything succeeds again shortly after it is back, without
/// restarting any Hub process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_load_answers_503_db_unavailable_at_once_and_recovers_by_itself() {
    let mut pg = PrivatePostgres::start("faults-pg").await;
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(pg.url()),
        ..Default::default()
    })
    .await;
    let function = Function::start_with("releases_latest", &pg.url(), &hub.bucket, &[]);
    let token = product_and_token(&hub, "launcher").await;
    let c = client_with_timeout(Duration::from_secs(30));
    let first = prepare(&c, &hub.url, &token, "launcher", "1.0.0", Some("stable")).await;
    let (status, body) = publish(&c, &hub.url, &token, "launcher", &first)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let download_id = body["artifacts"][0]["downloadId"]
        .as_str()
        .unwrap()
        .to_owned();
    let beta = prepare(&c, &hub.url, &token, "launcher", "1.0.1", Some("beta")).await;
    let (status, body) = publish(&c, &hub.url, &token, "launcher", &beta)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let second = prepare(&c, &hub.url, &token, "launcher", "1.1.0", Some("stable")).await;

    let latest = latest_path("launcher");
    let download = hub.at(&format!("/api/v1/download/{download_id}"));
    let load = Load::start(
        vec![
            Target::Get("latest", hub.at(&latest)),
            Target::Get("latest", hub.at(&latest)),
            Target::Get("channels", hub.at("/api/v1/releases/launcher/channels")),
            Target::Get("download", download),
            Target::Get("function latest", function.at(&latest)),
            Target::Get("function latest", function.at(&latest)),
            // Transactions in flight when the server goes down (one mover: no lost races).
            Target::Flip {
                base: hub.url.clone(),
                token: token.clone(),
                product: "launcher".into(),
                channel: "beta".into(),
                versions: ["1.0.0".into(), "1.0.1".into()],
            },
        ],
        Duration::from_millis(5),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stopping = Instant::now();
    pg.stop();
    let down = Instant::now();
    let sent = Instant::now();
    let (status, body) = publish(&c, &hub.url, &token, "launcher", &second)
        .await
        .unwrap();
    let publish_took = sent.elapsed();
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("db_unavailable")),
        "{body}"
    );
    assert!(
        publish_took < ANSWER_BOUND,
        "publish answered after {publish_took:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let resuming = Instant::now();
    pg.resume();
    let up = Instant::now();
    let recovered = load
        .recovered(up, 20, RECOVERY_BOUND + Duration::from_secs(5))
        .await;
    let answers = load.stop().await;
    println!(
        "{}; PostgreSQL stop took {:?}, restart {:?}; publish while down answered 503 in {publish_took:?}; \
         every route succeeded again {:?} after PostgreSQL was ready",
        summarize("postgres stopped", &answers),
        down - stopping,
        up - resuming,
        recovered.map(|r| r.saturating_duration_since(up)),
    );
    assert_bounded_answers(&answers, "db_unavailable", &[]);
    let while_down: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= down && a.sent + a.took <= resuming)
        .collect();
    assert!(
        while_down.len() >= 20,
        "too few requests while down: {}",
        while_down.len()
    );
    assert!(
        while_down.iter().all(|a| a.status == 503),
        "answers while PostgreSQL was down must be 503: {while_down:?}"
    );
    for kind in ["latest", "channels", "download", "function latest"] {
        assert!(
            while_down.iter().any(|a| a.kind == kind),
            "no {kind} request while down"
        );
    }
    let recovered = recovered.expect("the Hub did not recover by itself");
    assert!(
        recovered.saturating_duration_since(up) < RECOVERY_BOUND,
        "recovery took {:?}",
        recovered.saturating_duration_since(up)
    );

    // Nothing of the refused publish was written; the write path works again (transactions
    // come from the pool, not the shared connection).
    assert_eq!(count_rows(&hub, "releases", "version = '1.1.0'").await, 0);
    let (status, body) = publish(&c, &hub.url, &token, "launcher", &second)
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (a, body) = send("latest", c.get(function.at(&latest))).await;
    assert_eq!((a.status, body["version"].as_str()), (200, Some("1.1.0")));
    assert_whole(&hub.database_url, "launcher").await;
}

/// PostgreSQL hangs under load (every process suspended: connections stay open, nothing
/// answers): requests answer 503 `db_unavailable` once the statement deadline has passed,
/// instead of waiting for the platform's function timeout, and everything is served again as
/// soon as it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hung_under_load_answers_503_after_the_statement_deadline_and_recovers() {
    let mut pg = PrivatePostgres::start("faults-pg-hung").await;
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(pg.url()),
        ..Default::default()
    })
    .await;
    let function = Function::start_with("releases_latest", &pg.url(), &hub.bucket, &[]);
    let token = product_and_token(&hub, "launcher").await;
    let c = client_with_timeout(Duration::from_secs(30));
    for (version, channel) in [("1.0.0", "stable"), ("1.0.1", "beta")] {
        let body = prepare(&c, &hub.url, &token, "launcher", version, Some(channel)).await;
        let (status, answer) = publish(&c, &hub.url, &token, "launcher", &body)
            .await
            .unwrap();
        assert_eq!(status, 201, "{answer}");
    }
    let latest = latest_path("launcher");
    let load = Load::start(
        vec![
            Target::Get("latest", hub.at(&latest)),
            Target::Get("channels", hub.at("/api/v1/releases/launcher/channels")),
            Target::Get("function latest", function.at(&latest)),
            Target::Flip {
                base: hub.url.clone(),
                token: token.clone(),
                product: "launcher".into(),
                channel: "beta".into(),
                versions: ["1.0.0".into(), "1.0.1".into()],
            },
        ],
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    pg.freeze();
    let frozen = Instant::now();
    tokio::time::sleep(STATEMENT_DEADLINE + Duration::from_millis(1500)).await;
    let thawing = Instant::now();
    pg.thaw();
    let recovered = load
        .recovered(thawing, 20, RECOVERY_BOUND + Duration::from_secs(5))
        .await;
    let answers = load.stop().await;
    println!(
        "{}; hung {:?}; every route served again {:?} after it resumed",
        summarize("postgres hung", &answers),
        thawing - frozen,
        recovered.map(|r| r.saturating_duration_since(thawing)),
    );
    // The deadline, and the time to answer after it.
    let bound = STATEMENT_DEADLINE + Duration::from_secs(2);
    assert_answers_within(&answers, bound, "db_unavailable", &[]);
    // Answered while it hung (a request sent just before the freeze counts: its statement
    // was still waiting); whatever completed in the first moments may have been served.
    let while_hung: Vec<&Answer> = answers
        .iter()
        .filter(|a| {
            let answered = a.sent + a.took;
            answered > frozen + Duration::from_millis(200) && answered <= thawing
        })
        .collect();
    for kind in ["latest", "channels", "function latest"] {
        assert!(
            while_hung.iter().any(|a| a.kind == kind),
            "no {kind} request answered while PostgreSQL hung"
        );
    }
    assert!(
        while_hung.iter().all(|a| a.status == 503),
        "answers while PostgreSQL hung must be 503: {while_hung:?}"
    );
    let recovered = recovered.expect("the Hub did not recover by itself");
    assert!(
        recovered.saturating_duration_since(thawing) < RECOVERY_BOUND,
        "recovery took {:?}",
        recovered.saturating_duration_since(thawing)
    );
    assert_whole(&hub.database_url, "launcher").await;
}

// ---- Object storage stopped or hung --------------------------------------------------------

/// Storage stops while a release is being published: publish answers 503
/// `storage_unavailable` (refused connections, then a server that accepts and never answers:
/// both within the S3 client's bounds), writes no release, and succeeds once storage is back.
#[tokio::test]
async fn storage_stopped_during_publish_answers_503_and_writes_nothing_until_it_returns() {
    let mut s3 = PrivateS3::start();
    let hub = TestHub::start_with(HubOptions {
        env: vec![("ATLAS_S3_ENDPOINT".into(), s3.endpoint())],
        ..Default::default()
    })
    .await;
    s3.create_bucket(&hub.bucket);
    let token = product_and_token(&hub, "launcher").await;
    let c = client_with_timeout(Duration::from_secs(60));
    let body = prepare(&c, &hub.url, &token, "launcher", "2.0.0", Some("stable")).await;
    s3.stop();
    let sent = Instant::now();
    let (status, problem) = publish(&c, &hub.url, &token, "launcher", &body)
        .await
        .unwrap();
    let refused_took = sent.elapsed();
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{problem}"
    );
    assert!(refused_took < Duration::from_secs(10), "{refused_took:?}");
    let (health, checks) = send("health", c.get(hub.at("/api/health?deep=1"))).await;
    assert_eq!(health.status, 503, "{checks}");
    assert_eq!(checks["checks"]["storage"], "error: storage_unavailable");
    nothing_written(&hub).await;

    s3.stall();
    let sent = Instant::now();
    let (status, problem) = publish(&c, &hub.url, &token, "launcher", &body)
        .await
        .unwrap();
    let stalled_took = sent.elapsed();
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{problem}"
    );
    // The S3 client's operation timeout (9 s) bounds it, with some slack for a busy machine.
    assert!(stalled_took < Duration::from_secs(15), "{stalled_took:?}");
    nothing_written(&hub).await;
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "5xx bodies never leak internals: {problem}"
    );

    s3.resume();
    let (status, release) = publish(&c, &hub.url, &token, "launcher", &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{release}");
    println!(
        "storage stopped: publish answered 503 in {refused_took:?} (connection refused), \
         {stalled_took:?} (server accepting and never answering); 201 once back"
    );
    let holdings = assert_whole(&hub.database_url, "launcher").await;
    assert_eq!(
        holdings.channels.get("stable").map(String::as_str),
        Some("2.0.0")
    );
}

/// No release, artifact, channel move or publish audit row.
async fn nothing_written(hub: &TestHub) {
    assert_eq!(count_rows(hub, "releases", "true").await, 0);
    assert_eq!(count_rows(hub, "artifacts", "true").await, 0);
    assert_eq!(
        count_rows(hub, "channels", "release_id IS NOT NULL").await,
        0
    );
    assert_eq!(
        count_rows(
            hub,
            "audit_log",
            "action IN ('release.publish', 'channel.move')"
        )
        .await,
        0
    );
}

// ---- A function killed in the middle of publishes -----------------------------------------

/// Many concurrent publishes of four-artifact releases (most of them moving a channel) go to
/// the publish function alone; it is killed with SIGKILL while they are in flight, twice.
/// Afterwards the database holds only whole releases and consistent channels and audit rows;
/// every publish acknowledged before the kill is there; retried publishes complete (200 when
/// the killed one had committed, 201 otherwise); the restarted function serves normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_function_killed_mid_publish_leaves_only_whole_releases() {
    const PER_ROUND: usize = 16;
    let hub = TestHub::start().await;
    let token = product_and_token(&hub, "launcher").await;
    let c = client_with_timeout(Duration::from_secs(60));
    let mut publisher =
        Function::start_with("releases_publish", &hub.database_url, &hub.bucket, &[]);
    let channels = [Some("beta"), Some("dev"), None, Some("stable")];
    let mut acknowledged_total = 0;
    let mut unanswered_total = 0;
    // Cut off after their transaction committed: the retry finds them (200).
    let mut committed_unanswered = 0;
    for round in 0..2 {
        let mut bodies = Vec::new();
        for i in 0..PER_ROUND {
            let version = format!("{}.{i}.0", round + 1);
            let channel = channels[i % channels.len()];
            bodies.push(prepare(&c, &hub.url, &token, "launcher", &version, channel).await);
        }
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel();
        let calls: Vec<_> = bodies
            .iter()
            .cloned()
            .map(|body| {
                let (c, url, token, ack_tx) = (
                    c.clone(),
                    publisher.url.clone(),
                    token.clone(),
                    ack_tx.clone(),
                );
                tokio::spawn(async move {
                    let result = publish(&c, &url, &token, "launcher", &body).await;
                    let status = result.as_ref().map(|(s, _)| *s).unwrap_or(0);
                    let _ = ack_tx.send(status);
                    (body["version"].as_str().unwrap().to_owned(), result)
                })
            })
            .collect();
        // Kill once a quarter have been answered: the rest are in flight or queued.
        for _ in 0..PER_ROUND / 4 {
            ack_rx.recv().await;
        }
        publisher.kill();
        let mut acknowledged = Vec::new();
        let mut unanswered = 0;
        for call in calls {
            let (version, result) = call.await.unwrap();
            match result {
                Ok((201, _)) => acknowledged.push(version),
                Ok((status, body)) => panic!("publish {version} answered {status}: {body}"),
                Err(_) => unanswered += 1,
            }
        }
        assert!(
            unanswered > 0,
            "round {round}: every publish finished before the kill; nothing was in flight"
        );
        acknowledged_total += acknowledged.len();
        unanswered_total += unanswered;

        let holdings = assert_whole(&hub.database_url, "launcher").await;
        for v in &acknowledged {
            assert!(holdings.versions.contains(v), "acknowledged {v} is missing");
        }

        // CI retries what got no answer; acknowledged ones are identical re-publishes.
        publisher.restart();
        for body in &bodies {
            let version = body["version"].as_str().unwrap();
            let (status, answer) = publish(&c, &publisher.url, &token, "launcher", body)
                .await
                .unwrap();
            let expected: &[u16] = if acknowledged.iter().any(|v| v == version) {
                &[200]
            } else {
                &[200, 201]
            };
            // A retry naming a channel that a newer release of the same round took meanwhile
            // is refused rather than moving the channel back (its release stays whole).
            let moved_on = status == 409
                && answer["code"] == "channel_moved"
                && answer["currentVersion"].as_str().is_some_and(|v| {
                    semver::Version::parse(v).unwrap() > semver::Version::parse(version).unwrap()
                });
            assert!(
                expected.contains(&status) || moved_on,
                "retry of {version} answered {status}: {answer}"
            );
            if (status == 200 || moved_on) && !acknowledged.iter().any(|v| v == version) {
                committed_unanswered += 1;
            }
        }
        let holdings = assert_whole(&hub.database_url, "launcher").await;
        assert_eq!(holdings.versions.len(), (round + 1) * PER_ROUND);
    }
    println!(
        "kill -9 mid-publish: {acknowledged_total} publishes acknowledged before the kills, \
         {unanswered_total} cut off ({committed_unanswered} of them had committed); database \
         whole after each kill and after the retries"
    );

    // The restarted function serves normally, and reads see its releases.
    let body = prepare(&c, &hub.url, &token, "launcher", "9.0.0", Some("stable")).await;
    let (status, answer) = publish(&c, &publisher.url, &token, "launcher", &body)
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let (a, latest) = send("latest", c.get(hub.at(&latest_path("launcher")))).await;
    assert_eq!((a.status, latest["version"].as_str()), (200, Some("9.0.0")));
    let holdings = assert_whole(&hub.database_url, "launcher").await;
    assert_eq!(
        holdings.channels.get("stable").map(String::as_str),
        Some("9.0.0")
    );
}

// ---- PgBouncer restarted -----------------------------------------------------------------

/// A transaction-mode PgBouncer is killed and started again on the same port under load
/// (reads and compare-and-swap channel moves, i.e. transactions): answers in the gap are 503
/// `db_unavailable` within the bound, never 500s or hangs, and the Hub's pool recovers
/// without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_restarted_under_load_the_pool_recovers() {
    let dir = work_dir().join(unique_name("pgbouncer-restart"));
    let port = free_port().unwrap();
    let pg_port = services().pg_port;
    let mut bouncer = Some(LocalPgBouncer::start(&dir, port, pg_port).expect("pgbouncer"));
    let direct = crate::support::fresh_database(true).await;
    let database = direct.rsplit('/').next().unwrap().to_owned();
    let hub = TestHub::start_with(HubOptions {
        database_url: Some(bouncer.as_ref().unwrap().url(&database)),
        env: vec![("ATLAS_DB_POOLER".into(), "transaction".into())],
        ..Default::default()
    })
    .await;
    let admin = crate::api::admin_token_on(&direct);
    create_product(
        &hub,
        &admin,
        "launcher",
        json!({"requiredPlatforms": REQUIRED}),
    )
    .await;
    let token = app_token(&hub, &admin, &["launcher"], ALL_SCOPES, &[]).await;
    let c = client_with_timeout(Duration::from_secs(30));
    for (v, channel) in [("1.0.0", "beta"), ("1.1.0", "stable")] {
        let body = prepare(&c, &hub.url, &token, "launcher", v, Some(channel)).await;
        let (status, answer) = publish(&c, &hub.url, &token, "launcher", &body)
            .await
            .unwrap();
        assert_eq!(status, 201, "{answer}");
    }

    let flip = Target::Flip {
        base: hub.url.clone(),
        token: token.clone(),
        product: "launcher".into(),
        channel: "beta".into(),
        versions: ["1.0.0".into(), "1.1.0".into()],
    };
    let load = Load::start(
        vec![
            Target::Get("latest", hub.at(&latest_path("launcher"))),
            Target::Get("latest", hub.at(&latest_path("launcher"))),
            flip.clone(),
            flip,
        ],
        Duration::from_millis(10),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A service manager's restart (SIGTERM), then a crash (SIGKILL).
    let mut windows = Vec::new();
    for graceful in [true, false] {
        let stopping = Instant::now();
        let old = bouncer.take().unwrap();
        if graceful {
            old.stop();
        } else {
            drop(old);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        bouncer = Some(LocalPgBouncer::start(&dir, port, pg_port).expect("pgbouncer restart"));
        let up = Instant::now();
        let recovered = load
            .recovered(up, 20, RECOVERY_BOUND + Duration::from_secs(5))
            .await;
        windows.push((graceful, stopping, up, recovered));
    }
    let answers = load.stop().await;
    let mut report = summarize("pgbouncer restarted", &answers);
    for (graceful, stopping, up, recovered) in &windows {
        report += &format!(
            "; {}: down {:?}, every route served again {:?} after it listened",
            if *graceful { "SIGTERM" } else { "SIGKILL" },
            *up - *stopping,
            recovered.map(|r| r.saturating_duration_since(*up)),
        );
    }
    println!("{report}");
    // Losing a compare-and-swap race to the other mover is the expected 409.
    assert_bounded_answers(&answers, "db_unavailable", &[(409, "channel_moved")]);
    for (graceful, stopping, up, recovered) in windows {
        let gap = answers
            .iter()
            .filter(|a| a.sent >= stopping && a.sent < up && a.status == 503)
            .count();
        assert!(
            gap > 0,
            "no request met the restart window (graceful: {graceful})"
        );
        let recovered = recovered.expect("the pool did not recover");
        assert!(
            recovered.saturating_duration_since(up) < RECOVERY_BOUND,
            "recovery took {:?}",
            recovered.saturating_duration_since(up)
        );
        assert!(
            answers
                .iter()
                .any(|a| a.kind == "move" && a.status == 200 && a.sent > recovered),
            "no channel move succeeded after the restart"
        );
    }
    assert_whole(&direct, "launcher").await;
    drop(bouncer);
}
