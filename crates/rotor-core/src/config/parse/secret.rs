//! One `[secrets.NAME]` section: kind, schedule, policy and the common keys; the kind's
//! own settings are read by `kinds.rs`.

use std::ops::Range;

use toml_edit::{Item, TableLike};

use super::Walker;
use super::kinds::{kind_keys, kind_keys_of};
use super::walker::suggest;
use crate::config::{KindSettings, SecretSpec, Window};
use crate::policy::{PolicyError, Tiers};
use crate::{Automation, Duration, Kind, Policy, SecretName, Tier};

pub(super) const COMMON_KEYS: &[&str] = &[
    "kind",
    "description",
    "owner",
    "tier",
    "rotate_every",
    "grace",
    "automation",
    "requires_confirmation",
    "window",
    "jitter",
    "on_emergency",
    "last_rotated",
];

impl Walker<'_> {
    pub(super) fn secret_spec(
        &mut self,
        name: &str,
        key_span: Range<usize>,
        item: &Item,
        tiers: &Tiers,
    ) -> Option<SecretSpec> {
        let before = self.diags.len();
        let name = match SecretName::new(name) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(key_span.clone(), e.to_string(), None);
                None
            }
        };
        let Some(t) = item.as_table_like() else {
            self.error(
                key_span,
                "a secret must be a table".into(),
                Some("write it as a [secrets.NAME] section".into()),
            );
            return None;
        };
        let header = item.span().unwrap_or(key_span);

        let kind = match self.string(t, "kind") {
            None if t.get("kind").is_none() => {
                self.error(
                    header.clone(),
                    "missing `kind`".into(),
                    Some(format!("add kind = one of {}", kinds_list())),
                );
                None
            }
            None => None,
            Some((k, span)) => match Kind::parse(&k) {
                Some(kind) => Some(kind),
                None => {
                    let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    let help = match suggest(&k, &names) {
                        Some(s) => format!("did you mean `{s}`? (kinds: {})", kinds_list()),
                        None => format!("use one of {}", kinds_list()),
                    };
                    self.error(span, format!("unknown kind `{k}`"), Some(help));
                    None
                }
            },
        };

        // Unknown keys: common keys plus the kind's own (when the kind is known).
        let kind_keys = kind.map_or(&[][..], kind_keys);
        if kind.is_some() {
            for (key, it) in t.iter() {
                if COMMON_KEYS.contains(&key) || kind_keys.contains(&key) {
                    continue;
                }
                // Built only for an unknown key: the happy path of a large inventory
                // formats nothing per secret.
                let known: Vec<&str> = COMMON_KEYS.iter().chain(kind_keys).copied().collect();
                let section = format!("[secrets.{}]", self.secret.clone().unwrap_or_default());
                let span = t
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| it.span())
                    .unwrap_or(0..0);
                let owner = Kind::ALL
                    .into_iter()
                    .find(|k| kind_keys_of(*k).contains(&key));
                let help = if let Some(s) = suggest(key, &known) {
                    format!("did you mean `{s}`?")
                } else if let Some(other) = owner {
                    format!(
                        "`{key}` is a setting of kind `{other}`, not `{}`",
                        kind.map_or("", |k| k.as_str())
                    )
                } else {
                    format!("known keys for this kind: {}", known.join(", "))
                };
                self.error(
                    span,
                    format!("unknown key `{key}` in {section}"),
                    Some(help),
                );
            }
        }

        let description = self.string(t, "description").map(|(s, _)| s);
        let owner = self.string(t, "owner").map(|(s, _)| s);

        // Every field is read even after an error, so one `rotor check` reports every problem
        // of the secret at once; the spec is built only when none was found.
        let tier_given = t.get("tier").is_some();
        let tier = match self.string(t, "tier") {
            Some((s, span)) => match Tier::parse(&s) {
                Some(tier) => Some(tier),
                None => {
                    self.error(
                        span,
                        format!("unknown tier `{s}`"),
                        Some("use high (90d), medium (180d) or low (365d), or set rotate_every instead".into()),
                    );
                    None
                }
            },
            None => None,
        };
        let rotate_every = self.duration(t, "rotate_every");
        let period = match (
            tier,
            rotate_every,
            tier_given,
            t.get("rotate_every").is_some(),
        ) {
            (Some(_), Some(_), _, _) => {
                self.error(
                    t.get("rotate_every")
                        .and_then(Item::span)
                        .unwrap_or(header.clone()),
                    "both `tier` and `rotate_every` are set".into(),
                    Some("keep one: the tier's period, or an explicit rotate_every".into()),
                );
                None
            }
            (Some(tier), None, _, false) => Some(tiers.get(tier)),
            (None, Some(d), _, _) => Some(d),
            (None, None, false, false) => {
                self.error(
                    header.clone(),
                    "no schedule".into(),
                    Some("add tier = \"high\" (90d), \"medium\" (180d) or \"low\" (365d), or rotate_every = \"90d\"".into()),
                );
                None
            }
            // A bad tier or rotate_every: already reported.
            _ => None,
        };
        let period = match period {
            Some(p) if p.is_zero() => {
                self.error(
                    t.get("rotate_every")
                        .and_then(Item::span)
                        .unwrap_or(header.clone()),
                    PolicyError::ZeroPeriod.to_string(),
                    Some("write e.g. rotate_every = \"90d\", or use a tier".into()),
                );
                None
            }
            other => other,
        };

        let automation = match self.string(t, "automation") {
            Some((s, span)) => match s.as_str() {
                "automatic" => Some(Automation::Automatic),
                "manual" => Some(Automation::Manual),
                _ => {
                    self.error(
                        span,
                        format!("unknown automation `{s}`"),
                        Some("use \"automatic\" or \"manual\"".into()),
                    );
                    None
                }
            },
            None => None,
        };
        let requires_confirmation = self.bool(t, "requires_confirmation").unwrap_or(false);
        let window = self.window(t);
        let jitter = self.duration(t, "jitter").unwrap_or(Duration::ZERO);
        let on_emergency = self.string(t, "on_emergency").map(|(s, _)| s);
        let last_rotated = self.declared_time(t, "last_rotated");

        let settings = kind
            .and_then(|kind| self.kind_settings(kind, t, &header))
            .map(|s| match s {
                KindSettings::Jwt(j) => KindSettings::Jwt(self.jwt_caching(j, t, &header, period)),
                other => other,
            });
        let automation = match (kind, automation) {
            (Some(Kind::Manual), Some(Automation::Automatic)) => {
                self.error(
                    t.get("automation").and_then(Item::span).unwrap_or(header.clone()),
                    "a manual secret cannot rotate automatically".into(),
                    Some("rotor cannot invent a vendor's API key: set automation = \"manual\", or use kind = \"command\" with a plugin that calls the vendor".into()),
                );
                None
            }
            (Some(Kind::Manual), None) => Some(Automation::Manual),
            (_, Some(a)) => Some(a),
            (_, None) if t.get("automation").is_some() => None,
            (_, None) => Some(Automation::Automatic),
        };
        let grace = match (self.duration(t, "grace"), &settings) {
            (Some(g), _) => Some(g),
            (None, _) if t.get("grace").is_some() => None,
            (None, Some(settings)) => Some(default_grace(settings)),
            (None, None) => None,
        };
        if let (Some(KindSettings::Jwt(j)), Some(g)) = (&settings, grace)
            && t.get("grace").is_some()
        {
            self.jwt_grace(j, g, t, &header);
        }
        let policy = match (period, grace, automation) {
            (Some(period), Some(grace), Some(automation)) => {
                match Policy::new(tier, period, grace, automation, requires_confirmation) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        let span = t
                            .get("grace")
                            .and_then(Item::span)
                            .unwrap_or(header.clone());
                        self.error(
                            span,
                            e.to_string(),
                            Some(format!(
                                "shorten grace below {period} (the previous value must be retired before the next rotation), or lengthen the schedule"
                            )),
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        if self.diags.len() > before {
            return None;
        }
        Some(SecretSpec {
            name: name?,
            kind: kind?,
            description,
            owner,
            policy: policy?,
            settings: settings?,
            window,
            jitter,
            on_emergency,
            last_rotated,
        })
    }

    pub(super) fn window(&mut self, t: &dyn TableLike) -> Option<Window> {
        let (s, span) = self.string(t, "window")?;
        match Window::parse(&s) {
            Ok(w) => Some(w),
            Err(e) => {
                self.error(
                    span,
                    format!("`window`: {e}"),
                    Some("write e.g. window = \"Tue-Thu 02:00-04:00 Europe/Berlin\" (days, a local time range, an IANA time zone)".into()),
                );
                None
            }
        }
    }
}

fn default_grace(settings: &KindSettings) -> Duration {
    match settings {
        // Tokens signed just before finish stay valid for their lifetime plus clock leeway.
        KindSettings::Jwt(j) => j.token_lifetime.saturating_add(j.leeway),
        _ => Duration::from_hours(1),
    }
}

fn kinds_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
