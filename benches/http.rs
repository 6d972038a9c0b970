//! Throughput and latency of the HTTP API over loopback, with 10,000 FederationEnablements in
//! the cache: the progress route, a 20-item list page, and beside them a route that returns a
//! fixed pre-serialized body on the same server (the ceiling of the stack).
//!
//! `cargo bench --bench http` (options: `-- --seconds 5 --connections 32`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use federation_controller::api::FederationEnablement;
use federation_controller::controller::SystemClock;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ENABLEMENTS: usize = 10_000;

/// The path of the i-th request of a route.
type PathOf = fn(usize) -> String;

fn enablement(i: usize) -> FederationEnablement {
    let sub_job = |t: &str, phase: &str| {
        json!({"type": t, "uid": format!("{i}-{t}"), "phase": phase, "attempts": 1,
            "creationTime": "2026-01-15T08:00:00.123456Z", "updateTime": "2026-01-15T08:01:00.5Z",
            "startTime": "2026-01-15T08:00:01Z", "completionTime": "2026-01-15T08:00:30.25Z",
            "extendParam": if t == "CreateNetworkResource" { json!({"JobExtendParamKeyEndpoint": "203.0.113.10:5443"}) } else { json!({}) }})
    };
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": format!("fe-{i:05}"), "namespace": format!("team-{:02}", i % 50),
            "uid": format!("00000000-0000-4000-8000-{i:012}"), "creationTimestamp": "2026-01-15T08:00:00Z"},
        "spec": {"clusterGroupID": format!("fleet-{i:05}"),
            "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"},
            "sso": {"configUuid": "cfg", "callbackUrl": "https://cb.example"}},
        "status": {"phase": "Success", "reason": "Succeeded", "jobUID": format!("job-{i}"),
            "creationTime": "2026-01-15T08:00:00.123456Z", "updateTime": "2026-01-15T08:01:00.5Z",
            "startTime": "2026-01-15T08:00:01Z", "completionTime": "2026-01-15T08:01:00.5Z", "progress": "4/4",
            "subJobs": [sub_job("CreateNode", "Success"), sub_job("CreateNetworkResource", "Success"),
                sub_job("CreateCert", "Success"), sub_job("InstallFederationChart", "Success")]},
    }))
    .expect("enablement")
}

/// One keep-alive connection: GET `path`, read the whole response; returns the latency.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            reader: BufReader::new(stream),
        }
    }

    async fn get(&mut self, path: &str, body: &mut Vec<u8>) -> Duration {
        let started = Instant::now();
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let mut length = 0usize;
        let mut line = String::new();
        let mut status_ok = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("read header");
            if line.starts_with("HTTP/1.1 ") {
                status_ok = line.starts_with("HTTP/1.1 200");
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("content-length");
            }
            if line == "\r\n" {
                break;
            }
        }
        body.resize(length, 0);
        self.reader.read_exact(body).await.expect("read body");
        assert!(status_ok, "{path} did not answer 200");
        started.elapsed()
    }
}

struct Figures {
    requests: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
    path_of: fn(usize) -> String,
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await;
                let mut body = Vec::new();
                let mut latencies = Vec::new();
                let mut i = c * 7919;
                while Instant::now() < deadline {
                    latencies.push(connection.get(&path_of(i), &mut body).await);
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Figures {
        requests: latencies.len(),
        rps: latencies.len() as f64 / elapsed,
        p50: at(0.50),
        p99: at(0.99),
    }
}

fn argument(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = argument("--seconds", 5.0);
    let connections = argument("--connections", 32.0) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cache = FederationCache::from_objects((0..ENABLEMENTS).map(enablement));
        let state = Arc::new(AppState {
            cache,
            auth: Authorizer::None,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(SystemClock),
        });
        let fixed: &'static [u8] = serde_json::to_vec(&federation_controller::http::wire::progress(
            &enablement(0),
            jiff::Timestamp::now(),
        ))
        .expect("body")
        .leak();
        let app = router(state).route(
            "/fixed",
            get(move || async move { ([("content-type", "application/json")], fixed) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });

        println!(
            "HTTP API over loopback: {ENABLEMENTS} enablements cached, {connections} keep-alive connections, {seconds} s per route, {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("{:<44} {:>10} {:>12} {:>10} {:>10}", "route", "requests", "req/s", "p50", "p99");
        let routes: [(&str, PathOf); 3] = [
            ("fixed pre-serialized body (ceiling)", |_| "/fixed".to_string()),
            ("progress (random fleet)", |i| {
                format!("/v1/clustergroups/fleet-{:05}/federations/progress", (i * 7) % ENABLEMENTS)
            }),
            ("list, 20-item page (random offset)", |i| {
                format!("/api/v1/sso/federations?limit=20&offset={}", (i * 20) % ENABLEMENTS)
            }),
        ];
        for (name, path_of) in routes {
            let figures = load(addr, connections, seconds, path_of).await;
            println!(
                "{:<44} {:>10} {:>12.0} {:>10.3?} {:>10.3?}",
                name, figures.requests, figures.rps, figures.p50, figures.p99
            );
        }
    });
}
