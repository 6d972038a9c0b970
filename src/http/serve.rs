//! Serving the router over HTTP or HTTPS, with the certificate reloaded when its files change,
//! within the bounds of `connections.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tracing::{info, warn};

use super::connections::{Admission, ConnectionLimits};

/// Where and how to serve.
pub struct ServeConfig {
    pub addr: SocketAddr,
    /// HTTPS with this certificate and key, reloaded when the files change.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often the certificate files are checked for changes.
    pub reload_every: Duration,
}

/// The default of [`ServeConfig::reload_every`].
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, with the default [`ConnectionLimits`].
pub async fn serve(
    config: ServeConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(config, ConnectionLimits::default(), app, shutdown).await
}

/// Serves until `shutdown` resolves. Handlers see the client's address as
/// `ConnectInfo<SocketAddr>`, taken from the accepted connection.
pub async fn serve_with_limits(
    config: ServeConfig,
    limits: ConnectionLimits,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let admission = Admission::new(limits);
    match config.tls {
        None => {
            info!(addr = %config.addr, "serving HTTP");
            let mut server = axum_server::bind(config.addr)
                .acceptor(admission)
                .handle(handle);
            time_out_headers(server.http_builder(), limits);
            server.serve(service).await
        }
        Some((cert, key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key).await?;
            tokio::spawn(reload_on_change(
                tls.clone(),
                cert,
                key,
                config.reload_every,
            ));
            info!(addr = %config.addr, "serving HTTPS");
            let mut server = axum_server::bind_rustls(config.addr, tls)
                .map(|tls| {
                    tls.handshake_timeout(limits.header_read_timeout)
                        .acceptor(admission)
                })
                .handle(handle);
            time_out_headers(server.http_builder(), limits);
            server.serve(service).await
        }
    }
}

/// hyper closes an HTTP/1 connection whose request headers take longer than the limit.
fn time_out_headers(builder: &mut Builder<TokioExecutor>, limits: ConnectionLimits) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
}

/// Polls the files' modification times and reloads the certificate when either changes.
async fn reload_on_change(
    tls: axum_server::tls_rustls::RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
) {
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut seen: (Option<SystemTime>, Option<SystemTime>) = (modified(&cert), modified(&key));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = (modified(&cert), modified(&key));
        if now == seen {
            continue;
        }
        match tls.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                info!("reloaded the HTTPS certificate");
                seen = now;
            }
            // Half-written files: try again at the next tick.
            Err(error) => warn!(%error, "could not reload the HTTPS certificate"),
        }
    }
}
