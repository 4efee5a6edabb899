//! `probe` of the postgres rotator: what a rotation will need, checked as the credential
//! that will run `ALTER ROLE`, changing nothing.

use std::sync::Arc;

use rotor_core::RotatorError;
use rotor_core::config::PgStrategy;
use rotor_core::rotator::StepContext;
use tokio_postgres::Client;

use crate::conn::PgFailure;
use crate::{Call, PostgresRotator, Who, conn, login_roles};

/// One role as the probe sees it.
struct RoleRow {
    name: String,
    superuser: bool,
    member_of_group: bool,
}

/// What the actor's session reports.
struct Seen {
    actor: String,
    actor_super: bool,
    actor_createrole: bool,
    roles: Vec<RoleRow>,
}

impl PostgresRotator {
    /// Reachable, the actor logs in, it may alter the roles (SUPERUSER, or CREATEROLE on
    /// non-superuser roles), the roles exist (alternating: both login roles are members of
    /// the group), and the current value still logs in.
    pub(crate) async fn probe_target(
        &self,
        ctx: &StepContext<'_>,
    ) -> Result<Vec<String>, RotatorError> {
        let call = Call::new(ctx.spec, "probe")?;
        let actor = call.actor(ctx)?;
        let tls_check = tls_preflight(&call, &actor.0).await?;
        let group = call.pg.role.clone();
        let wanted = match call.pg.strategy {
            PgStrategy::Single => vec![group.clone()],
            PgStrategy::Alternating => {
                let [a, b] = login_roles(&group);
                vec![group.clone(), a, b]
            }
        };
        let names = Arc::new(wanted.clone());
        let seen = call
            .admin(&self.pool, &actor, None, |c: Arc<Client>| {
                let names = Arc::clone(&names);
                let group = group.clone();
                async move {
                    let me = c
                        .query_one(
                            "SELECT current_user::text, rolsuper, rolcreaterole FROM pg_roles \
                             WHERE rolname = current_user",
                            &[],
                        )
                        .await?;
                    let rows = c
                        .query(
                            "SELECT r.rolname, r.rolsuper, \
                                    EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                                            WHERE m.member = r.oid AND g.rolname = $2) \
                             FROM pg_roles r WHERE r.rolname = ANY($1)",
                            &[&*names, &group],
                        )
                        .await?;
                    Ok(Seen {
                        actor: me.get(0),
                        actor_super: me.get(1),
                        actor_createrole: me.get(2),
                        roles: rows
                            .iter()
                            .map(|r| RoleRow {
                                name: r.get(0),
                                superuser: r.get(1),
                                member_of_group: r.get(2),
                            })
                            .collect(),
                    })
                }
            })
            .await?;
        let at = &call.target.display;
        let mut checks = vec![format!("{at} reachable; logged in as {}", seen.actor)];
        checks.extend(tls_check);
        let self_managed = matches!(actor.1, Who::Current);
        if !self_managed {
            if !seen.actor_super && !seen.actor_createrole {
                return Err(call
                    .permanent(format!(
                        "the admin role {} has neither CREATEROLE nor SUPERUSER: it cannot change passwords",
                        seen.actor
                    ))
                    .with_fix(format!(
                        "as a superuser: `ALTER ROLE {} CREATEROLE`",
                        call.ident(&seen.actor)?
                    )));
            }
            checks.push(format!(
                "admin role {} has {}",
                seen.actor,
                if seen.actor_super {
                    "SUPERUSER"
                } else {
                    "CREATEROLE"
                }
            ));
        }
        for name in &wanted {
            let Some(row) = seen.roles.iter().find(|r| &r.name == name) else {
                let fix = match call.pg.strategy {
                    PgStrategy::Single => format!(
                        "create it: `CREATE ROLE {} LOGIN` (rotor does not create single-strategy roles)",
                        call.ident(name)?
                    ),
                    PgStrategy::Alternating => call.setup_fix(),
                };
                return Err(call
                    .permanent(format!("role {name} does not exist"))
                    .with_fix(fix));
            };
            if call.pg.strategy == PgStrategy::Alternating && name != &group && !row.member_of_group
            {
                return Err(call
                    .permanent(format!(
                        "login role {name} is not a member of group role {group}"
                    ))
                    .with_fix(call.setup_fix()));
            }
            if !self_managed && row.superuser && !seen.actor_super {
                return Err(call
                    .permanent(format!(
                        "role {name} is a superuser: CREATEROLE cannot change its password"
                    ))
                    .with_fix("use a superuser admin secret, or make the role NOSUPERUSER"));
            }
        }
        checks.push(format!("role(s) {} exist", wanted.join(", ")));
        if !self_managed && let Some(v) = ctx.current {
            let cred = call.cred(v, "current")?;
            conn::connect(&call.target, &cred)
                .await
                .map_err(|e| call.fail(Who::Current, e))?;
            checks.push(format!("the current value of {} logs in", cred.username));
        }
        Ok(checks)
    }
}

/// TLS as its own check, before anything else: under a mode that requires TLS, one
/// connection as `cred` whose failure is looked at directly. A TLS refusal (no TLS on the
/// server, a certificate not valid for the host, an untrusted CA, an expired certificate)
/// is reported as `TLS: …` with its fix, never as "cannot reach"; any other failure is left
/// to the checks that follow, which name it. `Ok(None)`: TLS not required by the url.
async fn tls_preflight(
    call: &Call<'_>,
    cred: &crate::Credential,
) -> Result<Option<String>, RotatorError> {
    let tls = call.target.tls();
    let Some(line) = rotor_tls::verified_check(tls.options(), tls.host()) else {
        return Ok(None);
    };
    match conn::connect(&call.target, cred).await {
        Ok(client) => {
            drop(client);
            Ok(Some(line))
        }
        Err(PgFailure::Tls(t)) => Err(call
            .permanent(format!("TLS: {}", t.message))
            .with_fix(t.fix)),
        // pg_hba.conf's `clientcert`: the handshake passed, then the server refused the
        // login for want of a valid client certificate. A TLS cause, whatever the
        // password: "put the real password" would be the wrong fix.
        Err(PgFailure::Pg(e))
            if e.as_db_error().is_some_and(|db| {
                db.code().code() == "28000" && db.message().contains("certificate")
            }) =>
        {
            let said = e
                .as_db_error()
                .map(|db| db.message().to_owned())
                .unwrap_or_default();
            let fix = if tls.options().client.is_none() {
                "give the client certificate and its key: sslcert=PATH&sslkey=PATH"
            } else {
                "the server refused the client certificate: it must be signed by a CA the \
                 server trusts (ssl_ca_file) and, under clientcert=verify-full, name the role \
                 as its common name"
            };
            Err(call
                .permanent(format!(
                    "TLS: {} requires a valid client certificate (the server said: {said})",
                    tls.host()
                ))
                .with_fix(fix))
        }
        // Refused login, unreachable, a timeout: the admin session below reports it.
        Err(_) => Ok(None),
    }
}
