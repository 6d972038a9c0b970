//! HTTPS on the HTTP API: served with the given certificate, and a new certificate written to
//! the same files is picked up without a restart.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use federation_controller::http::{
    AppState, Authorizer, FederationCache, ServeConfig, router, serve,
};
use federation_controller::metrics::Metrics;
use rcgen::{CertificateParams, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A self-signed certificate for localhost, written to `dir`; returns its DER.
fn write_certificate(dir: &Path, common_name: &str) -> CertificateDer<'static> {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    // Write to temporary names, then rename: the server never reads half a file.
    std::fs::write(dir.join("tls.crt.tmp"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key.tmp"), key.serialize_pem()).expect("write key");
    std::fs::rename(dir.join("tls.key.tmp"), dir.join("tls.key")).expect("rename key");
    std::fs::rename(dir.join("tls.crt.tmp"), dir.join("tls.crt")).expect("rename cert");
    cert.der().clone()
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Connects trusting exactly `trusted`, sends GET /healthz, returns the status line.
async fn healthz(addr: SocketAddr, trusted: &CertificateDer<'static>) -> std::io::Result<String> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).map_err(std::io::Error::other)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

#[tokio::test]
async fn serves_https_and_picks_up_a_renewed_certificate() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("fc-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let first = write_certificate(&dir, "first");
    let addr = free_port();
    let state = Arc::new(AppState {
        cache: FederationCache::from_objects([]),
        auth: Authorizer::None,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(support::ManualClock::new()),
        health: Default::default(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        ServeConfig {
            addr,
            tls: Some((dir.join("tls.crt"), dir.join("tls.key"))),
            reload_every: Duration::from_millis(50),
        },
        router(state),
        async move {
            let _ = stopped.await;
        },
    ));

    let mut status = Err(std::io::Error::other("not tried"));
    for _ in 0..100 {
        status = healthz(addr, &first).await;
        if status.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status.expect("HTTPS answers"), "HTTP/1.1 200 OK");

    // Files modified within the same second may keep their mtime: wait one out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = write_certificate(&dir, "second");
    let mut renewed = false;
    for _ in 0..100 {
        if healthz(addr, &second).await.is_ok() {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        renewed,
        "the renewed certificate is served without a restart"
    );
    assert!(
        healthz(addr, &first).await.is_err(),
        "the old certificate is no longer served"
    );

    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}
