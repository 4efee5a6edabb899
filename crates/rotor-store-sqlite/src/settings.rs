//! Connection settings: when commits reach the disk ([`Synchronous`]) and how long a write
//! waits for another writer's lock.

use std::time::Duration;

/// When commits reach the disk (SQLite's `synchronous`, always in WAL mode).
///
/// Measured with `examples/store_bench.rs` (release, ext4 on a virtio disk, 2 busy cores;
/// one rotation = 5 `apply` commits, calls through tokio's blocking pool; ranges over runs):
/// `Normal` 1,100–1,770 rotations/s, `Hybrid` 640–860/s (one fsync per rotation), `Full`
/// 75–160/s (every commit waits 1–2.5 ms for fsync). `Hybrid` is the default: it meets the
/// 500 rotations/s target while keeping every new value durable against power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before `apply` returns: survives power loss and OS crashes.
    Full,
    /// Commits survive a crash or SIGKILL of the process, but the last commits before a
    /// power loss or OS crash may be lost (the database stays consistent, at an earlier
    /// commit). fsync happens only at checkpoints.
    Normal,
    /// The default: `Full` for every change that inserts a version (a new secret value),
    /// `Normal` for the rest. WHY: a new value may be set on a target right after its
    /// change commits, so losing that commit to a power cut would leave a credential rotor
    /// does not know; the other commits (step markers, stage moves, leases) record work the
    /// engine redoes if they are lost, because every step is idempotent. A `Full` commit
    /// also makes every earlier `Normal` commit durable (they precede it in the WAL).
    #[default]
    Hybrid,
}

impl Synchronous {
    /// The connection's standing setting (`Hybrid` raises it per commit).
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal | Synchronous::Hybrid => "NORMAL",
        }
    }
}

/// When the whole file's integrity is checked (`PRAGMA quick_check`, which reads every page:
/// about 40 ms for a 36 MB store of 10,000 secrets, growing with the audit log).
///
/// Either way nothing is written to a store that failed the check. A command that only
/// reads never needs it: SQLite checks each page it reads (a damaged one answers
/// `Corrupt`), and every value and audit record it returns is authenticated (AES-GCM, the
/// audit MACs), so damage in a page it did not read cannot change its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// At open, before anything else: a damaged store is refused at once. For the daemon,
    /// which should say so at start-up rather than at its first rotation.
    #[default]
    OnOpen,
    /// Before the handle's first write (a change, a lease, a migration, an import or a
    /// rewrap), once: so a read-only command (`rotor status`, `get`, `history`) does not
    /// read the whole file first.
    BeforeFirstWrite,
}

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub synchronous: Synchronous,
    /// How long a write waits for another writer's lock before failing with
    /// [`rotor_core::StoreError::Locked`].
    pub busy_timeout: Duration,
    pub integrity: IntegrityCheck,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::default(),
            busy_timeout: Duration::from_secs(5),
            integrity: IntegrityCheck::default(),
        }
    }
}
