//! `rotor setup` for a postgres secret: checks (single) or creates and repairs (alternating)
//! the roles a secret rotates, and says what it did and what the DBA still grants.
//!
//! Alternating pairs have one trap: an object belongs to the role that created it. A table
//! a migration creates as `app_a` is owned by `app_a`, and once the next rotation moves the
//! app to `app_b`, `app_b` gets "permission denied" on it. So setup makes each login role
//! act as the group role on login (`ALTER ROLE app_a SET role = 'app'`): everything it
//! creates is owned by `app`, which both login roles inherit. Re-running setup repairs a pair
//! made before: it adds the missing settings and hands objects the login roles already own
//! in the url's database to the group (`REASSIGN OWNED`); when the admin may not do that,
//! it prints the statement for a superuser.
//!
//! Every statement is absolute (`CREATE ROLE` only when missing), so setup may run any
//! number of times; a concurrent setup that wins a `CREATE ROLE` race is looked at again.

use std::sync::Arc;

use rotor_core::RotatorError;
use rotor_core::config::PgStrategy;
use tokio_postgres::Client;

use crate::conn::{PgFailure, Pool};
use crate::{Call, Credential, Who, login_roles, quote_literal};

/// What setup found about one role of the secret.
struct Found {
    name: String,
    can_login: bool,
    in_group: bool,
    /// Its login default is `role = <group>` (in every database).
    acts_as_group: bool,
    /// Objects it owns in the url's database.
    owned: i64,
}

/// How many times a lost `CREATE ROLE` race is looked at again before giving up.
const RACE_RETRIES: usize = 3;

pub(crate) async fn run(
    pool: &Pool,
    call: &Call<'_>,
    actor: &(Credential, Who<'_>),
) -> Result<Vec<String>, RotatorError> {
    let mut attempt = 0;
    loop {
        match once(pool, call, actor).await {
            Err(Race) if attempt < RACE_RETRIES => attempt += 1,
            Err(Race) => {
                return Err(
                    call.transient("another setup keeps creating the same roles; run setup again")
                );
            }
            Ok(lines) => return lines,
        }
    }
}

/// A concurrent setup created a role first (42710): look again.
struct Race;

async fn once(
    pool: &Pool,
    call: &Call<'_>,
    actor: &(Credential, Who<'_>),
) -> Result<Result<Vec<String>, RotatorError>, Race> {
    let found = match lookup(pool, call, actor).await {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let group = call.pg.role.as_str();
    let at = call.target.display.as_str();
    let find = |n: &str| found.iter().find(|r| r.name == n);
    let mut lines = Vec::new();
    if call.pg.strategy == PgStrategy::Single {
        return Ok(match find(group) {
            Some(r) => {
                lines.push(format!(
                    "role {group} exists on {at}{}",
                    if r.can_login {
                        ""
                    } else {
                        " (NOLOGIN: set gives it no LOGIN; `ALTER ROLE … LOGIN` if it should log in)"
                    }
                ));
                Ok(lines)
            }
            None => Err(call.ident(group).map_or_else(
                |e| e,
                |g| {
                    call.permanent(format!("role {group} does not exist"))
                        .with_fix(format!(
                            "create it: `CREATE ROLE {g} LOGIN` (rotor does not create single-strategy roles)"
                        ))
                },
            )),
        });
    }

    let g = match call.ident(group) {
        Ok(g) => g,
        Err(e) => return Ok(Err(e)),
    };
    let as_group = match quote_literal(group) {
        Ok(l) => l,
        Err(e) => return Ok(Err(call.permanent(format!("role name {e}")))),
    };
    let mut stmts = Vec::new();
    match find(group) {
        Some(r) if r.can_login => lines.push(format!(
            "group role {group} exists on {at} (adopted; it can log in: consider `ALTER ROLE {g} NOLOGIN`)"
        )),
        Some(_) => lines.push(format!("group role {group} exists on {at} (adopted)")),
        None => {
            stmts.push(format!("CREATE ROLE {g} NOLOGIN"));
            lines.push(format!("created group role {group} (NOLOGIN) on {at}"));
        }
    }
    let logins = login_roles(group);
    for login in &logins {
        let l = match call.ident(login) {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        let role = find(login);
        match role {
            None => {
                stmts.push(format!("CREATE ROLE {l} NOLOGIN IN ROLE {g}"));
                lines.push(format!(
                    "created login role {login} in {group} on {at} (NOLOGIN until a rotation sets its password)"
                ));
            }
            Some(r) if r.in_group => lines.push(format!(
                "login role {login} exists in {group} on {at} (adopted)"
            )),
            Some(_) => {
                stmts.push(format!("GRANT {g} TO {l}"));
                lines.push(format!(
                    "login role {login} exists on {at}; granted {group} to it"
                ));
            }
        }
        if !role.is_some_and(|r| r.acts_as_group) {
            stmts.push(format!("ALTER ROLE {l} SET role = {as_group}"));
            lines.push(format!(
                "login role {login} acts as {group} on login (ALTER ROLE … SET role): what it creates is owned by {group}"
            ));
        }
    }
    if !stmts.is_empty() {
        // One transaction: all or nothing.
        let batch = Arc::new(format!("BEGIN; {}; COMMIT", stmts.join("; ")));
        let result = pool
            .run(&call.target, &actor.0, &|c: Arc<Client>| {
                let batch = Arc::clone(&batch);
                async move {
                    let r = c.batch_execute(&batch).await;
                    if r.is_err() {
                        let _ = c.batch_execute("ROLLBACK").await;
                    }
                    r
                }
            })
            .await;
        match result {
            Ok(()) => {}
            Err(e) if e.code() == Some("42710") => return Err(Race),
            Err(e) => return Ok(Err(call.fail(actor.1, e))),
        }
    }

    // Objects the login roles already own (made before setup set `role`) move to the group.
    let owners: Vec<&String> = logins
        .iter()
        .filter(|l| find(l).is_some_and(|r| r.owned > 0))
        .collect();
    if !owners.is_empty() {
        let count: i64 = owners.iter().filter_map(|l| find(l)).map(|r| r.owned).sum();
        let names: Vec<String> = match owners.iter().map(|l| call.ident(l)).collect() {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let stmt = Arc::new(format!("REASSIGN OWNED BY {} TO {g}", names.join(", ")));
        let result = pool
            .run(&call.target, &actor.0, &|c: Arc<Client>| {
                let stmt = Arc::clone(&stmt);
                async move { c.batch_execute(&stmt).await }
            })
            .await;
        let who = owners
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" and ");
        match result {
            Ok(()) => lines.push(format!(
                "handed {count} object(s) owned by {who} on {at} to {group} (REASSIGN OWNED), so both login roles can use them"
            )),
            Err(e) if e.code() == Some("42501") => lines.push(format!(
                "{count} object(s) on {at} are owned by {who}, and the admin may not reassign them: as a superuser in that database run `{stmt}`"
            )),
            Err(e) => return Ok(Err(call.fail(actor.1, e))),
        }
    }
    lines.push(format!(
        "the DBA grants privileges to {group}, never to {} or {}: e.g. `GRANT USAGE, CREATE ON SCHEMA public TO {g}` for migrations, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {g}` for tables made by others",
        logins[0], logins[1]
    ));
    Ok(Ok(lines))
}

/// The group role and its login roles as they are on the server.
async fn lookup(
    pool: &Pool,
    call: &Call<'_>,
    actor: &(Credential, Who<'_>),
) -> Result<Vec<Found>, RotatorError> {
    let group = call.pg.role.clone();
    let [a, b] = login_roles(&group);
    let names = Arc::new(vec![group.clone(), a, b]);
    let group = Arc::new(group);
    let query = |c: Arc<Client>| {
        let names = Arc::clone(&names);
        let group = Arc::clone(&group);
        async move {
            let setting = format!("role={group}");
            let rows = c
                .query(
                    "SELECT r.rolname, r.rolcanlogin, \
                            EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid \
                                    WHERE m.member = r.oid AND g.rolname = $2), \
                            EXISTS (SELECT 1 FROM pg_db_role_setting s \
                                    WHERE s.setrole = r.oid AND s.setdatabase = 0 AND $3 = ANY (s.setconfig)), \
                            (SELECT count(*) FROM pg_shdepend d \
                              WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid \
                                AND d.deptype = 'o' \
                                AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) \
                     FROM pg_roles r WHERE r.rolname = ANY($1)",
                    &[&*names, &*group, &setting],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Found {
                    name: r.get(0),
                    can_login: r.get(1),
                    in_group: r.get(2),
                    acts_as_group: r.get(3),
                    owned: r.get(4),
                })
                .collect::<Vec<_>>())
        }
    };
    pool.run(&call.target, &actor.0, &query)
        .await
        .map_err(|e: PgFailure| call.fail(actor.1, e))
}
