//! `jwks`, `keyring`, `jwt sign`, `jwt verify`: a JWT secret's keys, through the keyring library.

use std::io::Read;
use std::path::Path;

use rotor_core::{Kind, RotationStatus, Stage};
use rotor_keyring::{Keyring, KeyringDocument};

use crate::Exit;
use crate::cli::{JwtCommand, KeyringArgs};
use crate::context::Context;

/// The keyring document built from the secret's staged versions.
async fn document(ctx: &Context, name: &str) -> anyhow::Result<KeyringDocument> {
    Ok(staged_document(ctx, name).await?.0)
}

/// The document and the (stage, version) of each key in it.
async fn staged_document(
    ctx: &Context,
    name: &str,
) -> anyhow::Result<(KeyringDocument, Vec<(Stage, rotor_core::VersionId)>)> {
    let spec = ctx.engine.spec(name)?;
    if spec.kind != Kind::Jwt {
        anyhow::bail!("{name} is a {} secret, not a JWT key", spec.kind);
    }
    let store = ctx.store();
    // One snapshot of the stages: read one at a time, a finish in between lists a key twice.
    let staged = store.read_staged(&spec.name).await?;
    // The previous key verifies until its rotation's grace ends.
    let not_after = store
        .open_rotations()
        .await?
        .into_iter()
        .find(|r| r.secret == spec.name && r.status == RotationStatus::Grace)
        .and_then(|r| r.retire_after);
    let refs: Vec<_> = staged.iter().map(|(s, v)| (*s, v)).collect();
    let doc = rotor_rotate::jwt::keyring_document(name, &refs, not_after)?;
    Ok((
        doc,
        staged
            .iter()
            .map(|(s, v)| (*s, v.meta.id.clone()))
            .collect(),
    ))
}

/// The longest lifetime a token of JWT secret `name` may have (its grace covers it).
fn token_lifetime(ctx: &Context, name: &str) -> anyhow::Result<rotor_core::Duration> {
    match &ctx.engine.spec(name)?.settings {
        rotor_core::config::KindSettings::Jwt(j) => Ok(j.token_lifetime),
        _ => anyhow::bail!("{name} is not a JWT key"),
    }
}

pub async fn jwks(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    println!("{}", document(&ctx, name).await?.jwks().to_json_pretty());
    Ok(())
}

pub async fn keyring(config_path: &Path, args: &KeyringArgs) -> anyhow::Result<()> {
    if !args.reveal {
        anyhow::bail!("the keyring document holds private key material: pass --reveal to print it");
    }
    let ctx = Context::open(config_path).await?;
    let (doc, staged) = staged_document(&ctx, &args.name).await?;
    // On the audit record before any private key is printed.
    let spec = ctx.engine.spec(&args.name)?;
    let reads: Vec<_> = staged
        .into_iter()
        .map(|(stage, version)| rotor_engine::ValueRead {
            actor: ctx.engine.actor().to_owned(),
            secret: spec.name.clone(),
            version,
            stage,
            channel: rotor_engine::ReadChannel::Cli,
            count: 1,
        })
        .collect();
    ctx.engine.record_reads(&reads).await?;
    println!("{}", &*doc.to_json_pretty());
    Ok(())
}

pub async fn run(config_path: &Path, cmd: JwtCommand) -> anyhow::Result<()> {
    let ctx = Context::open(config_path).await?;
    match cmd {
        JwtCommand::Sign { name, claims, ttl } => {
            let mut claims: serde_json::Value = serde_json::from_str(&claims)
                .map_err(|e| anyhow::anyhow!("--claims must be a JSON object: {e}"))?;
            let lifetime = token_lifetime(&ctx, &name)?;
            let ttl = match ttl {
                None => lifetime,
                Some(t) => rotor_core::Duration::parse(&t)
                    .map_err(|e| anyhow::anyhow!("--ttl {t:?}: {e}"))?,
            };
            if ttl > lifetime {
                anyhow::bail!(
                    "--ttl {ttl} is longer than {name}'s token_lifetime ({lifetime}): after a rotation the key's grace (sized for token_lifetime) would end while the token is still valid; use --ttl {lifetime} or less, or raise token_lifetime (and grace) in the config"
                );
            }
            let Some(obj) = claims.as_object_mut() else {
                anyhow::bail!("--claims must be a JSON object");
            };
            let now = jiff::Timestamp::now().as_second();
            let latest = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
            obj.entry("iat").or_insert(now.into());
            obj.entry("exp").or_insert(
                now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX))
                    .into(),
            );
            match obj.get("exp").map(serde_json::Value::as_i64) {
                Some(Some(exp)) if exp > latest => anyhow::bail!(
                    "the claims' exp is {}s from now, longer than {name}'s token_lifetime ({lifetime}); drop exp (--ttl sets it) or raise token_lifetime (and grace) in the config",
                    exp - now
                ),
                Some(Some(_)) => {}
                _ => anyhow::bail!("the claims' exp must be a number of seconds since the epoch"),
            }
            let ring = Keyring::from_document(&document(&ctx, &name).await?)?;
            println!("{}", ring.sign(&claims)?);
            Ok(())
        }
        JwtCommand::Verify { name } => {
            let mut token = String::new();
            std::io::stdin().read_to_string(&mut token)?;
            let ring = Keyring::from_document(&document(&ctx, &name).await?)?;
            match ring.verify(token.trim()) {
                Ok(claims) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "claims": claims.claims,
                            "kid": claims.kid,
                            "stage": claims.stage.as_str(),
                        }))?
                    );
                    Ok(())
                }
                Err(e) => {
                    eprintln!("rejected: {e}");
                    Err(Exit(1).into())
                }
            }
        }
    }
}
