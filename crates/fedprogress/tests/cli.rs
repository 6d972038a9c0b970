//! The terminal view (`kubectl fedprogress`) run as a binary against an in-process HTTP API:
//! the controller's router over a hand-fed cache, behind a small layer that records each
//! request (and can demand a token or cut a stream short).
//!
//! The server's clock is fixed at 2026-01-15 08:00:00 UTC, so durations are exact. With stdout
//! a pipe, the view prints the tree again at each change, which the tests read line by line.

// The controller's test support (a clock, a fake API server), shared rather than copied.
#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use federation_controller::api::FederationEnablement;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use fedprogress::kubernetes_source::KubernetesSource;
use futures::StreamExt;
use kube::ResourceExt;
use kube::runtime::watcher::Event as WatchEvent;
use serde_json::{Value, json};

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-fedprogress");
const TOKEN: &str = "s3cret-t0ken-value";
const WAIT: Duration = Duration::from_secs(30);

fn step(type_: &str, phase: &str, start: &str, completion: Option<&str>) -> Value {
    let mut s = json!({"type": type_, "uid": format!("uid-{type_}"), "phase": phase, "attempts": 1,
        "startTime": start, "reason": if phase == "Success" { "Succeeded" } else { phase }});
    if let Some(completion) = completion {
        s["completionTime"] = json!(completion);
    }
    s
}

fn pending(type_: &str) -> Value {
    json!({"type": type_, "uid": format!("uid-{type_}"), "phase": "Pending", "attempts": 0})
}

/// fleet-a, two subjobs done, CreateCert running for 48 s at the server's "now".
fn running() -> Value {
    json!({
        "phase": "Running", "reason": "Running", "jobUID": "job-1", "progress": "2/4",
        "startTime": "2026-01-15T07:59:00Z",
        "subJobs": [
            step("CreateNode", "Success", "2026-01-15T07:59:00Z", Some("2026-01-15T07:59:01.5Z")),
            step("CreateNetworkResource", "Success", "2026-01-15T07:59:00Z", Some("2026-01-15T07:59:12Z")),
            step("CreateCert", "Running", "2026-01-15T07:59:12Z", None),
            pending("InstallFederationChart"),
        ],
    })
}

fn succeeded() -> Value {
    json!({
        "phase": "Success", "reason": "Succeeded", "jobUID": "job-1", "progress": "4/4",
        "startTime": "2026-01-15T07:59:00Z", "completionTime": "2026-01-15T07:59:40Z",
        "subJobs": [
            step("CreateNode", "Success", "2026-01-15T07:59:00Z", Some("2026-01-15T07:59:01.5Z")),
            step("CreateNetworkResource", "Success", "2026-01-15T07:59:00Z", Some("2026-01-15T07:59:12Z")),
            step("CreateCert", "Success", "2026-01-15T07:59:12Z", Some("2026-01-15T07:59:20Z")),
            step("InstallFederationChart", "Success", "2026-01-15T07:59:20Z", Some("2026-01-15T07:59:40Z")),
        ],
    })
}

fn failed() -> Value {
    let mut status = running();
    status["phase"] = json!("Failed");
    status["reason"] = json!("SimulatedFailure");
    status["completionTime"] = json!("2026-01-15T07:59:30Z");
    status["subJobs"][2] = step(
        "CreateCert",
        "Failed",
        "2026-01-15T07:59:12Z",
        Some("2026-01-15T07:59:30Z"),
    );
    status["subJobs"][2]["reason"] = json!("SimulatedFailure");
    status
}

fn enablement(fleet: &str, status: Value) -> FederationEnablement {
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": fleet, "namespace": "team-a", "uid": format!("uid-{fleet}"),
            "creationTimestamp": "2026-01-15T07:58:59Z"},
        "spec": {"clusterGroupID": fleet, "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
        "status": status,
    }))
    .expect("enablement")
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    authorization: Option<String>,
}

#[derive(Clone, Default)]
struct Behaviour {
    /// Answer 401 unless `Authorization: Bearer <this>`.
    require_token: Option<&'static str>,
    /// End the first event stream right after its first event.
    cut_first_stream: bool,
    /// Answer the n-th request (from 1) with this status and body, as a proxy in front of a
    /// restarting replica does.
    proxy_error: Option<(usize, http::StatusCode, &'static str)>,
}

struct Server {
    url: String,
    cache: FederationCache,
    seen: Arc<Mutex<Vec<Seen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(objects: Vec<FederationEnablement>, behaviour: Behaviour) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let cache = FederationCache::from_objects(objects);
        let state = Arc::new(AppState {
            cache: cache.clone(),
            auth: Authorizer::None,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(support::ManualClock::new()),
            health: Default::default(),
        });
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let app = router(state).layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let record = record.clone();
                let behaviour = behaviour.clone();
                async move { observe(request, next, &record, &behaviour).await }
            },
        ));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            url: format!("http://{addr}"),
            cache,
            seen,
            _runtime: runtime,
        }
    }

    fn set(&self, fe: FederationEnablement) {
        self.cache.apply(WatchEvent::Apply(fe));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn wait_for_requests(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.seen().len() < n {
            assert!(Instant::now() < deadline, "{n} requests: {:?}", self.seen());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn observe(
    request: Request,
    next: Next,
    record: &Mutex<Vec<Seen>>,
    behaviour: &Behaviour,
) -> Response {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let nth = {
        let mut seen = record.lock().expect("lock");
        seen.push(Seen {
            uri: request.uri().to_string(),
            authorization: authorization.clone(),
        });
        seen.len()
    };
    if let Some((at, status, body)) = behaviour.proxy_error
        && at == nth
    {
        return (status, [("content-type", "text/plain")], body).into_response();
    }
    if let Some(token) = behaviour.require_token
        && authorization != Some(format!("Bearer {token}"))
    {
        let body = json!({"error_code": "FED.4010001", "error_msg": "missing or invalid token"});
        return (
            http::StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let response = next.run(request).await;
    if !(behaviour.cut_first_stream && nth == 1) {
        return response;
    }
    // Pass bytes on until the first event is complete, then end the body.
    let (parts, body) = response.into_parts();
    let start = (body.into_data_stream(), String::new(), false);
    let cut = futures::stream::unfold(start, |(mut inner, mut buffered, done)| async move {
        if done {
            return None;
        }
        let chunk = inner.next().await?;
        if let Ok(bytes) = &chunk {
            buffered.push_str(&String::from_utf8_lossy(bytes));
        }
        let done = buffered.contains("\n\n");
        Some((chunk, (inner, buffered, done)))
    });
    Response::from_parts(parts, Body::from_stream(cut))
}

/// A run of a binary, its stdout read line by line as it comes.
struct Run {
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
}

impl Run {
    fn start(binary: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .env_remove("FEDPROGRESS_TOKEN")
            .env_remove("FEDPROGRESS_SERVER")
            .env("KUBECONFIG", "/nonexistent")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            stdout: Vec::new(),
        }
    }

    /// Reads stdout until a line contains `needle`.
    fn wait_for_line(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stdout.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    let _ = self.child.kill();
                    panic!("no line with {needle:?}; stdout so far: {:#?}", self.stdout);
                }
            }
        }
    }

    /// Waits for the exit: (code, stdout, stderr).
    fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after {WAIT:?}; stdout: {:#?}", self.stdout);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stdout.extend(self.lines.iter());
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let mut stdout = self.stdout.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        (status.code().unwrap_or(-1), stdout, stderr)
    }
}

fn progress(args: &[&str]) -> (i32, String, String) {
    progress_with_env(args, &[])
}

fn progress_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    Run::start(PLUGIN, args, env).finish()
}

const RUNNING_TREE: &str = "\
fleet-a  CreateFederationContainer  2/4  Running  1m00s
├─ ✓ CreateNode              Success  1.5s
├─ ✓ CreateNetworkResource   Success  12s
├─ ▸ CreateCert              Running  48s
└─ · InstallFederationChart  Pending
";

#[test]
fn one_shot_prints_the_tree_and_exits_3_while_the_job_runs() {
    let server = Server::start(vec![enablement("fleet-a", running())], Behaviour::default());
    let (code, stdout, stderr) = progress(&["fleet-a", "--server", &server.url]);
    assert_eq!(stdout, RUNNING_TREE, "{stderr}");
    assert_eq!(code, 3);
    assert_eq!(
        server.seen()[0].uri,
        "/v1/clustergroups/fleet-a/federations/progress"
    );
}

#[test]
fn one_shot_of_a_succeeded_job_exits_0() {
    let server = Server::start(
        vec![enablement("fleet-a", succeeded())],
        Behaviour::default(),
    );
    let (code, stdout, _) = progress(&["fleet-a", "--server", &format!("{}/", server.url)]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with("fleet-a  CreateFederationContainer  4/4  Success  40s\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("└─ ✓ InstallFederationChart  Success  20s"),
        "{stdout}"
    );
}

#[test]
fn one_shot_of_a_failed_job_exits_1_and_shows_the_reasons() {
    let server = Server::start(vec![enablement("fleet-a", failed())], Behaviour::default());
    let (code, stdout, _) = progress(&["fleet-a", "--server", &server.url]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(
            "fleet-a  CreateFederationContainer  2/4  Failed (SimulatedFailure)  30s\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("├─ ✗ CreateCert              Failed   18s   SimulatedFailure\n"),
        "{stdout}"
    );
}

#[test]
fn while_deleting_the_teardown_is_shown() {
    let mut status = succeeded();
    status["phase"] = json!("Deleting");
    status["teardown"] = json!({
        "jobUID": "teardown-1", "phase": "Running", "reason": "Uninstalling", "startTime": "2026-01-15T07:59:50Z",
        "steps": [
            step("UninstallFederationChart", "Running", "2026-01-15T07:59:50Z", None),
            pending("DeleteNetworkResource"), pending("DeleteCert"), pending("ReleaseNode"),
        ],
    });
    let server = Server::start(vec![enablement("fleet-a", status)], Behaviour::default());
    let (code, stdout, _) = progress(&["fleet-a", "--server", &server.url]);
    assert_eq!(code, 3);
    assert_eq!(
        stdout,
        "fleet-a  DeleteFederation  0/4  Running (Uninstalling)  10s\n\
         ├─ ▸ UninstallFederationChart  Running  10s\n\
         ├─ · DeleteNetworkResource     Pending\n\
         ├─ · DeleteCert                Pending\n\
         └─ · ReleaseNode               Pending\n"
    );
}

/// `kubectl fedprogress fleet-a --watch` against `server`.
fn watch(server: &Server) -> Run {
    Run::start(
        PLUGIN,
        &["fleet-a", "--server", &server.url, "--watch"],
        &[],
    )
}

fn watch_until(final_status: Value) -> (i32, String, String, Vec<Seen>) {
    let server = Server::start(vec![enablement("fleet-a", running())], Behaviour::default());
    let mut run = watch(&server);
    run.wait_for_line("CreateCert              Running");
    let mut next = running();
    next["subJobs"][2]["reason"] = json!("WaitingForEndpoint");
    server.set(enablement("fleet-a", next));
    run.wait_for_line("WaitingForEndpoint");
    server.set(enablement("fleet-a", final_status));
    let (code, stdout, stderr) = run.finish();
    (code, stdout, stderr, server.seen())
}

#[test]
fn watch_prints_each_change_and_exits_0_when_the_job_succeeds() {
    let (code, stdout, stderr, seen) = watch_until(succeeded());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trees: Vec<&str> = stdout.split("\n\n").collect();
    assert_eq!(trees.len(), 3, "{stdout}");
    assert_eq!(format!("{}\n", trees[0]), RUNNING_TREE);
    assert!(
        trees[2].starts_with("fleet-a  CreateFederationContainer  4/4  Success  40s"),
        "{stdout}"
    );
    assert_eq!(seen.len(), 1, "one stream: {seen:?}");
    assert_eq!(
        seen[0].uri,
        "/v1/clustergroups/fleet-a/federations/progress?watch=true"
    );
}

#[test]
fn watch_exits_1_when_the_job_fails() {
    let (code, stdout, stderr, _) = watch_until(failed());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout
            .split("\n\n")
            .last()
            .is_some_and(|t| t.contains("Failed (SimulatedFailure)")),
        "{stdout}"
    );
}

#[test]
fn watch_of_an_enablement_deleted_meanwhile_is_an_error() {
    let server = Server::start(vec![enablement("fleet-a", running())], Behaviour::default());
    let mut run = watch(&server);
    run.wait_for_line("CreateCert");
    server
        .cache
        .apply(WatchEvent::Delete(enablement("fleet-a", running())));
    let (code, _, stderr) = run.finish();
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "error: FederationEnablement fleet-a was deleted while it was being watched\n"
    );
}

#[test]
fn a_stream_cut_before_the_job_ends_is_resumed() {
    let server = Server::start(
        vec![enablement("fleet-a", running())],
        Behaviour {
            cut_first_stream: true,
            ..Behaviour::default()
        },
    );
    let run = watch(&server);
    server.wait_for_requests(2);
    server.set(enablement("fleet-a", succeeded()));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout.matches("2/4  Running").count(),
        1,
        "the same state again is not shown twice: {stdout}"
    );
}

const ENVOY_503: &str = "upstream connect error or disconnect/reset before headers\n";

#[test]
fn a_proxy_error_while_reconnecting_is_retried_like_a_lost_connection() {
    let server = Server::start(
        vec![enablement("fleet-a", running())],
        Behaviour {
            cut_first_stream: true,
            proxy_error: Some((2, http::StatusCode::SERVICE_UNAVAILABLE, ENVOY_503)),
            ..Behaviour::default()
        },
    );
    let run = watch(&server);
    server.wait_for_requests(3);
    server.set(enablement("fleet-a", succeeded()));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("4/4  Success"), "{stdout}");
}

#[test]
fn a_proxy_error_before_the_first_connection_is_an_error_exit() {
    let server = Server::start(
        vec![enablement("fleet-a", running())],
        Behaviour {
            proxy_error: Some((1, http::StatusCode::BAD_GATEWAY, ENVOY_503)),
            ..Behaviour::default()
        },
    );
    let (code, stdout, stderr) = watch(&server).finish();
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.contains("answered 502: upstream connect error"),
        "{stderr}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn an_error_page_reaches_the_terminal_on_one_line_without_its_escape_sequences() {
    let server = Server::start(
        vec![],
        Behaviour {
            proxy_error: Some((
                1,
                http::StatusCode::BAD_GATEWAY,
                "<html>\r\n<title>\x1b]0;owned\x07\x1b[2J502</title>\r\n</html>\r\n",
            )),
            ..Behaviour::default()
        },
    );
    let (code, _, stderr) = progress(&["fleet-a", "--server", &server.url]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "error: {}/v1/clustergroups/fleet-a/federations/progress answered 502: \
             <html> <title>\\u{{1b}}]0;owned\\u{{7}}\\u{{1b}}[2J502</title> </html> (Bad Gateway)\n",
            server.url
        )
    );
}

#[test]
fn an_unknown_fleet_is_an_error_exit_with_the_servers_message() {
    let server = Server::start(vec![enablement("fleet-a", running())], Behaviour::default());
    for watch in [false, true] {
        let mut args = vec!["nope", "--server", &server.url];
        if watch {
            args.push("--watch");
        }
        let (code, stdout, stderr) = progress(&args);
        assert_eq!((code, stdout.as_str()), (2, ""));
        assert_eq!(
            stderr,
            format!(
                "error: {}/v1/clustergroups/nope/federations/progress{} answered 404: \
                 no federation for cluster group \"nope\" (FED.4040001)\n",
                server.url,
                if watch { "?watch=true" } else { "" }
            )
        );
    }
}

#[test]
fn the_token_is_sent_as_a_bearer_and_never_printed() {
    let server = Server::start(
        vec![enablement("fleet-a", succeeded())],
        Behaviour {
            require_token: Some(TOKEN),
            ..Behaviour::default()
        },
    );
    let by_flag = progress(&["fleet-a", "--server", &server.url, "--token", TOKEN]);
    let by_env = progress_with_env(
        &["fleet-a", "--server", &server.url, "--watch"],
        &[("FEDPROGRESS_TOKEN", TOKEN)],
    );
    let wrong = progress(&["fleet-a", "--server", &server.url, "--token", "not-it"]);
    let none = progress(&["fleet-a", "--server", &server.url]);
    assert_eq!(by_flag.0, 0, "{by_flag:?}");
    assert_eq!(by_env.0, 0, "{by_env:?}");
    assert_eq!(wrong.0, 2);
    assert!(
        wrong.2.contains("answered 401: missing or invalid token"),
        "{wrong:?}"
    );
    assert_eq!(none.0, 2);
    let bearer = format!("Bearer {TOKEN}");
    let sent: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.authorization.clone())
        .collect();
    assert_eq!(
        sent,
        [
            Some(bearer.clone()),
            Some(bearer),
            Some("Bearer not-it".to_string()),
            None
        ]
    );
    let help = progress_with_env(&["--help"], &[("FEDPROGRESS_TOKEN", TOKEN)]);
    for (code, stdout, stderr) in [by_flag, by_env, wrong, help] {
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "token shown (exit {code}): {stdout}{stderr}"
        );
    }
}

#[test]
fn a_bad_fleet_id_is_refused_before_any_request() {
    let server = Server::start(vec![], Behaviour::default());
    let (code, _, stderr) = progress(&["Fleet_A", "--server", &server.url]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("\"Fleet_A\" is not a cluster group id"),
        "{stderr}"
    );
    assert!(server.seen().is_empty());
}

#[test]
fn an_unreachable_server_is_an_error_exit() {
    let closed: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let (code, _, stderr) = progress(&["fleet-a", "--server", &format!("http://{closed}")]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach http://{closed}/v1/clustergroups/fleet-a/federations/progress: "
        )),
        "{stderr}"
    );
}

#[test]
fn the_kubectl_plugin_takes_the_same_arguments_and_shows_the_same_tree() {
    let server = Server::start(vec![enablement("fleet-a", running())], Behaviour::default());
    let (code, stdout, stderr) =
        Run::start(PLUGIN, &["fleet-a", "--server", &server.url], &[]).finish();
    assert_eq!((code, stdout.as_str()), (3, RUNNING_TREE), "{stderr}");
}

#[test]
fn help_documents_the_exit_codes() {
    for (binary, args) in [(PLUGIN, &["--help"][..])] {
        let (code, stdout, _) = Run::start(binary, args, &[]).finish();
        assert_eq!(code, 0);
        for line in [
            "0    the job succeeded",
            "1    the job failed",
            "2    no view",
            "3    without --watch: the job has not ended yet",
        ] {
            assert!(stdout.contains(line), "{binary}: {line:?} not in {stdout}");
        }
    }
}

#[test]
fn an_https_server_is_trusted_through_certificate_authority() {
    let dir = std::env::temp_dir().join(format!("progress-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let (cert_file, key_file) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).expect("cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("key");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let state = Arc::new(AppState {
        cache: FederationCache::from_objects([enablement("fleet-a", succeeded())]),
        auth: Authorizer::None,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(support::ManualClock::new()),
        health: Default::default(),
    });
    runtime.spawn(federation_controller::http::serve(
        federation_controller::http::ServeConfig {
            addr,
            tls: Some((cert_file.clone(), key_file)),
            reload_every: Duration::from_secs(3600),
        },
        router(state),
        std::future::pending(),
    ));
    let url = format!("https://localhost:{}", addr.port());
    let cert_arg = cert_file.to_string_lossy().into_owned();
    let deadline = Instant::now() + WAIT;
    let trusted = loop {
        let run = progress(&[
            "fleet-a",
            "--server",
            &url,
            "--certificate-authority",
            &cert_arg,
        ]);
        if run.0 == 0 || Instant::now() > deadline || !run.2.contains("cannot reach") {
            break run;
        }
        std::thread::sleep(Duration::from_millis(50)); // the server is still binding
    };
    let untrusted = progress(&["fleet-a", "--server", &url]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(trusted.0, 0, "{trusted:?}");
    assert_eq!(untrusted.0, 2);
    assert!(untrusted.2.contains("cannot reach"), "{untrusted:?}");
}

// The cluster source, on the in-memory API server: where it looks for a fleet.

const ALL_ENABLEMENTS: &str = "/apis/federation.fleet.dev/v1alpha1/federationenablements";

fn stored(namespace: &str, name: &str, fleet: &str, created: &str) -> Value {
    json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"clusterGroupID": fleet, "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
    })
}

fn calls(api: &support::FakeApiServer) -> Vec<String> {
    api.take_calls().iter().map(support::Call::line).collect()
}

#[tokio::test]
async fn without_a_namespace_the_fleets_owner_is_found_in_any_namespace() {
    let api = support::FakeApiServer::new();
    api.insert(stored("team-b", "newer", "fleet-x", "2026-01-15T08:00:00Z"));
    api.insert(stored("team-a", "older", "fleet-x", "2026-01-14T08:00:00Z"));
    api.insert(stored("team-a", "other", "fleet-y", "2026-01-13T08:00:00Z"));
    let found = KubernetesSource::new(api.client())
        .find("fleet-x", None)
        .await
        .expect("found");
    assert_eq!(
        (found.namespace().as_deref(), found.name_any().as_str()),
        (Some("team-a"), "older")
    );
    assert_eq!(calls(&api), [format!("GET {ALL_ENABLEMENTS}")]);
}

#[tokio::test]
async fn with_a_namespace_only_that_namespace_is_searched() {
    let api = support::FakeApiServer::new();
    api.insert(stored("team-a", "older", "fleet-x", "2026-01-14T08:00:00Z"));
    api.insert(stored("team-b", "newer", "fleet-x", "2026-01-15T08:00:00Z"));
    let found = KubernetesSource::new(api.client())
        .find("fleet-x", Some("team-b"))
        .await
        .expect("found");
    assert_eq!(found.name_any(), "newer");
    assert_eq!(
        calls(&api),
        ["GET /apis/federation.fleet.dev/v1alpha1/namespaces/team-b/federationenablements"]
    );
}

#[tokio::test]
async fn when_listing_all_namespaces_is_forbidden_the_kubeconfigs_namespace_is_searched() {
    let api = support::FakeApiServer::new();
    api.fail(http::Method::GET, ALL_ENABLEMENTS, 403);
    api.insert(stored("default", "mine", "fleet-x", "2026-01-15T08:00:00Z"));
    let found = KubernetesSource::new(api.client())
        .find("fleet-x", None)
        .await
        .expect("found");
    assert_eq!(found.name_any(), "mine");
    assert_eq!(
        calls(&api),
        [
            format!("GET {ALL_ENABLEMENTS}"),
            "GET /apis/federation.fleet.dev/v1alpha1/namespaces/default/federationenablements"
                .to_string()
        ]
    );
}

#[tokio::test]
async fn not_found_says_what_was_searched_and_why() {
    let api = support::FakeApiServer::new();
    api.fail(http::Method::GET, ALL_ENABLEMENTS, 403);
    let error = KubernetesSource::new(api.client())
        .find("fleet-x", None)
        .await
        .expect_err("nothing to find");
    assert_eq!(
        error.to_string(),
        "no FederationEnablement has spec.clusterGroupID \"fleet-x\"; searched namespace \"default\" \
         (the kubeconfig's: listing all namespaces is forbidden: injected failure); \
         name another with -n/--namespace"
    );
}
