//! The configuration's types: what parsing produces and evaluation consumes.

use super::node::Node;
use super::template::ExMap;
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
    /// `replace_triggered_by`: addresses as written (`${each.key}` and
    /// `${vars.NAME}` substituted per instance when the graph is built).
    pub replace_triggered_by: Vec<(String, Range<usize>)>,
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
    pub body: ExMap,
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
    pub stack: String,
    pub state: StateCfg,
    pub vars: BTreeMap<String, Value>,
    pub blocks: BTreeMap<String, ProviderBlock>,
    pub resources: Vec<Resource>,
    /// `[output.*]`, in file order.
    pub outputs: Vec<super::outputs::OutputCfg>,
    /// `[check.*]`, in file order.
    pub checks: Vec<super::checks::CheckCfg>,
    /// `[[moved]]` blocks, in file order.
    pub moved: Vec<super::moved::Moved>,
    /// `${env.NAME}` in `[vars]` defaults and the `state` table that is not
    /// set (the value is unknown): live evaluations report them.
    pub unset_env: Vec<UnsetEnv>,
    /// [`line_starts`] of `src`.
    pub lines: Vec<usize>,
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
    /// Where each line starts ([`line_starts`]), so that locating a span
    /// costs a binary search, not a scan of the text.
    pub lines: &'a [usize],
}

/// The byte offset of each line's start in `src`.
pub fn line_starts(src: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Source<'_> {
    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        let start = span.start.min(self.src.len());
        let line = self.lines.partition_point(|&s| s <= start);
        let (Some(&from), true) = (self.lines.get(line.wrapping_sub(1)), line > 0) else {
            return Some(Loc::from_span(self.path, self.src, span.clone()));
        };
        let to = self
            .lines
            .get(line)
            .map_or(self.src.len(), |&next| next - 1);
        // Located within its own line, then numbered.
        let mut l = Loc::from_span(
            self.path,
            &self.src[from..to],
            (start - from)..(span.end.max(start) - from),
        );
        l.line = line;
        Some(l)
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
            lines: &self.lines,
        }
    }

    pub fn loc(&self, span: &Range<usize>) -> Option<Loc> {
        self.source().loc(span)
    }

    /// The resource a config instance comes from.
    pub fn resource(&self, inst: &Instance) -> &Resource {
        &self.resources[inst.res]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_by_line_index_as_by_scanning() {
        let src = "a = 1\n\nbé = \"x y\"\r\n[t]\nk = { z = 1 }\nlast";
        let lines = line_starts(src);
        let path = Path::new("c.toml");
        let source = Source {
            path,
            src,
            lines: &lines,
        };
        let ends: Vec<usize> = (0..=src.len())
            .filter(|&i| src.is_char_boundary(i))
            .collect();
        for &start in &ends {
            for &end in ends.iter().filter(|&&e| e >= start).take(8) {
                let want = Loc::from_span(path, src, start..end);
                assert_eq!(source.loc(&(start..end)), Some(want), "span {start}..{end}");
            }
        }
        assert_eq!(
            source.loc(&(999..1000)),
            Some(Loc::from_span(path, src, 999..1000))
        );
    }
}
