//! The provider boundary: request → response structs and the two traits.

use crate::diag::Diagnostic;
use crate::diff::{generic_diff, AttrChange};
use crate::storage::StateStorage;
use crate::value::{Attrs, Map, Value};
use async_trait::async_trait;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A typed configuration shape: its JSON Schema (for `schemas/claw.schema.json`)
/// and a check of a raw value against it (unknown keys, wrong types).
#[derive(Clone, Copy)]
pub struct Shape {
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    pub check: fn(&serde_json::Value) -> Result<(), CheckError>,
}

impl Shape {
    /// The shape of a `#[derive(Deserialize, JsonSchema)] #[serde(deny_unknown_fields)]` struct.
    pub fn of<T: JsonSchema + DeserializeOwned>() -> Shape {
        Shape {
            schema: |g| g.subschema_for::<T>(),
            check: check_typed::<T>,
        }
    }
}

/// Where a raw value failed its shape: `path` is like `mounts[0].target`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    pub path: String,
    pub message: String,
}

/// Deserializes `v` as `T`, reporting the failing attribute path.
pub fn check_typed<T: DeserializeOwned>(v: &serde_json::Value) -> Result<(), CheckError> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            Err(CheckError {
                path: if path == "." { String::new() } else { path },
                message: e.into_inner().to_string(),
            })
        }
    }
}

/// One resource type a provider offers.
#[derive(Clone)]
pub struct ResourceType {
    /// `file`, `docker_container`, ...
    pub name: &'static str,
    pub description: &'static str,
    /// The shape of the resource's own attributes (meta-arguments excluded).
    pub shape: Shape,
    /// Attributes set by the provider, referenceable as `${type.name.attr}`,
    /// unknown until the object exists (e.g. `id`).
    pub computed: &'static [&'static str],
}

/// Reports progress of a long operation: `(address, message)`.
#[derive(Clone)]
pub struct Progress(pub Arc<ProgressFn>);

/// The callback behind [`Progress`]: `(address, message)`.
pub type ProgressFn = dyn Fn(&str, &str) + Send + Sync;

impl Progress {
    pub fn none() -> Progress {
        Progress(Arc::new(|_, _| {}))
    }
    pub fn report(&self, address: &str, message: &str) {
        (self.0)(address, message)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// What every call knows about the run.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The stack name (goes into ownership labels).
    pub stack: String,
    /// Salt for [`crate::Secret::new`]; fixed per state lineage.
    pub salt: String,
    /// The folder of `claw.toml`; relative paths in attributes resolve from here.
    pub base_dir: PathBuf,
    pub progress: Progress,
    pub verbose: bool,
    /// Set when the run is interrupted (Ctrl-C, SIGTERM).
    pub cancel: Cancel,
}

/// The run's interruption as a provider sees it: an operation that waits
/// before it starts (e.g. for a per-repository lock) stops waiting when
/// [`Cancel::cancelled`] fires and returns [`Cancel::decline`] instead of
/// starting; claw reports it as "not started".
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    token: tokio_util::sync::CancellationToken,
    declined: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl Cancel {
    pub fn cancel(&self) {
        self.token.cancel()
    }
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }
    /// Records that the operation on `address` was not started; its error.
    pub fn decline(&self, address: &str) -> Diagnostic {
        let mut d = self.declined.lock().unwrap_or_else(|e| e.into_inner());
        d.insert(address.to_string());
        Diagnostic::error("not started: the run was interrupted").with_address(address)
    }
    /// Whether a provider declined to start the operation on `address`.
    pub fn declined(&self, address: &str) -> bool {
        let d = self.declined.lock().unwrap_or_else(|e| e.into_inner());
        d.contains(address)
    }
}

impl Ctx {
    pub fn for_tests(stack: &str, base_dir: impl Into<PathBuf>) -> Ctx {
        Ctx {
            stack: stack.to_string(),
            salt: "test-salt".into(),
            base_dir: base_dir.into(),
            progress: Progress::none(),
            verbose: false,
            cancel: Cancel::default(),
        }
    }
    /// The keyed digest (HMAC with the stack's salt) of `data`: the only
    /// digest a provider may store or print of content that can be sensitive.
    pub fn digest(&self, data: &[u8]) -> String {
        crate::digest::keyed_digest(&self.salt, data)
    }
    /// Makes a secret with this run's salt.
    pub fn secret(&self, plain: &str) -> Value {
        Value::Secret(crate::Secret::new(plain, &self.salt))
    }
    /// The ownership labels of SPEC §1.2 for `address`.
    pub fn ownership_labels(&self, address: &str) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(LABEL_MANAGED_BY.into(), "claw".into());
        m.insert(LABEL_STACK.into(), self.stack.clone());
        m.insert(LABEL_ADDRESS.into(), address.into());
        m
    }
}

pub const LABEL_MANAGED_BY: &str = "claw.dev/managed-by";
pub const LABEL_STACK: &str = "claw.dev/stack";
pub const LABEL_ADDRESS: &str = "claw.dev/address";

/// What claw recorded about an object after applying it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StateObject {
    /// The provider's id for the object (container id, path, `ns/name`, ...).
    pub id: String,
    /// The attributes last applied plus computed ones. Secrets as salted hashes.
    #[serde(default)]
    pub attrs: Attrs,
    /// Provider-private bookkeeping (e.g. the field set applied last time).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub private: Attrs,
}

/// Whose object a live object is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Labelled for this stack.
    Stack,
    /// Carries no claw labels: claw must not touch it.
    Unmanaged,
    /// Labelled for another stack (named): claw must not touch it.
    OtherStack(String),
    /// The system has no labels (files, worktrees, sessions, the tailnet ACL):
    /// ownership is decided by the state alone.
    #[default]
    NotApplicable,
}

/// An object as it exists now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LiveObject {
    pub id: String,
    /// Live attributes, in the same shape as the configuration attributes.
    pub attrs: Attrs,
    /// Changes whenever the object changes (resourceVersion, ETag, content
    /// hash, container id + state). Empty: the engine hashes `attrs`.
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub owner: Owner,
}

pub struct ConfigureRequest {
    /// `local`, `mac-mini`, `k3s`, ...
    pub alias: String,
    /// The `[host.x]` / `[provider.x]` attributes, interpolated; secrets as [`Value::Secret`].
    pub attrs: Attrs,
    pub ctx: Ctx,
}

pub struct StateStorageRequest {
    /// The provider alias's attributes.
    pub provider_attrs: Attrs,
    /// The `state = { ... }` table, less `backend` and `provider`.
    pub attrs: Attrs,
    pub ctx: Ctx,
}

/// One configured instance, as validate / prepare / expand see it.
#[derive(Clone, Copy)]
pub struct InstanceRequest<'a> {
    /// `docker_container.sandbox["dev"]`
    pub address: &'a str,
    pub rtype: &'a str,
    /// The resource name (`sandbox`).
    pub name: &'a str,
    /// The `for_each` key (`dev`), if any.
    pub key: Option<&'a str>,
    /// Interpolated attributes (meta-arguments removed). References to
    /// resources not yet created are [`Value::Unknown`].
    pub attrs: &'a Attrs,
    pub ctx: &'a Ctx,
}

/// The request of [`Provider::validate`]: one configured instance.
pub type ValidateRequest<'a> = InstanceRequest<'a>;
/// The request of [`Provider::prepare`]: one (expanded) instance.
pub type PrepareRequest<'a> = InstanceRequest<'a>;
/// The request of [`Provider::expand`]: one configured instance.
pub type ExpandRequest<'a> = InstanceRequest<'a>;

/// A local file a provider read while planning (a `source`, a manifest
/// `file`, a `policy_file`, a build context folder). The engine records it
/// in the plan and refuses a saved plan whose inputs changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Input {
    /// As the user wrote it (relative to the folder of `claw.toml`).
    pub path: String,
    /// [`Ctx::digest`] of what was read: keyed, never a plain hash.
    pub digest: String,
}

impl Input {
    /// The input `path` whose content is `data`.
    pub fn new(ctx: &Ctx, path: impl Into<String>, data: &[u8]) -> Input {
        Input {
            path: path.into(),
            digest: ctx.digest(data),
        }
    }
}

#[derive(Debug, Default)]
pub struct ValidateResponse {
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Default)]
pub struct PrepareResponse {
    /// The desired attributes the plan shows and `apply` receives.
    pub attrs: Attrs,
    /// Every local file read to make `attrs`.
    pub inputs: Vec<Input>,
    pub diagnostics: Vec<Diagnostic>,
}

impl PrepareResponse {
    /// Prepared attributes that read no file.
    pub fn attrs(attrs: Attrs) -> PrepareResponse {
        PrepareResponse {
            attrs,
            ..Default::default()
        }
    }
}

impl From<Result<Attrs, Diagnostic>> for PrepareResponse {
    fn from(r: Result<Attrs, Diagnostic>) -> PrepareResponse {
        r.map_or_else(PrepareResponse::failed, PrepareResponse::attrs)
    }
}

/// One instance an expansion produced, addressed `type.name["key"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    pub key: String,
    pub attrs: Attrs,
}

#[derive(Debug, Default)]
pub struct ExpandResponse {
    /// Empty: the instance is not expanded.
    pub instances: Vec<Expanded>,
    /// Every local file read to expand.
    pub inputs: Vec<Input>,
    pub diagnostics: Vec<Diagnostic>,
}

/// One instance of a provider, as [`Provider::implicit_deps`] sees it
/// (provisional attributes: references unknown).
#[derive(Debug, Clone)]
pub struct DepItem {
    pub address: String,
    pub rtype: String,
    pub attrs: Attrs,
}

pub struct ImplicitDepsRequest {
    /// Every instance this provider alias serves.
    pub items: Vec<DepItem>,
}

/// `dependent` is created after (and deleted before) `dependency`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub dependent: String,
    pub dependency: String,
}

impl Edge {
    pub fn new(dependent: impl Into<String>, dependency: impl Into<String>) -> Edge {
        Edge {
            dependent: dependent.into(),
            dependency: dependency.into(),
        }
    }
}

#[derive(Debug, Default)]
pub struct ImplicitDepsResponse {
    pub edges: Vec<Edge>,
    pub diagnostics: Vec<Diagnostic>,
}

/// `dependent`'s desired value is made with what it reads of other
/// instances of the same provider block (a pod template with the Secrets
/// and ConfigMaps it references): each of `dependencies` is applied first,
/// and the engine hands their attributes to [`Provider::fold_reads`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Read {
    pub dependent: String,
    pub dependencies: Vec<String>,
    /// The attribute path of `dependent` that holds what was made of them
    /// (`spec.template.metadata.annotations["claw.dev/inputs"]`), so that the
    /// plan can say why that path changes.
    pub path: String,
}

#[derive(Debug, Default)]
pub struct ReadsResponse {
    pub reads: Vec<Read>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The request of [`Provider::fold_reads`]: one instance that reads others.
pub struct FoldRequest<'a> {
    pub address: &'a str,
    pub rtype: &'a str,
    /// Its prepared attributes.
    pub attrs: Attrs,
    /// Each read instance's whole attributes, by address, from the one
    /// resolver (its planned value while planning, what the state records
    /// at apply time); [`Value::Unknown`] when not known yet. Secrets are
    /// [`Value::Secret`]: hash them by their keyed hash, never in clear.
    pub reads: Map,
    pub ctx: &'a Ctx,
}

#[derive(Debug, Clone)]
pub struct RefreshItem {
    pub address: String,
    pub rtype: String,
    /// The configured attributes (None when the address is only in state),
    /// shared with the engine, which keeps them for the plan.
    pub desired: Option<Arc<Attrs>>,
    /// The state's object, shared with the state (never copied per request).
    pub prior: Option<Arc<StateObject>>,
    /// Trust nothing recorded about this object (an operation on it was in flight when a run died).
    pub recheck: bool,
}

pub struct RefreshRequest {
    pub ctx: Ctx,
    pub items: Vec<RefreshItem>,
    /// Report objects labelled for this stack that match no item.
    pub find_orphans: bool,
}

#[derive(Debug, Clone)]
pub struct Orphan {
    pub address: String,
    pub rtype: String,
    pub live: LiveObject,
}

#[derive(Debug, Default)]
pub struct RefreshResponse {
    /// One entry per requested address: `None` when the object does not exist.
    pub live: BTreeMap<String, Option<LiveObject>>,
    pub orphans: Vec<Orphan>,
    pub diagnostics: Vec<Diagnostic>,
}

pub struct DiffRequest {
    pub ctx: Ctx,
    pub address: String,
    pub rtype: String,
    pub desired: Attrs,
    /// The object refresh saw, shared with the engine's copy.
    pub live: Arc<LiveObject>,
    pub prior: Option<Arc<StateObject>>,
}

#[derive(Debug, Default)]
pub struct DiffResponse {
    pub changes: Vec<AttrChange>,
    /// Said plainly in the plan when the object is replaced
    /// (e.g. "kills the running session").
    pub replace_note: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
}

pub struct ApplyRequest {
    pub ctx: Ctx,
    pub address: String,
    pub rtype: String,
    pub op: Op,
    /// Fully known desired attributes (Create/Update).
    pub desired: Option<Attrs>,
    pub prior: Option<Arc<StateObject>>,
    /// The live object the plan was made against (its fingerprint is the
    /// precondition, e.g. an ETag).
    pub live: Option<Arc<LiveObject>>,
    pub changes: Vec<AttrChange>,
}

#[derive(Debug, Default)]
pub struct ApplyResponse {
    /// What to record; `None` after a delete.
    pub state: Option<StateObject>,
    pub diagnostics: Vec<Diagnostic>,
}

pub struct ImportRequest {
    pub ctx: Ctx,
    pub address: String,
    pub rtype: String,
    pub id: String,
    pub desired: Option<Attrs>,
}

#[derive(Debug, Default)]
pub struct ImportResponse {
    /// What to record for the adopted object (`None` with an error).
    pub state: Option<StateObject>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ApplyResponse {
    /// A successful operation that leaves `state`.
    pub fn state(state: StateObject) -> ApplyResponse {
        ApplyResponse {
            state: Some(state),
            diagnostics: Vec::new(),
        }
    }
}

impl ImportResponse {
    /// A successful import of `state`.
    pub fn state(state: StateObject) -> ImportResponse {
        ImportResponse {
            state: Some(state),
            diagnostics: Vec::new(),
        }
    }
    /// The imported object, or the first error (a response with neither
    /// is an error too).
    pub fn into_state(self) -> Result<StateObject, Diagnostic> {
        self.into_result()?
            .state
            .ok_or_else(|| Diagnostic::error("the provider imported nothing"))
    }
}

impl From<Result<ApplyResponse, Diagnostic>> for ApplyResponse {
    fn from(r: Result<ApplyResponse, Diagnostic>) -> ApplyResponse {
        r.unwrap_or_else(ApplyResponse::failed)
    }
}

impl From<Result<StateObject, Diagnostic>> for ImportResponse {
    fn from(r: Result<StateObject, Diagnostic>) -> ImportResponse {
        r.map_or_else(ImportResponse::failed, ImportResponse::state)
    }
}

/// A `[check.*]` command to run where the provider runs things (a host).
pub struct RunRequest {
    pub ctx: Ctx,
    /// A POSIX `sh` script; never holds a secret (it is a command line).
    pub command: String,
}

#[derive(Debug, Default)]
pub struct RunResponse {
    /// The exit code (`-1` when killed by a signal).
    pub code: i32,
    /// What it printed, stdout then stderr.
    pub output: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// The diagnostics helpers every response has.
macro_rules! diagnosed {
    ($($t:ty),*) => {$(
        impl $t {
            /// A response carrying only `d` (usually an error).
            #[allow(clippy::needless_update)] // some responses have only diagnostics
            pub fn failed(d: Diagnostic) -> Self {
                Self { diagnostics: vec![d], ..Default::default() }
            }
            /// The first error diagnostic, if any.
            pub fn error(&self) -> Option<&Diagnostic> {
                self.diagnostics.iter().find(|d| d.is_error())
            }
            /// `Err(first error)` when there is one, else the response.
            pub fn into_result(mut self) -> Result<Self, Diagnostic> {
                match self.diagnostics.iter().position(Diagnostic::is_error) {
                    Some(i) => Err(self.diagnostics.swap_remove(i)),
                    None => Ok(self),
                }
            }
        }
    )*};
}

diagnosed!(
    ValidateResponse,
    PrepareResponse,
    ExpandResponse,
    ImplicitDepsResponse,
    ReadsResponse,
    RefreshResponse,
    DiffResponse,
    ApplyResponse,
    ImportResponse,
    RunResponse
);

/// Registered once per provider kind in the `claw` crate.
#[async_trait]
pub trait ProviderFactory: Send + Sync {
    /// `host`, `docker`, `kubernetes`, `tailscale`. Host providers are configured
    /// from `[host.*]`, the others from `[provider.*]` with this `type`.
    fn kind(&self) -> &'static str;
    fn resource_types(&self) -> Vec<ResourceType>;
    /// The shape of the `[provider.x]` / `[host.x]` table (`type` excluded).
    fn config_shape(&self) -> Shape;
    /// Builds a provider for one alias. Must not connect: connections are made
    /// lazily by the first call that needs one.
    fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostic>;
    /// A remote state backend on this provider, when it offers one.
    async fn state_storage(
        &self,
        _req: StateStorageRequest,
    ) -> Result<Box<dyn StateStorage>, Diagnostic> {
        Err(Diagnostic::error(format!(
            "the {} provider cannot hold state",
            self.kind()
        )))
    }
}

/// One configured provider alias (or host). Every call takes one request
/// and returns one response; failures are error diagnostics in it.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Checks one instance's attributes beyond their shape (no IO).
    fn validate(&self, _req: ValidateRequest<'_>) -> ValidateResponse {
        ValidateResponse::default()
    }
    /// Turns configured attributes into the desired attributes that the plan
    /// shows and `apply` receives: fills defaults (a container's default name),
    /// reads `source` files (each reported in `inputs`), wraps values that
    /// must be sensitive in [`Value::Secret`] (a file with `sensitive = true`).
    /// No network IO. The default returns the attributes unchanged.
    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        PrepareResponse::attrs(req.attrs.clone())
    }
    /// Splits one instance into several (`k8s_manifest`: one per document).
    /// No instances: no expansion. Expanded instances are addressed
    /// `type.name["key"]` (with `for_each`: `type.name["each_key/key"]`);
    /// each then goes through `prepare`. Files read are reported in `inputs`.
    fn expand(&self, _req: ExpandRequest<'_>) -> ExpandResponse {
        ExpandResponse::default()
    }
    /// Ordering edges among this provider's instances beyond references
    /// (Namespace before the objects in it).
    fn implicit_deps(&self, _req: ImplicitDepsRequest) -> ImplicitDepsResponse {
        ImplicitDepsResponse::default()
    }
    /// Instances whose desired value is made with what they read of other
    /// instances of this provider block ([`Read`]). The default: none.
    fn reads(&self, _req: &ImplicitDepsRequest) -> ReadsResponse {
        ReadsResponse::default()
    }
    /// Folds what an instance reads ([`Provider::reads`]) into its prepared
    /// attributes (a keyed digest, with [`Ctx::digest`]). No IO. The
    /// default returns the attributes unchanged.
    fn fold_reads(&self, req: FoldRequest<'_>) -> PrepareResponse {
        PrepareResponse::attrs(req.attrs)
    }
    /// Reads live state for many instances at once (one list per kind).
    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse;
    /// Compares desired with live. The default compares configured attributes only.
    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        DiffResponse {
            changes: generic_diff(&req.desired, &req.live.attrs, &[]),
            ..Default::default()
        }
    }
    /// Creates, updates or deletes one object. A failure is an error
    /// diagnostic in the response ([`ApplyResponse::failed`]).
    async fn apply(&self, req: ApplyRequest) -> ApplyResponse;
    /// Adopts an existing object (and labels it where the system allows).
    async fn import(&self, req: ImportRequest) -> ImportResponse {
        ImportResponse::failed(Diagnostic::error(format!(
            "{} does not support import",
            req.rtype
        )))
    }
    /// Runs a `[check.*]` command (host providers). A command that ran and
    /// failed is a response with its non-zero `code`; an error diagnostic
    /// means it could not be run.
    async fn run(&self, _req: RunRequest) -> RunResponse {
        RunResponse::failed(Diagnostic::error(
            "this provider cannot run commands; a check's `host` names a [host.*]",
        ))
    }
    /// The live object each instance claims, normalised so that two
    /// addresses claiming one object are found before planning (SPEC §1.1a):
    /// a file's absolute path (lexically, and through existing symlinked
    /// parents), a tmux socket and session, a worktree path, a container
    /// name, a Kubernetes apiVersion/kind/namespace/name. An item the
    /// provider cannot name (unknown attributes) is left out. The default
    /// names nothing.
    fn identities(&self, _req: IdentityRequest<'_>) -> IdentityResponse {
        IdentityResponse::default()
    }
    /// Counters for `-v` (e.g. `("ssh round trips", 3)`, `("docker api calls", 4)`).
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// One instance whose identity is asked: its planned attributes (what apply
/// would send, with what the plan keeps of the live object), or the
/// attributes the state records. Borrowed: naming an object copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct IdentityItem<'a> {
    pub address: &'a str,
    pub rtype: &'a str,
    pub attrs: &'a Attrs,
}

pub struct IdentityRequest<'a> {
    pub ctx: Ctx,
    pub items: Vec<IdentityItem<'a>>,
}

#[derive(Debug, Default)]
pub struct IdentityResponse {
    /// `(address, identity)`; identities are compared across all providers,
    /// so each starts with its kind (`file:host.local:/abs/path`).
    pub identities: Vec<(String, String)>,
    pub diagnostics: Vec<Diagnostic>,
}
