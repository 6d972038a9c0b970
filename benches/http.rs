//! Throughput and latency of the HTTP API over loopback, with 10,000 FederationEnablements in
//! the cache: the progress route, a 20-item list page, and beside them a route that returns a
//! fixed pre-serialized body on the same server (the ceiling of the stack).
//!
//! `cargo bench --bench http` (options: `-- --seconds 5 --connections 32`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use federation_controller::clock::SystemClock;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod support;
use support::{argument, enablement};

const ENABLEMENTS: usize = 10_000;

/// The path of the i-th request of a route.
type PathOf = fn(usize) -> String;

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
            health: Default::default(),
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
