//! What one client may hold of the listener: a slot among `--http-max-connections` (past the cap
//! a new connection is closed at once, not queued), and a deadline for its first request.
//!
//! hyper's header-read timeout covers a request's headers once hyper reads them as HTTP/1. It
//! does not cover what comes before: the TLS handshake past its own timeout, or the bytes the
//! listener reads to tell HTTP/1 from HTTP/2, where a client that sends nothing waits forever.
//! So a connection also has until the same deadline to make its first request, however it is
//! spoken; after that, hyper's timer covers the headers of each later request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// The bounds of [`super::serve_with_limits`].
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections open at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// Time a connection has to send complete request headers.
    pub header_read_timeout: Duration,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// An axum-server acceptor that admits a connection only with a free slot, and gives it a
/// deadline for its first request. Innermost: TLS, when on, runs over what it admits.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    first_request_within: Duration,
}

impl Admission {
    pub fn new(limits: ConnectionLimits) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(
                limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            first_request_within: limits.header_read_timeout,
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for Admission {
    type Stream = Admitted<I>;
    type Service = FirstRequest<S>;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            // Dropping the stream closes the connection.
            return std::future::ready(Err(io::Error::other("too many open connections")));
        };
        let asked = Arc::new(AtomicBool::new(false));
        std::future::ready(Ok((
            Admitted {
                inner: stream,
                _slot: slot,
                asked: asked.clone(),
                deadline: Some(Box::pin(tokio::time::sleep(self.first_request_within))),
            },
            FirstRequest {
                inner: service,
                asked,
            },
        )))
    }
}

/// An admitted connection: holds its slot until it is dropped, and fails its reads once the
/// deadline has passed without a request.
pub struct Admitted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
    asked: Arc<AtomicBool>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Admitted<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if read.is_ready() {
            return read;
        }
        if this.asked.load(Ordering::Relaxed) {
            this.deadline = None;
        } else if let Some(deadline) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within the header-read timeout",
            )));
        }
        Poll::Pending
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Admitted<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connection's service: tells its stream that a request has arrived.
#[derive(Clone)]
pub struct FirstRequest<S> {
    inner: S,
    asked: Arc<AtomicBool>,
}

impl<S, R> tower::Service<R> for FirstRequest<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.call(request)
    }
}
