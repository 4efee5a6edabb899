//! `kind = "github"` targets: each `[render.secrets]` entry rendered from the store and
//! written to GitHub Actions secrets through `rotor-deliver-github`.
//!
//! Only changed values are sent: each value carries a fingerprint of what it was made from
//! (the template's text and the version id of every `secret.stage` it references, hashed;
//! never the value), and the crate's state file records the fingerprints GitHub holds. A
//! transient failure (an outage, a rate limit GitHub says ends soon) is retried with the
//! engine's bounded backoff; what was written before it stays recorded, so a retry sends
//! only the rest. A longer wait is not slept through: the delivery fails with GitHub's reset
//! time, and the next delivery (any store change, `rotor render`, `rotor serve` start-up)
//! tries again.

use rotor_core::SecretValue;
use rotor_core::config::{GithubRender, RenderSpec, Template, TemplatePart};
use rotor_deliver_github::{GithubClient, GithubError, GithubTarget, Item, Scope};
use rotor_engine::RetryPolicy;
use sha2::{Digest, Sha256};

use crate::values::Cache;
use crate::{DeliverError, OnChangeOutcome, RenderResult, Renderer};

/// Renders every secret of `spec` and writes those whose fingerprint changed.
pub(crate) async fn deliver(
    renderer: &Renderer,
    spec: &RenderSpec,
    github: &GithubRender,
    templates: &[(String, Template)],
) -> Result<RenderResult, DeliverError> {
    let target = spec.target();
    // Every reference resolves before anything is sent: a render error sends nothing.
    // Errors name the target (`github:OWNER/REPO`), not its state file.
    let named = std::path::PathBuf::from(&target);
    let mut cache = Cache::default();
    let mut values = Vec::with_capacity(templates.len());
    for (name, t) in templates {
        let mut text = renderer.render_template(&named, t, &mut cache).await?;
        values.push((
            name,
            t,
            SecretValue::new(std::mem::take(&mut *text).into_bytes()),
        ));
    }
    let items: Vec<Item<'_>> = values
        .iter()
        .map(|(name, t, value)| Item {
            name: (*name).clone(),
            value,
            fingerprint: fingerprint(t, &cache),
        })
        .collect();
    // The state file decides what is sent: nobody else may be able to replace it.
    crate::check_dir_of(&spec.path)?;
    let fail = |source: GithubError| DeliverError::Github {
        target: target.clone(),
        source,
    };
    let client =
        GithubClient::from_env(&github.api_url, &github.token_env, scope(github)).map_err(fail)?;
    let sink = GithubTarget::new(client, &spec.path);
    let report = write_retrying(&sink, &items, renderer.retry)
        .await
        .map_err(fail)?;
    tracing::info!(target = %target, written = report.written.len(), unchanged = report.unchanged.len(), "github secrets delivered");
    Ok(RenderResult {
        path: spec.path.clone(),
        target,
        changed: !report.written.is_empty(),
        on_change: OnChangeOutcome::NotConfigured,
    })
}

/// `sink.write(items)`, a transient failure retried while the wait it needs fits the policy.
async fn write_retrying(
    sink: &GithubTarget,
    items: &[Item<'_>],
    retry: RetryPolicy,
) -> Result<rotor_deliver_github::Report, GithubError> {
    let mut attempt = 1;
    loop {
        match sink.write(items).await {
            Ok(report) => return Ok(report),
            Err(e) if e.transient && attempt < retry.attempts => {
                let wait = retry.delay(attempt).max(e.retry_after.unwrap_or_default());
                if wait > retry.max {
                    // A rate limit that resets later than a delivery should block.
                    return Err(e);
                }
                tracing::warn!(error = %e, attempt, ?wait, "github delivery failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn scope(g: &GithubRender) -> Scope {
    match &g.environment {
        None => Scope::Repository {
            owner: g.owner.clone(),
            repo: g.repo.clone(),
        },
        Some(environment) => Scope::Environment {
            owner: g.owner.clone(),
            repo: g.repo.clone(),
            environment: environment.clone(),
        },
    }
}

/// What a GitHub secret's value is made from: the template (its text and references) and
/// the version each reference read. It changes exactly when the rendered value can; it is
/// computed from ids and config text only, never from a value.
fn fingerprint(t: &Template, cache: &Cache) -> String {
    let mut h = Sha256::new();
    for part in &t.parts {
        match part {
            TemplatePart::Text(s) => {
                h.update(b"t");
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            TemplatePart::Ref(r) => {
                let field = r.field.as_deref().unwrap_or("");
                let version = cache.version_of(r).unwrap_or_default();
                for piece in [r.secret.as_str(), r.stage.as_str(), field, &version] {
                    h.update(b"r");
                    h.update((piece.len() as u64).to_be_bytes());
                    h.update(piece.as_bytes());
                }
            }
        }
    }
    format!("v1:{}", hex::encode(h.finalize()))
}
