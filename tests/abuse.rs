//! The HTTP API under abuse, against the real listener over loopback: half-open connections,
//! the connection cap, the per-user stream cap, the bounded decision cache and the rate of
//! token reviews.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use federation_controller::api::FederationEnablement;
use federation_controller::http::{AuthConfig, Authorizer, ConnectionLimits, FederationCache};
use serde_json::{Value, json};
use support::FakeApiServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
/// Generous: these tests wait for the server, never race it.
const PATIENCE: Duration = Duration::from_secs(20);

fn enablement(name: &str) -> FederationEnablement {
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-15T08:00:00Z"},
        "spec": {"clusterGroupID": name, "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
        "status": {"phase": "Running", "progress": "1/4", "jobUID": "job-1"},
    }))
    .expect("enablement")
}

/// The API server's answers: every token `user-NAME` is NAME, who may do anything; a token
/// `deaf-NAME` too, from an authenticator that ignores audiences. The TokenReviews it was sent
/// are kept.
struct Reviews {
    server: FakeApiServer,
    tokens: Arc<Mutex<Vec<Value>>>,
}

impl Reviews {
    fn new() -> Self {
        let server = FakeApiServer::new();
        let tokens: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen = tokens.clone();
        server.respond(TOKEN_REVIEWS, move |review| {
            seen.lock().expect("lock").push(review["spec"].clone());
            let mut review = review.clone();
            review["status"] = match review["spec"]["token"].as_str() {
                Some(token) if token.starts_with("user-") => json!({
                    "authenticated": true,
                    "user": {"username": &token[5..]},
                    "audiences": review["spec"]["audiences"].clone(),
                }),
                Some(token) if token.starts_with("deaf-") => json!({
                    "authenticated": true,
                    "user": {"username": &token[5..]},
                }),
                _ => json!({"authenticated": false}),
            };
            review
        });
        server.respond(ACCESS_REVIEWS, |review| {
            let mut review = review.clone();
            review["status"] = json!({"allowed": true});
            review
        });
        Reviews { server, tokens }
    }

    fn reviewed(&self) -> Vec<String> {
        let tokens = self.tokens.lock().expect("lock");
        tokens
            .iter()
            .map(|spec| spec["token"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Serves the router with `--auth=kubernetes` and `config` on the API server of [`Reviews`].
async fn start_guarded(config: AuthConfig) -> (Reviews, SocketAddr) {
    let reviews = Reviews::new();
    let auth = Authorizer::kubernetes_with(reviews.server.client(), config);
    let addr = start(auth, ConnectionLimits::default()).await;
    (reviews, addr)
}

/// Serves the router on a free loopback port until the test ends.
async fn start(auth: Authorizer, limits: ConnectionLimits) -> SocketAddr {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let cache = FederationCache::from_objects([enablement("fleet-a")]);
    support::spawn_server(addr, None, limits, support::app_state(cache, auth));
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "the server listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    addr
}

/// Sends a GET on `stream`; returns the status and the head of the response.
async fn send(stream: &mut TcpStream, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(read, 1, "the connection closed mid-response: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head)
}

/// One request on a new connection: the status, the head and the body.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (status, head) = send(&mut stream, path, token).await;
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.expect("body");
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Waits until the server closes `stream`; returns when.
async fn closed(mut stream: TcpStream) -> Instant {
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return Instant::now(),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn half_open_connections_leave_readyz_answering_and_are_closed_after_the_header_timeout() {
    let addr = start(Authorizer::None, ConnectionLimits::default()).await;
    let mut half_open = Vec::new();
    for i in 0..1000 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // Half send part of a request's headers, half nothing at all.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n")
                .await
                .expect("send");
        }
        half_open.push(stream);
    }
    let opened = Instant::now();
    let (status, _, body) = get(addr, "/readyz", None).await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let closes: Vec<_> = half_open
        .into_iter()
        .map(|s| tokio::spawn(closed(s)))
        .collect();
    let mut latest = Duration::ZERO;
    for close in closes {
        let at = tokio::time::timeout(PATIENCE + Duration::from_secs(10), close)
            .await
            .expect("every half-open connection is closed")
            .expect("task");
        latest = latest.max(at.duration_since(opened));
    }
    println!("the last half-open connection was closed {latest:?} after they were opened");
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_a_closed_one_frees_its_slot() {
    let limits = ConnectionLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
    };
    let addr = start(Authorizer::None, limits).await;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(send(&mut first, "/readyz", None).await.0, 200);
    assert_eq!(send(&mut second, "/readyz", None).await.0, 200);

    let refused = TcpStream::connect(addr).await.expect("the kernel accepts");
    tokio::time::timeout(PATIENCE, closed(refused))
        .await
        .expect("the third connection is closed, not kept waiting");

    drop(first);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut next = TcpStream::connect(addr).await.expect("connect");
        let request = next
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await;
        let mut answer = String::new();
        if request.is_ok()
            && next.read_to_string(&mut answer).await.is_ok()
            && answer.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed connection's slot is given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

#[tokio::test]
async fn a_connection_idle_after_a_request_is_closed_after_the_header_timeout() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let addr = start(Authorizer::None, limits).await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(send(&mut idle, "/readyz", None).await.0, 200);
    tokio::time::timeout(PATIENCE, closed(idle))
        .await
        .expect("the idle keep-alive connection is closed");
}

const STREAM: &str = "/v1/clustergroups/fleet-a/federations/progress?watch=true";

#[tokio::test]
async fn streams_past_the_per_user_cap_are_a_429_and_a_closed_one_frees_its_slot() {
    let (_reviews, addr) = start_guarded(AuthConfig {
        max_streams_per_user: 2,
        ..AuthConfig::default()
    })
    .await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let (status, head) = send(&mut stream, STREAM, Some("user-alice")).await;
        assert_eq!(status, 200, "{head}");
        streams.push(stream);
    }
    let (status, head, body) = get(addr, STREAM, Some("user-alice")).await;
    assert_eq!(status, 429, "{head}");
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error_code"], "FED.4290001");
    assert!(
        body["error_msg"]
            .as_str()
            .is_some_and(|m| m.contains("alice"))
    );
    let mut bob = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(
        send(&mut bob, STREAM, Some("user-bob")).await.0,
        200,
        "each user has their own"
    );

    drop(streams.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        if send(&mut stream, STREAM, Some("user-alice")).await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot is given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_token_cache_keeps_the_most_recently_used_tokens_up_to_its_size() {
    let (reviews, addr) = start_guarded(AuthConfig {
        cache_size: 2,
        ..AuthConfig::default()
    })
    .await;
    for token in ["user-a", "user-b", "user-a", "user-c", "user-a", "user-b"] {
        let (status, head, _) = get(addr, "/api/v1/sso/federations", Some(token)).await;
        assert_eq!(status, 200, "{head}");
    }
    // c pushed out b, the least recently used; a, used since, stayed.
    assert_eq!(reviews.reviewed(), ["user-a", "user-b", "user-c", "user-b"]);
}

#[tokio::test]
async fn token_reviews_past_the_rate_of_an_address_are_a_429_and_cached_tokens_still_pass() {
    let (reviews, addr) = start_guarded(AuthConfig {
        token_reviews_per_second: 1,
        ..AuthConfig::default()
    })
    .await;
    // The burst is twice the rate.
    for token in ["user-a", "user-b"] {
        let (status, head, _) = get(addr, "/api/v1/sso/federations", Some(token)).await;
        assert_eq!(status, 200, "{head}");
    }
    let (status, head, body) = get(addr, "/api/v1/sso/federations", Some("user-c")).await;
    assert_eq!(status, 429, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error_code"], "FED.4290002");
    let (status, _, _) = get(addr, "/api/v1/sso/federations", Some("user-a")).await;
    assert_eq!(status, 200, "a cached token costs no review");
    assert_eq!(reviews.reviewed(), ["user-a", "user-b"]);
}

#[tokio::test]
async fn token_reviews_ask_for_the_configured_audience() {
    let (reviews, addr) = start_guarded(AuthConfig {
        audience: Some("federation-controller".to_string()),
        ..AuthConfig::default()
    })
    .await;
    let (status, head, _) = get(addr, "/api/v1/sso/federations", Some("user-a")).await;
    assert_eq!(status, 200, "{head}");
    let sent = reviews.tokens.lock().expect("lock").clone();
    assert_eq!(sent[0]["audiences"], json!(["federation-controller"]));
    let (status, head, _) = get(addr, "/api/v1/sso/federations", Some("deaf-a")).await;
    assert_eq!(
        status, 401,
        "a review that does not confirm the audience: {head}"
    );
}
