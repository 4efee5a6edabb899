//! Checks across secrets: names that collide, admin credentials that cannot work, and two
//! secrets that would rotate one credential.
//!
//! Each of these passes a per-secret parse and then makes every rotation fail (or fight) at
//! rotate time, so `rotor check` refuses them. The admin checks read the raw TOML, so a secret
//! whose own section has errors (an unset `${VAR}`, a bad grace) still has its admin checked,
//! and an admin whose section has errors is not reported as missing.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::config::{KindSettings, PgStrategy, SecretSpec};

impl Walker<'_> {
    pub(super) fn cross_checks(&mut self, secrets: &[SecretSpec], root: &toml_edit::Table) {
        let table = root.get("secrets").and_then(Item::as_table_like);
        let span_of = |name: &str| -> Range<usize> {
            table
                .and_then(|t| t.key(name).and_then(|k| k.span()))
                .unwrap_or(0..0)
        };
        self.case_collisions(secrets, &span_of);
        if let Some(table) = table {
            self.admins_exist(table, &span_of);
        }
        self.admins_on_the_same_server(secrets, &span_of);
        self.one_secret_per_credential(secrets, &span_of);
        self.secret = None;
    }

    /// Names that differ only in case collide in case-insensitive places (file systems, some
    /// secret managers): refuse them as duplicates.
    fn case_collisions(&mut self, secrets: &[SecretSpec], span_of: &dyn Fn(&str) -> Range<usize>) {
        let mut seen: HashMap<String, &str> = HashMap::with_capacity(secrets.len());
        for a in secrets {
            let folded = a.name.as_str().to_ascii_lowercase();
            if let Some(b) = seen.get(&folded) {
                self.secret = Some(a.name.to_string());
                self.error(
                    span_of(a.name.as_str()),
                    format!("duplicate secret name (same as `{b}` but for case)"),
                    Some("give each secret a distinct name".into()),
                );
            } else {
                seen.insert(folded, a.name.as_str());
            }
        }
    }

    /// `admin` names another declared secret of the same kind.
    fn admins_exist(&mut self, table: &dyn TableLike, span_of: &dyn Fn(&str) -> Range<usize>) {
        fn kind_of(t: &dyn TableLike) -> Option<&str> {
            t.get("kind").and_then(Item::as_str)
        }
        for (name, item) in table.iter() {
            let Some(t) = item.as_table_like() else {
                continue;
            };
            let Some(kind) = kind_of(t).filter(|k| *k == "postgres" || *k == "redis") else {
                continue;
            };
            // A non-string admin is reported by the secret's own parse; a `${VAR}` in it is
            // only known after interpolation, which reports its own errors.
            let Some(admin) = t.get("admin").and_then(Item::as_str) else {
                continue;
            };
            if admin.contains('$') {
                continue;
            }
            self.secret = Some(name.to_owned());
            if admin == name {
                self.error(
                    span_of(name),
                    format!("`{name}` is its own admin"),
                    Some(format!(
                        "remove `admin` (a {kind} credential may change its own password) or name the managed secret of an admin credential"
                    )),
                );
                continue;
            }
            // The admin's own table, looked up where it is (no map of every secret's kind).
            match table
                .get(admin)
                .map(|item| item.as_table_like().and_then(kind_of))
            {
                None => self.error(
                    span_of(name),
                    format!("admin secret `{admin}` is not in the inventory"),
                    Some(format!(
                        "add a [secrets.{admin}] section of kind `{kind}`, or fix the name"
                    )),
                ),
                Some(Some(k)) if k != kind => self.error(
                    span_of(name),
                    format!("admin secret `{admin}` is of kind `{k}`, not `{kind}`"),
                    Some(format!("point admin at a `{kind}` secret")),
                ),
                // Declared (its own problems, if any, are reported with it).
                Some(_) => {}
            }
        }
    }

    /// An admin credential is used on the secret's own server: an admin of another server
    /// would be refused there at every rotation.
    fn admins_on_the_same_server(
        &mut self,
        secrets: &[SecretSpec],
        span_of: &dyn Fn(&str) -> Range<usize>,
    ) {
        if !secrets.iter().any(|s| admin_of(s).is_some()) {
            return;
        }
        let by_name: HashMap<&str, &SecretSpec> =
            secrets.iter().map(|s| (s.name.as_str(), s)).collect();
        for s in secrets {
            let Some(target) = Target::of(s) else {
                continue;
            };
            let Some(admin) = admin_of(s).and_then(|a| by_name.get(a.as_str())) else {
                continue;
            };
            let Some(admin_target) = Target::of(admin) else {
                continue;
            };
            if admin_target.kind == target.kind && admin_target.server != target.server {
                self.secret = Some(s.name.to_string());
                self.error(
                    span_of(s.name.as_str()),
                    format!(
                        "admin secret `{}` is a credential on {}, but this secret's target is {}",
                        admin.name, admin_target.server, target.server
                    ),
                    Some(
                        "point admin at a secret whose credential lives on the same server, or fix the url"
                            .into(),
                    ),
                );
            }
        }
    }

    /// Two secrets rotating one credential would each hold a password the other just
    /// replaced: the second rotation locks out every consumer of the first.
    fn one_secret_per_credential(
        &mut self,
        secrets: &[SecretSpec],
        span_of: &dyn Fn(&str) -> Range<usize>,
    ) {
        let mut owners: HashMap<(&'static str, String, String), &str> = HashMap::new();
        for s in secrets {
            let Some(target) = Target::of(s) else {
                continue;
            };
            for login in &target.logins {
                let key = (target.kind, target.server.clone(), login.clone());
                match owners.get(&key) {
                    Some(first) if *first != s.name.as_str() => {
                        self.secret = Some(s.name.to_string());
                        self.error(
                            span_of(s.name.as_str()),
                            format!(
                                "secret `{}` rotates {} `{login}` on {}, as `{first}` does",
                                s.name,
                                target.noun(),
                                target.server
                            ),
                            Some(
                                "keep one secret per credential: remove one of them, or point it at another role or user"
                                    .into(),
                            ),
                        );
                        break;
                    }
                    Some(_) => {}
                    None => {
                        owners.insert(key, s.name.as_str());
                    }
                }
            }
        }
    }
}

fn admin_of(s: &SecretSpec) -> Option<&crate::SecretName> {
    match &s.settings {
        KindSettings::Postgres(p) => p.admin.as_ref(),
        KindSettings::Redis(r) => r.admin.as_ref(),
        _ => None,
    }
}

/// The credential a secret rotates: which server, and which login names.
struct Target {
    kind: &'static str,
    /// `host:port`, loopback names folded into `127.0.0.1`.
    server: String,
    logins: Vec<String>,
}

impl Target {
    fn of(s: &SecretSpec) -> Option<Target> {
        match &s.settings {
            KindSettings::Postgres(p) => Some(Target {
                kind: "postgres",
                server: server_of(&p.url, 5432)?,
                logins: match p.strategy {
                    PgStrategy::Single => vec![p.role.clone()],
                    PgStrategy::Alternating => vec![
                        p.role.clone(),
                        format!("{}_a", p.role),
                        format!("{}_b", p.role),
                    ],
                },
            }),
            KindSettings::Redis(r) => Some(Target {
                kind: "redis",
                server: server_of(&r.url, 6379)?,
                logins: vec![r.user.clone()],
            }),
            _ => None,
        }
    }

    fn noun(&self) -> &'static str {
        match self.kind {
            "postgres" => "postgres role",
            _ => "redis user",
        }
    }
}

/// `host:port` of `scheme://[user@]host[:port][/...]`, or `None` when the URL has no host
/// (a socket directory in the query, say): such secrets are not compared.
fn server_of(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok()?,
        None => default_port,
    };
    let host = host.to_ascii_lowercase();
    let host = match host.as_str() {
        "localhost" | "::1" | "127.0.0.1" => "127.0.0.1".to_owned(),
        _ => host,
    };
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::server_of;

    #[test]
    fn servers_fold_loopback_and_default_ports() {
        let cases = [
            ("postgres://127.0.0.1:5432/app", Some("127.0.0.1:5432")),
            ("postgres://localhost/app", Some("127.0.0.1:5432")),
            ("postgres://rotor@LOCALHOST:5433", Some("127.0.0.1:5433")),
            ("redis://[::1]:6380", Some("127.0.0.1:6380")),
            ("redis://cache.internal", Some("cache.internal:6379")),
            ("postgres:///app?host=/run/postgresql", None),
            ("not a url", None),
        ];
        for (url, want) in cases {
            let default = if url.starts_with("redis") { 6379 } else { 5432 };
            assert_eq!(server_of(url, default).as_deref(), want, "{url}");
        }
    }
}
