//! The HTTP(S) server under the API: connection limits, so slow and idle clients cannot hold it.
//!
//! One accept loop (axum-server) for plain HTTP and TLS, with `[server]` limits:
//! - `header_timeout`: a request head must arrive within it (hyper's header read timeout; it
//!   also closes an HTTP/1 keep-alive connection that sends no next request in that time);
//! - `idle_timeout`: a connection on which no byte moves either way for this long is closed
//!   ([`Guarded`]; this also covers HTTP/2 and clients that stop reading a response);
//! - `request_timeout`: reading the body and answering (the API's middleware, see
//!   `api::within_deadline`); rotations and the watch stream are exempt, a rotation runs to its end
//!   in its own task whatever the client does;
//! - `max_connections`: connections beyond it are closed at once (counted and logged);
//! - `max_header_bytes`: a bigger request head is answered 431 (HTTP/1) or refused (HTTP/2).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use rotor_core::config::HttpLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Applies `limits` to an axum-server's HTTP builder.
pub fn configure<A, Acc>(server: &mut axum_server::Server<A, Acc>, limits: &HttpLimits)
where
    A: axum_server::Address,
{
    let b = server.http_builder();
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout.to_std())
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
}

/// An acceptor (innermost, on the TCP stream) that caps connections and wraps each stream
/// in a [`Guarded`] with the idle timeout.
#[derive(Debug, Clone)]
pub struct Limited<A> {
    inner: A,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl<A> Limited<A> {
    pub fn new(inner: A, limits: &HttpLimits) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            idle: limits.idle_timeout.to_std(),
        }
    }
}

impl<A, I, S> Accept<I, S> for Limited<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Guarded<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "HTTP: connection cap (max_connections) reached; closing a new connection"
            );
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "connection cap reached",
            ))));
        };
        let idle = self.idle;
        let fut = self.inner.accept(stream, service);
        Box::pin(async move {
            let (s, svc) = fut.await?;
            Ok((Guarded::new(s, idle, permit), svc))
        })
    }
}

/// A connection that holds one slot of the cap and fails with `TimedOut` once no byte has
/// moved either way for `idle`.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    fn new(inner: S, idle: Duration, slot: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            _slot: slot,
        }
    }

    /// Called when an operation would wait: an error once the connection sat idle too long.
    /// The timer is moved forward lazily (only when it fires early), not on every byte.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            let due = self.last + self.idle;
            if Instant::now() >= due {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle longer than idle_timeout",
                ));
            }
            self.timer.as_mut().reset(due);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.check_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.check_idle(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.last = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                self.check_idle(cx)?;
                Poll::Pending
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                self.check_idle(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
