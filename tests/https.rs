//! HTTPS on the HTTP API: served with the given certificate, and a new certificate written to
//! the same files is picked up without a restart.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use federation_controller::http::{
    Authorizer, ConnectionLimits, FederationCache, ServeConfig, router, serve,
};
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

/// A TLS connection trusting exactly `trusted`, handshake done.
async fn connect(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
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
    TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
}

/// Connects trusting exactly `trusted`, sends GET /healthz, returns the status line.
async fn healthz(addr: SocketAddr, trusted: &CertificateDer<'static>) -> std::io::Result<String> {
    let mut tls = connect(addr, trusted).await?;
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
    let state = support::app_state(FederationCache::from_objects([]), Authorizer::None);
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

/// Silent clients, before and after the TLS handshake, are closed after the header timeout
/// (made short here; the flag-less default is 10 s).
#[tokio::test]
async fn silent_clients_are_closed_before_and_after_the_tls_handshake() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("fc-https-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cert = write_certificate(&dir, "silent");
    let addr = free_port();
    let state = support::app_state(FederationCache::from_objects([]), Authorizer::None);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let tls = Some((dir.join("tls.crt"), dir.join("tls.key")));
    support::spawn_server(addr, tls, limits, state);
    let mut handshaken = Err(std::io::Error::other("not tried"));
    for _ in 0..100 {
        handshaken = connect(addr, &cert).await;
        if handshaken.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut handshaken = handshaken.expect("the handshake succeeds");
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let patience = Duration::from_secs(20);
    let mut buffer = Vec::new();
    let after = tokio::time::timeout(patience, handshaken.read_to_end(&mut buffer)).await;
    assert!(
        after.is_ok(),
        "closed after the handshake without a request"
    );
    let before = tokio::time::timeout(patience, silent.read_to_end(&mut buffer)).await;
    assert!(before.is_ok(), "closed without a handshake");
    let _ = std::fs::remove_dir_all(&dir);
}
