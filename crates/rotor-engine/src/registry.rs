//! Which rotator handles which kind, as wired by the binary.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rotor_core::{Kind, Rotator};

/// The rotators available to an engine, one per kind.
#[derive(Clone, Default)]
pub struct Rotators(BTreeMap<Kind, Arc<dyn Rotator>>);

impl Rotators {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `rotator` for its kind, replacing any earlier one.
    pub fn with(mut self, rotator: Arc<dyn Rotator>) -> Self {
        self.0.insert(rotator.kind(), rotator);
        self
    }

    pub fn get(&self, kind: Kind) -> Option<&Arc<dyn Rotator>> {
        self.0.get(&kind)
    }
}

impl fmt::Debug for Rotators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}
