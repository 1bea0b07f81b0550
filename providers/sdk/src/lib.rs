//! The provider SDK of claw.
//!
//! A provider crate depends on this crate only. It implements [`ProviderFactory`]
//! (registered once in the `claw` crate) which declares resource types and, per
//! configured alias (`[provider.x]` or `[host.x]`), builds a [`Provider`].
//!
//! Every call across the boundary takes one request struct and returns one
//! response (Terraform's provider protocol): new needs add fields, not parameters.
//!
//! Invariants:
//! - **A value that is [`Value::Secret`] never leaves a provider in clear text**:
//!   its `Serialize`, `Debug` and `Display` print only a salted hash or `(sensitive)`.
//! - **Missing is `None`, not an error**: refresh returns `None` for an object that
//!   does not exist.
//! - Providers never see the graph, the state file or the renderer.

// `Diagnostic` is the error type of every provider call: a few strings,
// returned rarely; boxing it would only add noise at every call site.
#![allow(clippy::result_large_err)]

pub mod decide;
pub mod diag;
pub mod diff;
pub mod digest;
pub mod map;
pub mod mock;
pub mod par;
pub mod provider;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod value;

pub use diag::{Diagnostic, Severity};
pub use diff::{generic_diff, AttrChange};
pub use provider::*;
pub use storage::{LockError, LockInfo, StateStorage};
pub use value::{Attrs, Map, Secret, Value};
