//! A user's sessions: eviction (`CLIENT KILL`), and reading `CLIENT LIST` for which sessions
//! a user has and which of them survived an eviction.

use rotor_core::Credential;
use rotor_core::RotatorError;
use rotor_core::rotator::{Eviction, StepContext};

use crate::RedisRotator;
use crate::call::Call;
use crate::connection::AdminSession;
use crate::resp::Reply;

/// The client ids of `user`'s sessions in a `CLIENT LIST` reply (one client per line,
/// space-separated `key=value` fields).
fn ids_of(list: &str, user: &str) -> Vec<u64> {
    list.lines()
        .filter_map(|line| {
            let mut id = None;
            let mut theirs = false;
            for field in line.split(' ') {
                match field.split_once('=') {
                    Some(("id", v)) => id = v.parse::<u64>().ok(),
                    Some(("user", u)) => theirs = u == user,
                    _ => {}
                }
            }
            id.filter(|_| theirs)
        })
        .collect()
}

/// How many of the sessions seen `before` are still in `after`.
fn surviving(before: &[u64], after: &[u64]) -> u64 {
    let n = before.iter().filter(|id| after.contains(id)).count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl RedisRotator {
    /// The `evict` step: `CLIENT KILL USER u SKIPME yes` ends every session of the secret's
    /// user but rotor's own, then `CLIENT LIST` counts the sessions that survived.
    pub(crate) async fn end_sessions(
        &self,
        ctx: &StepContext<'_>,
    ) -> Result<Eviction, RotatorError> {
        let call = Call::new(ctx.spec, "evict")?;
        let admin = Self::admin_cred(&call, ctx)?;
        let mut session = self.session(&call, &admin).await?;
        // The sessions there before the kill, to prove afterwards that none survived (client
        // ids are never reused by a running server). Our own connection is spared.
        let own = match Self::run(&call, &mut session, &[b"CLIENT", b"ID"]).await? {
            Reply::Int(id) => u64::try_from(id).ok(),
            _ => None,
        };
        let before: Vec<u64> = self
            .client_list(&call, &mut session, &admin)
            .await?
            .into_iter()
            .filter(|id| Some(*id) != own)
            .collect();
        // SKIPME yes: rotor's own admin connection survives even when it is the same user.
        let reply = Self::run(
            &call,
            &mut session,
            &[
                b"CLIENT",
                b"KILL",
                b"USER",
                call.user().as_bytes(),
                b"SKIPME",
                b"yes",
            ],
        )
        .await?;
        let ended = match reply {
            Reply::Int(n) => u64::try_from(n).unwrap_or(0),
            Reply::Error(e) if e.starts_with("ERR No such user") => return Ok(Eviction::default()),
            Reply::Error(e) => {
                return Err(Self::reply_err(
                    &call,
                    &mut session,
                    &admin,
                    "CLIENT KILL",
                    "client|kill",
                    &e,
                )
                .await);
            }
            other => return Err(call.permanent(format!("CLIENT KILL answered {other:?}"))),
        };
        let after = self.client_list(&call, &mut session, &admin).await?;
        let surviving = surviving(&before, &after);
        tracing::warn!(
            secret = call.secret,
            target = %call.target,
            user = call.user(),
            sessions = ended,
            surviving,
            "redis: ended every session of the user; clients reconnect with the current password"
        );
        Ok(Eviction { ended, surviving })
    }

    /// The ids of the sessions of the secret's user (`CLIENT LIST`).
    pub(crate) async fn client_list(
        &self,
        call: &Call<'_>,
        session: &mut Option<AdminSession>,
        admin: &Credential,
    ) -> Result<Vec<u64>, RotatorError> {
        match Self::run(call, session, &[b"CLIENT", b"LIST"]).await? {
            Reply::Bulk(Some(text)) => Ok(ids_of(&String::from_utf8_lossy(&text), call.user())),
            Reply::Error(e) => {
                Err(Self::reply_err(call, session, admin, "CLIENT LIST", "client|list", &e).await)
            }
            other => Err(call.permanent(format!("CLIENT LIST answered {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_users_sessions() {
        let list = "id=3 addr=127.0.0.1:5 laddr=127.0.0.1:6379 fd=8 name= age=1 user=app resp=2\n\
                    id=4 addr=127.0.0.1:6 fd=9 name= user=default resp=2\n\
                    id=9 addr=127.0.0.1:7 fd=10 name= user=app-two resp=2\n\
                    id=12 addr=127.0.0.1:8 fd=11 name= user=app resp=2\n";
        assert_eq!(ids_of(list, "app"), vec![3, 12]);
        assert_eq!(surviving(&[3, 12], &[12, 40]), 1);
        assert_eq!(surviving(&[3, 12], &[]), 0);
    }
}
