//! The one place that knows which providers exist.

use claw_provider::{ProviderFactory, ResourceType};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn ProviderFactory>>,
    types: BTreeMap<&'static str, (&'static str, ResourceType)>,
}

impl Registry {
    /// Every provider claw ships with.
    pub fn builtin() -> Registry {
        Registry::new(vec![
            claw_host::factory(),
            claw_docker::factory(),
            claw_kubernetes::factory(),
            claw_tailscale::factory(),
        ])
    }

    pub fn new(factories: Vec<Arc<dyn ProviderFactory>>) -> Registry {
        let mut r = Registry {
            factories: BTreeMap::new(),
            types: BTreeMap::new(),
        };
        for f in factories {
            let kind = f.kind();
            for t in f.resource_types() {
                r.types.insert(t.name, (kind, t));
            }
            r.factories.insert(kind, f);
        }
        r
    }

    pub fn factory(&self, kind: &str) -> Option<&Arc<dyn ProviderFactory>> {
        self.factories.get(kind)
    }
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }
    /// The provider kind and definition of a resource type.
    pub fn resource_type(&self, rtype: &str) -> Option<(&'static str, &ResourceType)> {
        self.types.get(rtype).map(|(k, t)| (*k, t))
    }
    pub fn type_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.keys().copied()
    }
}
