//! The reconciliation planner: given the stages the ledger says (desired) and the labels AWS
//! has (actual), the one next AWS call that brings AWS closer. Pure, so the whole mapping is
//! unit-tested without a network; [`crate::AwsStore::sync`] runs it in a loop, re-reading AWS
//! after every call, until it returns `None`.

use std::collections::BTreeMap;

use rotor_core::Stage;

/// AWS's label for rotor's pending stage.
pub const AWSPENDING: &str = "AWSPENDING";
/// AWS's label for rotor's current stage.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// AWS's label for rotor's previous stage.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// The AWS staging label of a rotor stage (one to one).
pub fn aws_label(stage: Stage) -> &'static str {
    match stage {
        Stage::Pending => AWSPENDING,
        Stage::Current => AWSCURRENT,
        Stage::Previous => AWSPREVIOUS,
    }
}

/// Which version id (= ClientRequestToken) holds each stage, per the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Desired {
    pub pending: Option<String>,
    pub current: Option<String>,
    pub previous: Option<String>,
}

impl Desired {
    fn get(&self, label: &str) -> Option<&str> {
        match label {
            AWSPENDING => self.pending.as_deref(),
            AWSCURRENT => self.current.as_deref(),
            AWSPREVIOUS => self.previous.as_deref(),
            _ => None,
        }
    }
}

/// The versions AWS has for the secret (including deprecated ones) and their labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Actual {
    pub versions: BTreeMap<String, Vec<String>>,
}

impl Actual {
    fn has(&self, id: &str) -> bool {
        self.versions.contains_key(id)
    }
    /// Every version holding `label` (AWS allows one; moto can be coaxed into several).
    fn holders(&self, label: &str) -> Vec<&str> {
        self.versions
            .iter()
            .filter(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// One AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `CreateSecret(Name, ClientRequestToken=version, SecretString)`: the secret's first
    /// version, which AWS labels AWSCURRENT.
    Create { version: String },
    /// `PutSecretValue(ClientRequestToken=version, VersionStages=[label])`.
    Put {
        version: String,
        label: &'static str,
    },
    /// `UpdateSecretVersionStage(VersionStage=label, MoveToVersionId=to, RemoveFromVersionId=from)`.
    Move {
        label: &'static str,
        to: Option<String>,
        from: Option<String>,
    },
}

/// The next call, or `None` when AWS matches the ledger.
///
/// Order: AWSCURRENT first (creating the secret or uploading the version when AWS lacks
/// it), then AWSPENDING, then AWSPREVIOUS, so a promote is exactly what AWS's own rotation
/// functions do: move AWSCURRENT (AWS moves AWSPREVIOUS to the old current by itself), then
/// drop AWSPENDING.
///
/// Rules that follow AWS's (and work around moto's) behaviour:
/// - a version is uploaded only with AWSPENDING (or AWSCURRENT/AWSPREVIOUS when that label
///   is free): `PutSecretValue` with a taken AWSCURRENT does not move it on moto;
/// - every move names `RemoveFromVersionId` when another version holds the label;
/// - AWSCURRENT is never removed without being moved (AWS refuses; moto would comply);
/// - a pending (or previous) value is not uploaded while the secret has no AWSCURRENT,
///   because AWS labels a secret's first version AWSCURRENT whatever the request says: a
///   first rotation's pending value reaches AWS when it becomes current (the ledger holds it
///   meanwhile).
pub(crate) fn next(desired: &Desired, actual: Option<&Actual>) -> Option<Action> {
    let Some(actual) = actual else {
        return desired
            .current
            .as_ref()
            .map(|c| Action::Create { version: c.clone() });
    };
    if let Some(c) = &desired.current
        && !actual.has(c)
    {
        let label = if actual.holders(AWSCURRENT).is_empty() {
            AWSCURRENT
        } else {
            AWSPENDING
        };
        return Some(Action::Put {
            version: c.clone(),
            label,
        });
    }
    let has_current = !actual.holders(AWSCURRENT).is_empty();
    for label in [AWSCURRENT, AWSPENDING, AWSPREVIOUS] {
        let want = desired.get(label);
        let holders = actual.holders(label);
        match want {
            Some(v) => {
                if label != AWSCURRENT && !has_current {
                    // Deferred: see above.
                    continue;
                }
                if !actual.has(v) {
                    return Some(Action::Put {
                        version: v.to_owned(),
                        label,
                    });
                }
                let holds = holders.contains(&v);
                if let Some(other) = holders.iter().find(|h| **h != v) {
                    return Some(Action::Move {
                        label,
                        to: (!holds).then(|| v.to_owned()),
                        from: Some((*other).to_owned()),
                    });
                }
                if !holds {
                    return Some(Action::Move {
                        label,
                        to: Some(v.to_owned()),
                        from: None,
                    });
                }
            }
            None => {
                if label == AWSCURRENT {
                    // The ledger has no current (a first rotation, or a secret AWS had before
                    // rotor): leave AWS's current alone.
                    continue;
                }
                if let Some(h) = holders.first() {
                    return Some(Action::Move {
                        label,
                        to: None,
                        from: Some((*h).to_owned()),
                    });
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actual(v: &[(&str, &[&str])]) -> Actual {
        Actual {
            versions: v
                .iter()
                .map(|(id, ls)| {
                    (
                        (*id).to_owned(),
                        ls.iter().map(|l| (*l).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn desired(p: Option<&str>, c: Option<&str>, pr: Option<&str>) -> Desired {
        Desired {
            pending: p.map(str::to_owned),
            current: c.map(str::to_owned),
            previous: pr.map(str::to_owned),
        }
    }

    /// Applies an action to a simulated AWS, with AWS's documented semantics.
    fn simulate(a: Option<Actual>, act: &Action) -> Actual {
        let mut a = a.unwrap_or_default();
        let strip = |a: &mut Actual, label: &str| {
            for ls in a.versions.values_mut() {
                ls.retain(|l| l != label);
            }
        };
        match act {
            Action::Create { version } => {
                a.versions.insert(version.clone(), vec![AWSCURRENT.into()]);
            }
            Action::Put { version, label } => {
                let old_current = a.holders(AWSCURRENT).first().map(|s| (*s).to_owned());
                strip(&mut a, label);
                let mut labels = vec![(*label).to_owned()];
                if old_current.is_none() && *label != AWSCURRENT {
                    labels.push(AWSCURRENT.into());
                }
                a.versions.insert(version.clone(), labels);
            }
            Action::Move { label, to, from } => {
                if let Some(f) = from
                    && let Some(ls) = a.versions.get_mut(f)
                {
                    ls.retain(|l| l != label);
                }
                if let Some(t) = to
                    && let Some(ls) = a.versions.get_mut(t)
                {
                    ls.push((*label).to_owned());
                }
                if *label == AWSCURRENT
                    && let (Some(f), Some(_)) = (from, to)
                {
                    strip(&mut a, AWSPREVIOUS);
                    if let Some(ls) = a.versions.get_mut(f) {
                        ls.push(AWSPREVIOUS.into());
                    }
                }
            }
        }
        a
    }

    fn converge(d: &Desired, start: Option<Actual>) -> (Vec<Action>, Option<Actual>) {
        let mut state = start;
        let mut done = Vec::new();
        for _ in 0..16 {
            match next(d, state.as_ref()) {
                None => return (done, state),
                Some(a) => {
                    state = Some(simulate(state, &a));
                    done.push(a);
                }
            }
        }
        panic!("did not converge: {done:?}");
    }

    fn labels_of(a: &Actual, id: &str) -> Vec<String> {
        let mut l = a.versions.get(id).cloned().unwrap_or_default();
        l.sort();
        l
    }

    #[test]
    fn rotation_maps_to_aws_rotation_calls() {
        // rotor put: first value becomes current → CreateSecret.
        let (acts, a) = converge(&desired(None, Some("v1"), None), None);
        assert_eq!(
            acts,
            vec![Action::Create {
                version: "v1".into()
            }]
        );
        // create: pending → PutSecretValue(AWSPENDING).
        let (acts, a) = converge(&desired(Some("v2"), Some("v1"), None), a);
        assert_eq!(
            acts,
            vec![Action::Put {
                version: "v2".into(),
                label: AWSPENDING
            }]
        );
        // finish: move AWSCURRENT (AWSPREVIOUS follows by itself), then drop AWSPENDING.
        let (acts, a) = converge(&desired(None, Some("v2"), Some("v1")), a);
        assert_eq!(
            acts,
            vec![
                Action::Move {
                    label: AWSCURRENT,
                    to: Some("v2".into()),
                    from: Some("v1".into())
                },
                Action::Move {
                    label: AWSPENDING,
                    to: None,
                    from: Some("v2".into())
                },
            ]
        );
        // retire: drop AWSPREVIOUS.
        let (acts, a) = converge(&desired(None, Some("v2"), None), a);
        assert_eq!(
            acts,
            vec![Action::Move {
                label: AWSPREVIOUS,
                to: None,
                from: Some("v1".into())
            }]
        );
        let a = a.expect("state");
        assert_eq!(labels_of(&a, "v2"), vec![AWSCURRENT.to_owned()]);
        assert!(labels_of(&a, "v1").is_empty());
    }

    #[test]
    fn in_sync_means_no_call() {
        let a = actual(&[
            ("v1", &[AWSPREVIOUS]),
            ("v2", &[AWSCURRENT]),
            ("v3", &[AWSPENDING]),
        ]);
        assert_eq!(
            next(&desired(Some("v3"), Some("v2"), Some("v1")), Some(&a)),
            None
        );
    }

    #[test]
    fn first_rotation_defers_pending_until_current() {
        assert_eq!(next(&desired(Some("p"), None, None), None), None);
        let empty = Actual::default();
        assert_eq!(next(&desired(Some("p"), None, None), Some(&empty)), None);
        // An existing secret made elsewhere (a foreign current): pending goes up normally,
        // and promote moves AWSCURRENT off the foreign version.
        let foreign = actual(&[("f", &[AWSCURRENT])]);
        let (_, a) = converge(&desired(Some("p"), None, None), Some(foreign));
        let a = a.expect("state");
        assert_eq!(labels_of(&a, "p"), vec![AWSPENDING.to_owned()]);
        let (_, a) = converge(&desired(None, Some("p"), None), Some(a));
        let a = a.expect("state");
        assert_eq!(labels_of(&a, "p"), vec![AWSCURRENT.to_owned()]);
        assert!(labels_of(&a, "f").is_empty());
    }

    #[test]
    fn missed_steps_are_caught_up_in_one_sync() {
        // AWS still at "v1 current" while the ledger finished a rotation and a put.
        let a = actual(&[("v1", &[AWSCURRENT])]);
        let d = desired(None, Some("v3"), Some("v2"));
        let (acts, out) = converge(&d, Some(a));
        let out = out.expect("state");
        assert_eq!(labels_of(&out, "v3"), vec![AWSCURRENT.to_owned()]);
        assert_eq!(labels_of(&out, "v2"), vec![AWSPREVIOUS.to_owned()]);
        assert!(labels_of(&out, "v1").is_empty());
        assert!(acts.len() <= 6, "{acts:?}");
    }

    #[test]
    fn duplicate_labels_are_cleaned() {
        let a = actual(&[
            ("a", &[AWSPENDING]),
            ("b", &[AWSPENDING]),
            ("c", &[AWSCURRENT]),
        ]);
        let (_, out) = converge(&desired(Some("b"), Some("c"), None), Some(a));
        let out = out.expect("state");
        assert!(labels_of(&out, "a").is_empty());
        assert_eq!(labels_of(&out, "b"), vec![AWSPENDING.to_owned()]);
    }

    #[test]
    fn never_removes_current_without_a_successor() {
        let a = actual(&[("a", &[AWSCURRENT])]);
        assert_eq!(next(&desired(None, None, None), Some(&a)), None);
    }
}
