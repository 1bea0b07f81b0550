//! claw's Kubernetes provider: `k8s_manifest` and `k8s_secret`, applied by
//! server-side apply with field manager `claw`, and the `kubernetes` state
//! backend (a Secret plus a coordination.k8s.io Lease).
//!
//! Invariants:
//! - **claw never updates or deletes an object without this stack's labels**
//!   (`claw.dev/managed-by=claw`, `claw.dev/stack=<stack>`).
//! - **Only the fields claw sets are compared**: server defaults, status,
//!   managedFields and other managers' fields are never drift.
//! - Refresh lists each kind in use once (label selector), with discovery
//!   cached for the run; see `docs/providers/kubernetes.md`.

// Diagnostics are the SDK's error type; boxing them would not help callers.
#![allow(clippy::result_large_err)]

mod apply;
pub mod client;
mod identity;
mod k8s_manifest;
mod k8s_secret;
mod live;
pub mod manifest;
mod provider;
mod readiness;
mod refresh;
pub mod rollout;
mod ssa;
pub mod state;

use claw_provider::{
    ConfigureRequest, Diagnostic, Provider, ProviderFactory, ResourceType, Shape, StateStorage,
    StateStorageRequest, Value,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use provider::KubeProvider;

/// `[provider.x]` with `type = "kubernetes"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Path of the kubeconfig (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    pub kubeconfig: Option<String>,
    /// The kubeconfig context (default: its current context).
    pub context: Option<String>,
    /// Default namespace for namespaced objects that name none.
    pub namespace: Option<String>,
}

/// How long-running objects are waited for after apply.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// Deployments, StatefulSets, DaemonSets: all replicas updated and available.
    Rollout,
    /// Jobs: the Complete condition.
    Complete,
}

/// `[k8s_manifest.<name>]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestConfig {
    /// A YAML file (relative to claw.toml) with one or many documents.
    pub file: Option<String>,
    /// An inline manifest (one document).
    pub manifest: Option<BTreeMap<String, serde_json::Value>>,
    /// Values for `${name}` placeholders in the YAML file.
    pub vars: Option<BTreeMap<String, serde_json::Value>>,
    /// Take over fields another field manager owns (server-side apply `force`).
    pub force_conflicts: Option<bool>,
    /// Wait after apply: "rollout" (Deployment, StatefulSet, DaemonSet) or "complete" (Job).
    pub wait: Option<WaitFor>,
    /// How long to wait: "5m", "90s" (default 5m).
    pub wait_timeout: Option<String>,
    /// Roll pod templates when the Secrets and ConfigMaps of this stack they
    /// reference change (the `claw.dev/inputs` annotation; default true).
    pub rollout: Option<bool>,
}

/// `state = { backend = "kubernetes", provider = "...", ... }`: the keys
/// `state::KubeStateStorage` reads (see docs/providers/kubernetes.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StateBackendConfig {
    namespace: Option<String>,
    secret: Option<String>,
    lease: Option<String>,
    lease_seconds: Option<u64>,
}

/// A secret value: a literal, `{ env = "NAME" }` or `{ file = "path" }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretValue {
    Literal(String),
    Env(EnvRef),
    File(FileRef),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvRef {
    pub env: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub file: String,
}

/// `[k8s_secret.<name>]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretConfig {
    /// Default: the provider's namespace.
    pub namespace: Option<String>,
    /// Default: the resource name (`<name>-<key>` with for_each).
    pub name: Option<String>,
    /// Secret type (default `Opaque`).
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    /// Keys and values; values are always sensitive.
    pub data: BTreeMap<String, SecretValue>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

pub struct KubeFactory;

/// The factory the `claw` crate registers.
pub fn factory() -> Arc<dyn ProviderFactory> {
    Arc::new(KubeFactory)
}

pub(crate) fn settings_of(
    attrs: &claw_provider::Attrs,
    base: &std::path::Path,
) -> client::Settings {
    let s = |k: &str| {
        attrs
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    client::Settings {
        kubeconfig: s("kubeconfig").map(|p| {
            let p = if let Some(rest) = p.strip_prefix("~/") {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_default()
                    .join(rest)
            } else {
                PathBuf::from(p)
            };
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        }),
        context: s("context"),
        namespace: s("namespace"),
    }
}

#[async_trait::async_trait]
impl ProviderFactory for KubeFactory {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn resource_types(&self) -> Vec<ResourceType> {
        vec![
            ResourceType {
                name: "k8s_manifest",
                description: "Kubernetes objects from a YAML file (one instance per document) or an inline manifest, applied by server-side apply",
                shape: Shape::of::<ManifestConfig>(),
                computed: &["id", "uid"],
            },
            ResourceType {
                name: "k8s_secret",
                description: "A Kubernetes Secret whose values are always sensitive",
                shape: Shape::of::<SecretConfig>(),
                computed: &["id", "uid"],
            },
        ]
    }

    fn config_shape(&self) -> Shape {
        Shape::of::<ProviderConfig>()
    }

    fn configure(&self, req: ConfigureRequest) -> Result<Arc<dyn Provider>, Diagnostic> {
        let settings = settings_of(&req.attrs, &req.ctx.base_dir);
        Ok(Arc::new(KubeProvider::new(req.alias, settings)))
    }

    async fn state_storage(
        &self,
        req: StateStorageRequest,
    ) -> Result<Box<dyn StateStorage>, Diagnostic> {
        let keys = serde_json::Value::Object(
            req.attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        );
        claw_provider::check_typed::<StateBackendConfig>(&keys)
            .map_err(|e| Diagnostic::error(e.message).with_attr(e.path))?;
        let settings = settings_of(&req.provider_attrs, &req.ctx.base_dir);
        Ok(Box::new(state::KubeStateStorage::new(
            Arc::new(client::Cluster::new(settings)),
            &req.attrs,
            &req.ctx,
        )))
    }
}
