//! The controller's HTTP API as a source (`--server`): one GET of the progress route, or its
//! event stream for `--watch`, reconnecting when a stream breaks before the job ends (a
//! controller replica restarting, a proxy timing out or answering 503 meanwhile).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use federation_api::wire::{DeletedJob, ErrorBody, HEARTBEAT};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::time::{Instant, sleep_until, timeout};

use super::model::{self, Update};
use super::render::printable;
use super::sse::SseParser;
use super::{Error, Token};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// For the answer's headers, and for the whole answer of a one-shot GET.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Three missed heartbeats: the stream is dead even if the socket is not closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3 * HEARTBEAT.as_secs());
/// Failed reconnections in a row before the watch gives up (backoff 1, 2, 4, 8, 16, 16... s).
const RECONNECTS: u32 = 8;
/// The most a one-shot answer, or a line or an event of the stream, may be.
const MAX_ANSWER_BYTES: usize = 4 << 20;

#[derive(Clone)]
pub struct HttpSource {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// The URL as given, without a trailing `/`.
    base: String,
    /// `Bearer <token>`, marked sensitive so no debug output shows it.
    authorization: Option<HeaderValue>,
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The system's roots (for https only), and those of `ca_file`.
fn tls_config(https: bool, ca_file: Option<&Path>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    }
    if let Some(path) = ca_file {
        let bad = |reason: String| Error::CertificateAuthority {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no PEM certificate in it".to_string()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidServer(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl HttpSource {
    pub fn new(url: &str, token: Option<&Token>, ca_file: Option<&Path>) -> Result<Self, Error> {
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::InvalidServer(format!("{url:?} is not a URL: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(Error::InvalidServer(format!(
                    "{url:?} must start with http:// or https://"
                )));
            }
        };
        // Not echoed: the URL would carry a password.
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(Error::InvalidServer(
                "credentials in the URL are not supported; use --token".to_string(),
            ));
        }
        if uri.query().is_some() {
            return Err(Error::InvalidServer(format!(
                "{url:?}: give the server's base URL, without a query"
            )));
        }
        let authorization = token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
                    .map_err(|_| Error::InvalidToken("it has characters a header cannot carry"))?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(https, ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpSource {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: url.trim_end_matches('/').to_string(),
            authorization,
        })
    }

    fn url(&self, fleet: &str, watch: bool) -> String {
        let query = if watch { "?watch=true" } else { "" };
        format!(
            "{}/v1/clustergroups/{fleet}/federations/progress{query}",
            self.base
        )
    }

    /// The answer's headers when it is a 2xx; the route's error otherwise.
    async fn get(&self, fleet: &str, watch: bool) -> Result<Response<Incoming>, Error> {
        let url = self.url(fleet, watch);
        let unreachable = |reason: String| Error::Unreachable {
            url: url.clone(),
            reason,
        };
        let accept = if watch {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut request = Request::get(url.as_str())
            .header(header::ACCEPT, accept)
            .header(
                header::USER_AGENT,
                concat!("federation-controller-progress/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| Error::InvalidServer(e.to_string()))?;
        let response = timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {}s", ANSWER_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_body(response.into_body(), 64 << 10)
            .await
            .unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => (error.error_code, error.error_msg),
            // A proxy's page (often HTML over several lines), as one line.
            Err(_) => (
                status.canonical_reason().unwrap_or("error").to_string(),
                String::from_utf8_lossy(&body)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(300)
                    .collect(),
            ),
        };
        // Whoever answered wrote these; they are printed on the user's terminal.
        Err(Error::Refused {
            url,
            status: status.as_u16(),
            code: printable(&code).into_owned(),
            message: printable(&message).into_owned(),
        })
    }

    /// The job now (`GET .../progress`).
    pub async fn progress(&self, fleet: &str) -> Result<Update, Error> {
        let response = self.get(fleet, false).await?;
        let body = timeout(
            ANSWER_TIMEOUT,
            read_body(response.into_body(), MAX_ANSWER_BYTES),
        )
        .await
        .map_err(|_| Error::Unreachable {
            url: self.url(fleet, false),
            reason: "the answer did not complete in time".to_string(),
        })??;
        model::from_wire(fleet, &String::from_utf8_lossy(&body))
    }

    /// The job now and at every change (`GET .../progress?watch=true`).
    pub fn watch(&self, fleet: &str) -> HttpWatch {
        HttpWatch {
            server: self.clone(),
            fleet: fleet.to_string(),
            body: None,
            parser: SseParser::new(MAX_ANSWER_BYTES),
            connected_once: false,
            failures: 0,
            retry_at: None,
        }
    }
}

/// An answer that says the controller is away for a moment rather than that the watch is
/// wrong: no answer at all, a proxy's 502/503/504 while a replica restarts, any other 5xx, or a
/// 429. Once the stream has been seen, these are retried like a lost connection; 401, 403 and
/// 404 (and any other 4xx) stay final, as retrying cannot change them.
fn passing(error: &Error) -> bool {
    match error {
        Error::Unreachable { .. } => true,
        Error::Refused { status, .. } => {
            *status == StatusCode::TOO_MANY_REQUESTS.as_u16()
                || StatusCode::from_u16(*status).is_ok_and(|s| s.is_server_error())
        }
        _ => false,
    }
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Error> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| Error::BadAnswer {
            detail: format!("reading the answer: {e}"),
        })
}

/// A live event stream of one fleet's job. Every step of [`HttpWatch::next`] keeps its
/// state in the struct, so a caller may drop a pending call and make a new one.
pub struct HttpWatch {
    server: HttpSource,
    fleet: String,
    body: Option<Incoming>,
    parser: SseParser,
    /// Until the first connection, failing to connect (or a 5xx) is an error at once: a wrong
    /// URL should not look like a restarting controller.
    connected_once: bool,
    /// Lost connections since the last event.
    failures: u32,
    retry_at: Option<Instant>,
}

impl HttpWatch {
    /// The next state of the job; `Deleted` when the enablement is gone.
    pub async fn next(&mut self) -> Result<Update, Error> {
        loop {
            if let Some(event) = self.parser.next_event() {
                match event.name.as_str() {
                    "progress" => {
                        self.failures = 0;
                        return model::from_wire(&self.fleet, &event.data);
                    }
                    "deleted" => {
                        let name = serde_json::from_str::<DeletedJob>(&event.data)
                            .ok()
                            .and_then(|gone| gone.resource_name);
                        return Err(Error::Deleted {
                            enablement: match name {
                                Some(name) => format!("FederationEnablement {name}"),
                                None => format!("the FederationEnablement of {:?}", self.fleet),
                            },
                        });
                    }
                    _ => continue,
                }
            }
            let Some(body) = self.body.as_mut() else {
                self.connect().await?;
                continue;
            };
            let lost = match timeout(IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => match self.parser.push(&data) {
                        Ok(()) => continue,
                        Err(too_long) => too_long.to_string(),
                    },
                    Err(_) => continue,
                },
                Ok(Some(Err(e))) => error_chain(&e),
                Ok(None) => "the server ended the stream before the job ended".to_string(),
                Err(_) => format!("nothing received for {}s", IDLE_TIMEOUT.as_secs()),
            };
            self.lost(lost)?;
        }
    }

    /// Schedules a reconnection, or gives up after too many in a row.
    fn lost(&mut self, reason: String) -> Result<(), Error> {
        self.body = None;
        self.parser = SseParser::new(MAX_ANSWER_BYTES);
        self.failures += 1;
        if self.failures > RECONNECTS {
            return Err(Error::ConnectionLost {
                url: self.server.url(&self.fleet, true),
                reason,
            });
        }
        let backoff = Duration::from_secs(1 << (self.failures - 1).min(4));
        self.retry_at = Some(Instant::now() + backoff);
        Ok(())
    }

    async fn connect(&mut self) -> Result<(), Error> {
        if let Some(at) = self.retry_at {
            sleep_until(at).await;
        }
        match self.server.get(&self.fleet, true).await {
            Ok(response) => {
                let event_stream = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/event-stream"));
                if response.status() != StatusCode::OK || !event_stream {
                    return Err(Error::BadAnswer {
                        detail: format!(
                            "{} answered {} without an event stream; is it a federation-controller?",
                            self.server.url(&self.fleet, true),
                            response.status()
                        ),
                    });
                }
                self.body = Some(response.into_body());
                self.connected_once = true;
                self.retry_at = None;
                Ok(())
            }
            Err(error) if self.connected_once && passing(&error) => self.lost(error.to_string()),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> Error {
        Error::Refused {
            url: "http://controller/v1/clustergroups/f/federations/progress?watch=true".into(),
            status,
            code: "x".into(),
            message: "x".into(),
        }
    }

    #[test]
    fn a_controller_away_for_a_moment_is_retried_but_a_refusal_is_not() {
        for status in [500, 502, 503, 504, 429] {
            assert!(passing(&refused(status)), "{status}");
        }
        for status in [400, 401, 403, 404, 410] {
            assert!(!passing(&refused(status)), "{status}");
        }
        let unreachable = Error::Unreachable {
            url: "u".into(),
            reason: "r".into(),
        };
        assert!(passing(&unreachable));
        assert!(!passing(&Error::BadAnswer { detail: "d".into() }));
    }
}
