//! Throughput and latency of the HTTP API over loopback, with 10,000 FederationEnablements in
//! the cache: the progress route (open, and with `--auth=kubernetes` and the caller's decisions
//! cached), a 20-item list page, and beside them a route that returns a fixed pre-serialized
//! body under the same router layers (the ceiling of the stack).
//!
//! The routes take turns, `--rounds` slots each, so a disturbance (another build on the machine)
//! falls on all of them alike. Each slot of the authenticated route has a server of its own whose
//! reviews (answered by the in-memory API server) are all made just before it, so every decision
//! is cached while it is measured; the reviews made during measurement are shown, and should be 0.
//!
//! `cargo bench --bench http` (options: `-- --seconds 5 --rounds 5 --connections 32`: seconds
//! per route in all). Ends with `ratio <name> <value>` and `figure <name> <value> <unit>` lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use federation_controller::clock::SystemClock;
use federation_controller::http::{
    AppState, AuthConfig, Authorizer, DECISION_TTL, FederationCache, router_with,
};
use federation_controller::metrics::Metrics;
use federation_controller::testing::FakeApiServer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod support;
use support::{argument, enablement};

const ENABLEMENTS: usize = 10_000;

/// The path of the i-th request of a route.
type PathOf = fn(usize) -> String;

/// The token the authenticated route's requests carry.
const TOKEN: &str = "bench-token";

/// One keep-alive connection: GET `path`, read the whole response; returns the latency.
struct Connection {
    reader: BufReader<TcpStream>,
    /// Extra header lines, each ending in CRLF.
    headers: &'static str,
}

impl Connection {
    async fn open(addr: SocketAddr, headers: &'static str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            reader: BufReader::new(stream),
            headers,
        }
    }

    async fn get(&mut self, path: &str, body: &mut Vec<u8>) -> Duration {
        let started = Instant::now();
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{}\r\n", self.headers);
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

/// What one route did over all its slots.
#[derive(Default)]
struct Figures {
    latencies: Vec<Duration>,
    seconds: f64,
}

impl Figures {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    /// Needs the latencies sorted (see [`Figures::finish`]).
    fn at(&self, q: f64) -> Duration {
        let n = self.latencies.len();
        self.latencies[((n as f64 * q) as usize).min(n - 1)]
    }

    fn finish(&mut self) {
        self.latencies.sort();
    }
}

/// `connections` keep-alive connections GET `path_of(i)` for `seconds`, into `figures`.
async fn load(
    addr: SocketAddr,
    headers: &'static str,
    connections: usize,
    seconds: f64,
    path_of: PathOf,
    figures: &mut Figures,
) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(async move {
                let mut connection = Connection::open(addr, headers).await;
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
    for task in tasks {
        figures.latencies.extend(task.await.expect("load task"));
    }
    figures.seconds += started.elapsed().as_secs_f64();
}

/// Every fleet's progress once, over `connections` connections.
async fn prime(addr: SocketAddr, connections: usize) {
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            tokio::spawn(async move {
                let mut connection = Connection::open(addr, AUTH_HEADER).await;
                let mut body = Vec::new();
                for fleet in (c..ENABLEMENTS).step_by(connections) {
                    connection.get(&progress_path(fleet), &mut body).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("prime task");
    }
}

const AUTH_HEADER: &str = "Authorization: Bearer bench-token\r\n";

fn progress_path(fleet: usize) -> String {
    format!("/v1/clustergroups/fleet-{fleet:05}/federations/progress")
}

/// A random fleet's progress.
fn random_progress(i: usize) -> String {
    progress_path((i * 7) % ENABLEMENTS)
}

/// Serves `router` on a loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    addr
}

fn state(cache: &FederationCache, auth: Authorizer) -> Arc<AppState> {
    Arc::new(AppState {
        cache: cache.clone(),
        auth,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        health: Default::default(),
    })
}

/// An API server whose reviews say the bench's token is `bench`, who may get everything; it
/// counts the reviews it answers.
fn reviewer(reviews: Arc<AtomicUsize>) -> FakeApiServer {
    let server = FakeApiServer::new();
    let counted = reviews.clone();
    server.respond(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        move |review| {
            counted.fetch_add(1, Ordering::Relaxed);
            let mut review = review.clone();
            review["status"] = if review["spec"]["token"] == TOKEN {
                json!({"authenticated": true, "user": {"username": "bench", "uid": "u-bench", "groups": ["system:authenticated"]}})
            } else {
                json!({"authenticated": false})
            };
            review
        },
    );
    server.respond(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        move |review| {
            reviews.fetch_add(1, Ordering::Relaxed);
            let mut review = review.clone();
            review["status"] = json!({"allowed": true});
            review
        },
    );
    server
}

fn main() {
    let seconds = argument("--seconds", 5.0);
    let rounds = argument("--rounds", 5usize).max(1);
    let connections = argument("--connections", 32.0) as usize;
    let slot = seconds / rounds as f64;
    // Decisions are kept for DECISION_TTL: a slot must end before the first ones made for it go.
    assert!(
        slot < DECISION_TTL.as_secs_f64() - 3.0,
        "a slot of {slot} s is too long to measure with every decision cached; use more --rounds"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cache = FederationCache::from_objects((0..ENABLEMENTS).map(enablement));
        let fixed: &'static [u8] = serde_json::to_vec(&federation_controller::http::wire::progress(
            &enablement(0),
            jiff::Timestamp::now(),
        ))
        .expect("body")
        .leak();
        let ceiling = || {
            Router::new().route(
                "/fixed",
                get(move || async move { ([("content-type", "application/json")], fixed) }),
            )
        };
        let open = serve(router_with(state(&cache, Authorizer::None), ceiling())).await;

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "HTTP API over loopback: {ENABLEMENTS} enablements cached, {connections} keep-alive connections, {seconds} s per route in {rounds} slots, {cores} cores"
        );
        let routes: [(&str, PathOf); 3] = [
            ("fixed pre-serialized body (ceiling)", |_| "/fixed".to_string()),
            ("progress (random fleet)", random_progress),
            ("list, 20-item page (random offset)", |i| {
                format!("/api/v1/sso/federations?limit=20&offset={}", (i * 20) % ENABLEMENTS)
            }),
        ];
        let mut figures: [Figures; 4] = Default::default();
        let reviews = Arc::new(AtomicUsize::new(0));
        let mut reviews_measured = 0;
        for _ in 0..rounds {
            for ((_, path_of), figures) in routes.iter().zip(figures.iter_mut()) {
                load(open, "", connections, slot, *path_of, figures).await;
            }
            // A server of its own, its decisions all made just now.
            let auth = Authorizer::kubernetes_with(
                reviewer(reviews.clone()).client(),
                AuthConfig {
                    cache_size: 2 * ENABLEMENTS,
                    ..AuthConfig::default()
                },
            );
            let guarded = serve(router_with(state(&cache, auth), Router::new())).await;
            prime(guarded, connections).await;
            let before = reviews.load(Ordering::Relaxed);
            load(guarded, AUTH_HEADER, connections, slot, random_progress, &mut figures[3]).await;
            reviews_measured += reviews.load(Ordering::Relaxed) - before;
        }

        println!("{:<52} {:>10} {:>12} {:>10} {:>10}", "route", "requests", "req/s", "p50", "p99");
        let names = [
            routes[0].0,
            routes[1].0,
            routes[2].0,
            "progress, --auth=kubernetes, decisions cached",
        ];
        for (name, figures) in names.iter().zip(figures.iter_mut()) {
            figures.finish();
            println!(
                "{:<52} {:>10} {:>12.0} {:>10.3?} {:>10.3?}",
                name,
                figures.latencies.len(),
                figures.rps(),
                figures.at(0.50),
                figures.at(0.99)
            );
        }
        println!("reviews made while the authenticated route was measured: {reviews_measured}");

        let [ceiling, progress, list, progress_auth] = &figures;
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        println!("ratio progress/ceiling {:.2}", progress.rps() / ceiling.rps());
        println!(
            "ratio progress-p99/ceiling-p99 {:.2}",
            micros(progress.at(0.99)) / micros(ceiling.at(0.99))
        );
        println!("ratio progress-auth/ceiling {:.2}", progress_auth.rps() / ceiling.rps());
        println!("ratio list/ceiling {:.2}", list.rps() / ceiling.rps());
        println!("figure cores {cores} cores");
        for (name, figures) in [
            ("ceiling", ceiling),
            ("progress", progress),
            ("progress_auth", progress_auth),
            ("list", list),
        ] {
            println!("figure {name}_rps {:.0} req/s", figures.rps());
            println!("figure {name}_p99 {:.0} us", micros(figures.at(0.99)));
        }
    });
}
