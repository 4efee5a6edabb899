//! A JWT secret's timing: the JWKS max-age and the prepublish that covers it, and a grace
//! that covers the tokens' lifetime.
//!
//! Why here: these are the defaults a new inventory keeps, and each one decides whether a
//! client misses a key. A client that honours the served `Cache-Control: max-age` (and does
//! not refetch on an unknown kid, as many libraries do) holds a JWKS up to max-age old; a key
//! that signs only after prepublish ≥ max-age + margin is therefore in every such cache
//! before a token uses it. A previous key that verifies for grace ≥ token lifetime + leeway
//! outlives every token it signed.

use std::ops::Range;

use toml_edit::{Item, TableLike};

use super::Walker;
use crate::Duration;
use crate::config::JwtSettings;

impl Walker<'_> {
    /// Fills in `jwks_max_age` and `prepublish` (set, or derived from the rotation period)
    /// and reports a prepublish below max-age plus margin.
    pub(super) fn jwt_caching(
        &mut self,
        mut j: JwtSettings,
        t: &dyn TableLike,
        header: &Range<usize>,
        period: Option<crate::Duration>,
    ) -> JwtSettings {
        let span = |key: &str| t.get(key).and_then(Item::span).unwrap_or(header.clone());
        let set_max_age = self.duration(t, "jwks_max_age");
        let set_prepublish = self.duration(t, "prepublish");
        if j.algorithm.is_hmac() {
            if t.get("jwks_max_age").is_some() {
                self.error(
                    span("jwks_max_age"),
                    format!(
                        "jwks_max_age does not apply to {}: HMAC keys are shared secrets, never published in a JWKS",
                        j.algorithm.as_str()
                    ),
                    Some("remove jwks_max_age".into()),
                );
            }
            j.jwks_max_age = Duration::ZERO;
            j.prepublish = set_prepublish.unwrap_or(Duration::ZERO);
            return j;
        }
        j.jwks_max_age = set_max_age.unwrap_or_else(|| {
            period.map_or(Duration::from_secs(60), JwtSettings::derived_max_age)
        });
        let least = j.min_prepublish();
        j.prepublish = match set_prepublish {
            None => least,
            Some(p) if p < least => {
                let margin = JwtSettings::jwks_margin(j.jwks_max_age);
                let source = if set_max_age.is_some() {
                    "jwks_max_age"
                } else {
                    "derived from the rotation period; or set jwks_max_age"
                };
                self.error(
                    span("prepublish"),
                    format!(
                        "prepublish = {p} is shorter than the JWKS max-age ({}, {source}) plus a margin ({margin}): a client that caches the JWKS for max-age would get tokens signed with a key it has not fetched",
                        j.jwks_max_age
                    ),
                    Some(format!(
                        "remove prepublish (the default is {least}), set it to at least {least}, or lower jwks_max_age"
                    )),
                );
                p
            }
            Some(p) => p,
        };
        if let Some(period) = period
            && j.prepublish >= period
        {
            self.error(
                span(if t.get("prepublish").is_some() {
                    "prepublish"
                } else {
                    "jwks_max_age"
                }),
                format!(
                    "prepublish ({}) is not shorter than the rotation period ({period}): a new key would never sign",
                    j.prepublish
                ),
                Some("lower jwks_max_age (and prepublish), or lengthen the schedule".into()),
            );
        }
        j
    }

    /// Reports a grace shorter than the longest token's lifetime plus leeway.
    pub(super) fn jwt_grace(
        &mut self,
        j: &JwtSettings,
        grace: Duration,
        t: &dyn TableLike,
        header: &Range<usize>,
    ) {
        let least = j.min_grace();
        if grace < least {
            self.error(
                t.get("grace").and_then(Item::span).unwrap_or(header.clone()),
                format!(
                    "grace = {grace} is shorter than token_lifetime ({}) plus leeway ({}): tokens signed just before a rotation would be rejected while still unexpired",
                    j.token_lifetime, j.leeway
                ),
                Some(format!(
                    "set grace to at least {least} (or remove it: that is the default), or lower token_lifetime"
                )),
            );
        }
    }
}
