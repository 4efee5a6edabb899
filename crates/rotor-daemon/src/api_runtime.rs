//! The thread the HTTP listeners run on: one current-thread tokio runtime of their own, apart
//! from the multi-thread runtime that runs the scheduler, rotations and notifications.
//!
//! Why a thread of its own:
//! - **Isolation.** A flood of API requests cannot delay a lease renewal, a step of a running
//!   rotation or a retire, and a fleet of rotations (SCRAM derivations, key generation, sealing)
//!   cannot delay the answer to a value read. Rotations started through the API run on the
//!   rotation runtime (`Shared::work`), not here.
//! - **Speed.** The read path is short (token hash, scope check, cached body, audit count);
//!   most of its cost was the multi-thread scheduler handing sockets between workers. On one
//!   thread with no hand-offs the value read rate rose by about a fifth in `scripts/bench-http`
//!   (2 cores, wrk on the same machine), with the same checks and audit on.
//!
//! What it costs: the API uses at most one core. The API's work per request is small next to
//! what one core does (the bench answers about 100k reads a second on it); `/metrics` over
//! 10,000 secrets takes a few milliseconds of it.
//!
//! Lifetime: the runtime is driven until [`ApiRuntime`] is dropped, which is after the daemon
//! has drained (`Running::stop`), because tasks the handlers start here (a notification, the
//! driver of a store connection opened by a request) must run to their end. Dropping the
//! runtime then cancels whatever is left.

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::{DaemonError, Result};

/// The API's runtime thread; released (its runtime shut down) when dropped.
#[derive(Debug)]
pub(crate) struct ApiRuntime {
    handle: Handle,
    release: CancellationToken,
}

impl ApiRuntime {
    /// Starts the thread `rotor-api` with its runtime.
    pub(crate) fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DaemonError::io("cannot start the API's runtime", e))?;
        let handle = runtime.handle().clone();
        let release = CancellationToken::new();
        let until = release.clone();
        std::thread::Builder::new()
            .name("rotor-api".into())
            .spawn(move || {
                runtime.block_on(until.cancelled());
                // Dropped here, off any async context: what is left is cancelled.
                drop(runtime);
            })
            .map_err(|e| DaemonError::io("cannot start the API's thread", e))?;
        Ok(Self { handle, release })
    }

    /// Where the listeners are registered and their tasks spawned.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        self.release.cancel();
    }
}
