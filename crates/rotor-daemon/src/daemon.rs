//! [`Daemon`]: wires the engine, the watch hub, metrics, notifications, the scheduler and the
//! HTTP server together, and owns every background task (a `TaskTracker` that sees shutdown).

use std::net::SocketAddr;
use std::sync::Arc;

use rotor_engine::{Clock, Engine};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiState, ReadAudit, Shared, ValueCache};
use crate::api_runtime::ApiRuntime;
use crate::auth::Tokens;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::scheduler::{Scheduler, SchedulerHandle, SchedulerOptions};
use crate::server;
use crate::watch::WatchHub;
use crate::{DaemonError, Result};

/// How `rotor serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Overrides `config.server.listen` (`--listen`); port 0 picks a free port.
    pub listen: Option<SocketAddr>,
    /// Run the scheduler (`None`: serve the API only, e.g. `rotor serve --no-scheduler`).
    pub scheduler: Option<SchedulerOptions>,
    /// How often the watch stream polls the store while anyone watches.
    pub watch_poll: std::time::Duration,
    /// How long shutdown waits for in-flight requests, jobs and notifications.
    pub drain: std::time::Duration,
    /// How long a value response may be served from memory (0 disables the cache); see
    /// `api::value_cache` for what this trades.
    pub value_cache_ttl: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            listen: None,
            scheduler: Some(SchedulerOptions::default()),
            watch_poll: std::time::Duration::from_millis(200),
            drain: std::time::Duration::from_secs(30),
            value_cache_ttl: std::time::Duration::from_secs(1),
        }
    }
}

/// Runs `server` with `app` on the API's runtime (`$api`, a `Handle`) until `shutdown`, then
/// drains for at most `drain`. (A macro: the acceptor types differ and axum-server's bounds
/// name hyper's body type.)
macro_rules! spawn_server {
    ($tasks:expr, $api:expr, $server:expr, $app:expr, $shutdown:expr, $drain:expr, $what:expr) => {{
        let handle = axum_server::Handle::new();
        let server = $server.handle(handle.clone());
        let token = $shutdown.clone();
        let drain = $drain;
        $tasks.spawn(async move {
            token.cancelled().await;
            handle.graceful_shutdown(Some(drain));
        });
        let app = $app;
        $tasks.spawn_on(
            async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "the {} server stopped", $what);
                }
            },
            $api,
        );
    }};
}

/// The daemon before it starts.
#[derive(Debug)]
pub struct Daemon {
    engine: Arc<Engine>,
    clock: Arc<dyn Clock>,
    hub: WatchHub,
    notifier: Notifier,
    metrics: Arc<Metrics>,
}

impl Daemon {
    /// Wraps `engine` (built as the CLI builds it: `Context::open`), registering the watch hub
    /// as a delivery target. `clock` must be the engine's clock. Webhooks come from
    /// `config.notify`.
    pub fn new(engine: Engine, clock: Arc<dyn Clock>) -> Self {
        let hub = WatchHub::new(engine.store().clone());
        let notifier = Notifier::new(
            engine.config().notify.clone(),
            Some(engine.store().clone()),
            engine.actor(),
        );
        let engine = Arc::new(engine.with_delivery(Arc::new(hub.clone())));
        Self {
            engine,
            clock,
            hub,
            notifier,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Replaces the notifier (tests: a sink, a faster retry policy).
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub fn hub(&self) -> &WatchHub {
        &self.hub
    }

    /// Binds the listener, starts the scheduler, the watch poller and the HTTP server, and
    /// returns at once.
    pub async fn start(self, opts: ServeOptions) -> Result<Running> {
        let config = self.engine.config();
        let listen = opts.listen.unwrap_or(config.server.listen);
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let api_runtime = ApiRuntime::start()?;
        let scheduler = SchedulerHandle::default();
        let cache = ValueCache::new(opts.value_cache_ttl);
        let reads = ReadAudit::new(self.engine.clone());
        tasks.spawn(reads.clone().run(shutdown.clone()));
        {
            let cache = cache.clone();
            self.hub
                .on_event(move |ev| cache.invalidate(ev.secret.as_str()));
        }
        if let Err(e) = self.hub.prime().await {
            tracing::warn!(error = %e, "watch: cannot read the store at start-up");
        }
        let shared = Arc::new(Shared {
            engine: self.engine.clone(),
            clock: self.clock.clone(),
            tokens: Tokens::new(&config.tokens),
            hub: self.hub.clone(),
            metrics: self.metrics.clone(),
            notifier: self.notifier.clone(),
            scheduler: scheduler.clone(),
            shutdown: shutdown.clone(),
            cache,
            reads: reads.clone(),
            work: tokio::runtime::Handle::current(),
        });
        if shared.tokens.is_empty() {
            tracing::warn!(
                "no [[tokens]] in the config: every /v1 endpoint answers 401; make one with `rotor token new`"
            );
        }
        let limits = config.server.limits.clone();
        let metrics_app = config
            .server
            .metrics_listen
            .map(|_| api::metrics_router(ApiState(shared.clone())));
        let app = api::router(ApiState(shared));

        let bind = |listen: SocketAddr| -> Result<(std::net::TcpListener, SocketAddr)> {
            let l = std::net::TcpListener::bind(listen)
                .map_err(|e| DaemonError::io(format!("cannot listen on {listen}"), e))?;
            l.set_nonblocking(true)
                .map_err(|e| DaemonError::io("cannot set the listener non-blocking", e))?;
            let addr = l
                .local_addr()
                .map_err(|e| DaemonError::io("cannot read the listen address", e))?;
            Ok((l, addr))
        };
        let (std_listener, addr) = bind(listen)?;
        let metrics_listener = match config.server.metrics_listen {
            Some(listen) => Some(bind(listen)?),
            None => None,
        };
        let rustls = match &config.server.tls {
            Some(tls) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                    .await
                    .map_err(|e| {
                        DaemonError::io(
                            format!(
                                "cannot load TLS certificate {} and key {}",
                                tls.cert.display(),
                                tls.key.display()
                            ),
                            e,
                        )
                    })?,
            ),
            None => None,
        };
        // The listeners are registered with the API's runtime (see `api_runtime`), and their
        // servers run there. No await while the guard is held.
        let metrics_addr = {
            let api = api_runtime.handle();
            let _on_api = api.enter();
            let metrics_addr = metrics_listener.as_ref().map(|(_, a)| *a);
            if let (Some((l, a)), Some(app)) = (metrics_listener, metrics_app) {
                let mut server = axum_server::from_tcp(l)
                    .map_err(|e| DaemonError::io("cannot serve metrics", e))?
                    .acceptor(server::Limited::new(
                        axum_server::accept::DefaultAcceptor::new(),
                        &limits,
                    ));
                server::configure(&mut server, &limits);
                spawn_server!(tasks, api, server, app, shutdown, opts.drain, "metrics");
                tracing::info!(addr = %a, "rotor serve: metrics listening (no token needed)");
            }
            let plain = axum_server::accept::DefaultAcceptor::new();
            match rustls {
                Some(rustls) => {
                    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(rustls)
                        .acceptor(server::Limited::new(plain, &limits));
                    let mut server = axum_server::from_tcp(std_listener)
                        .map_err(|e| DaemonError::io("cannot serve TLS", e))?
                        .acceptor(acceptor);
                    server::configure(&mut server, &limits);
                    spawn_server!(tasks, api, server, app, shutdown, opts.drain, "HTTPS");
                }
                None => {
                    let mut server = axum_server::from_tcp(std_listener)
                        .map_err(|e| DaemonError::io("cannot serve HTTP", e))?
                        .acceptor(server::Limited::new(plain, &limits));
                    server::configure(&mut server, &limits);
                    spawn_server!(tasks, api, server, app, shutdown, opts.drain, "HTTP");
                }
            }
            metrics_addr
        };
        tracing::info!(%addr, tls = config.server.tls.is_some(), "rotor serve: listening");

        tasks.spawn(
            self.hub
                .clone()
                .run_poller(opts.watch_poll, shutdown.clone()),
        );
        if let Some(sopts) = opts.scheduler.clone() {
            let sched = Scheduler::new(
                self.engine.clone(),
                self.clock.clone(),
                self.notifier.clone(),
                self.metrics.clone(),
                sopts,
                scheduler.clone(),
            );
            tasks.spawn(sched.run(shutdown.clone()));
        }
        tasks.close();
        Ok(Running {
            addr,
            metrics_addr,
            reads,
            shutdown,
            tasks,
            scheduler,
            notifier: self.notifier,
            engine: self.engine,
            drain: opts.drain,
            _api_runtime: api_runtime,
        })
    }
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    reads: ReadAudit,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    scheduler: SchedulerHandle,
    notifier: Notifier,
    engine: Arc<Engine>,
    drain: std::time::Duration,
    /// Dropped last, after `stop` has drained what runs on it.
    _api_runtime: ApiRuntime,
}

impl Running {
    /// Where it listens (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the separate metrics listener listens, when `metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://addr` (or `https://` with TLS configured).
    pub fn url(&self) -> String {
        let scheme = if self.engine.config().server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.scheduler
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// A token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops: no new requests or jobs, waits for running ones (bounded), drains notifications.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if tokio::time::timeout(self.drain, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown: some tasks did not stop in time");
        }
        // Reads answered while the server drained are counted after the flusher's last run.
        self.reads.flush().await;
        self.notifier.drain(self.drain).await;
    }

    /// Runs until SIGINT or SIGTERM, then stops.
    pub async fn until_signal(self) {
        let term = async {
            #[cfg(unix)]
            {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            }
            #[cfg(not(unix))]
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
            _ = self.shutdown.cancelled() => {}
        }
        tracing::info!("rotor serve: stopping");
        self.stop().await;
    }
}

/// `rotor serve`: runs the daemon over `engine` until SIGINT/SIGTERM.
pub async fn serve(engine: Engine, clock: Arc<dyn Clock>, opts: ServeOptions) -> Result<()> {
    let running = Daemon::new(engine, clock).start(opts).await?;
    running.until_signal().await;
    Ok(())
}
