//! Serving the router over HTTP or HTTPS, with the certificate reloaded when its files change.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::Router;
use tracing::{info, warn};

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

/// Serves until `shutdown` resolves.
pub async fn serve(
    config: ServeConfig,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let service = app.into_make_service();
    match config.tls {
        None => {
            info!(addr = %config.addr, "serving HTTP");
            axum_server::bind(config.addr)
                .handle(handle)
                .serve(service)
                .await
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
            axum_server::bind_rustls(config.addr, tls)
                .handle(handle)
                .serve(service)
                .await
        }
    }
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
