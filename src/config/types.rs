//! The configuration's types: what parsing produces and evaluation consumes.

use super::node::Node;
use super::template::Ex;
use crate::error::{Loc, Problem};
use claw_provider::{Attrs, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub const META_KEYS: &[&str] = &["host", "provider", "depends_on", "for_each", "lifecycle"];

/// Where state lives (SPEC §5). Config knows no particular remote backend:
/// any backend but `local` is a provider type, and its keys go to that
/// provider factory's `state_storage`, which checks them.
#[derive(Debug, Clone, PartialEq)]
pub enum StateCfg {
    Local {
        path: PathBuf,
    },
    Provider {
        /// The backend, a provider type (`kubernetes`).
        backend: String,
        /// The `[provider.ALIAS]` that holds the state.
        provider: String,
        /// The `state` table less `backend` and `provider`.
        attrs: Attrs,
        /// The `state` table, to locate what the provider reports.
        node: Node,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    pub ignore_changes: Vec<String>,
}

/// A `[host.*]` or `[provider.*]` block.
#[derive(Debug, Clone)]
pub struct ProviderBlock {
    /// `host.local`, `host.mac-mini`, `provider.k3s`
    pub key: String,
    pub alias: String,
    pub kind: String,
    pub node: Option<Node>,
}

/// One `[type.name]` table.
#[derive(Debug, Clone)]
pub struct Resource {
    pub rtype: String,
    pub name: String,
    pub kind: String,
    /// The provider block key this resource uses.
    pub provider_key: String,
    pub node: Node,
    pub depends_on: Vec<(String, Range<usize>)>,
    pub lifecycle: Lifecycle,
}

/// One instance of a resource (one per `for_each` key).
#[derive(Debug, Clone)]
pub struct Instance {
    pub addr: String,
    pub rtype: String,
    pub name: String,
    pub key: Option<String>,
    pub provider_key: String,
    /// Index into `Config::resources`.
    pub res: usize,
    /// Attributes with vars/each/env/secrets substituted; resource references left.
    pub body: BTreeMap<String, Ex>,
    /// The `for_each` key and value this instance was made from.
    pub each: Option<(String, Value)>,
    /// True when this instance came from a provider's `expand`.
    pub expanded: bool,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub src: String,
    pub base_dir: PathBuf,
    pub root: Node,
    pub stack: String,
    pub state: StateCfg,
    pub vars: BTreeMap<String, Value>,
    pub blocks: BTreeMap<String, ProviderBlock>,
    pub resources: Vec<Resource>,
    /// `[output.*]`, in file order.
    pub outputs: Vec<super::outputs::OutputCfg>,
    /// `[check.*]`, in file order.
    pub checks: Vec<super::checks::CheckCfg>,
    /// `${env.NAME}` in `[vars]` defaults and the `state` table that is not
    /// set (the value is unknown): live evaluations report them.
    pub unset_env: Vec<UnsetEnv>,
}

/// An environment variable that a parsed value needs and that is not set.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsetEnv {
    pub name: String,
    /// `[vars] root`
    pub used_by: String,
    pub span: Range<usize>,
}

/// The config file's text and where it came from, for locating errors.
pub struct Source<'a> {
    pub path: &'a Path,
    pub src: &'a str,
}

impl Source<'_> {
    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        Some(Loc::from_span(self.path, self.src, span.clone()))
    }
    pub fn err(&self, span: &Range<usize>, msg: impl Into<String>) -> Problem {
        Problem::new(msg).at(self.loc(span))
    }
}

impl Config {
    pub fn source(&self) -> Source<'_> {
        Source {
            path: &self.path,
            src: &self.src,
        }
    }

    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        self.source().loc(span)
    }

    /// The resource a config instance comes from.
    pub fn resource(&self, inst: &Instance) -> &Resource {
        &self.resources[inst.res]
    }

    /// A hash of the configuration text (saved in plan files).
    pub fn text_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.src.as_bytes()))
    }
}
