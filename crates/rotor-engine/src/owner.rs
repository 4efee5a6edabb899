//! Lease owners: `host:pid:nonce`, so a process can tell whether a lease's holder is gone.

use std::fmt;

/// This process, as a lease owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// `host:pid:nonce` for this process.
    pub fn this_process() -> Self {
        let nonce = jiff::Timestamp::now().as_nanosecond() % 1_000_000;
        Self(format!("{}:{}:{nonce}", hostname(), std::process::id()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` (a stored owner string) is a process on this host that no longer
    /// exists. Only then may a lease be taken before it expires: a holder on another host, or
    /// one we cannot check, is presumed alive.
    pub fn holder_is_dead(&self, other: &str) -> bool {
        let mut parts = other.rsplitn(3, ':');
        let (_nonce, pid, host) = (parts.next(), parts.next(), parts.next());
        let (Some(pid), Some(host)) = (pid, host) else {
            return false;
        };
        if host != hostname() || other == self.0 {
            return false;
        }
        match pid.parse::<u32>() {
            Ok(pid) if pid == std::process::id() => false,
            Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => false,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// This machine's host name (from the kernel), `localhost` if unknown.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_holders_on_this_host_only() {
        let me = Owner::this_process();
        assert!(!me.holder_is_dead(me.as_str()));
        let host = hostname();
        // PIDs are below 2^22 on Linux; this one cannot exist.
        assert!(me.holder_is_dead(&format!("{host}:4294967:1")));
        assert!(!me.holder_is_dead("elsewhere:4294967:1"));
        assert!(!me.holder_is_dead("garbage"));
    }
}
