//! The server's version, as `INFO server` reports it.

/// The `redis_version` line of `INFO server`.
pub(crate) fn parse_redis_version(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
}

/// The major version of a `redis_version` string.
pub(crate) fn major_version(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}
