//! The `Provider` for one `[provider.x]` alias: a thin dispatch to the
//! resource types (`k8s_manifest.rs`, `k8s_secret.rs`), refresh
//! (`refresh.rs`) and apply (`apply.rs`, `ssa.rs`, `readiness.rs`), with the
//! helpers they share.

use crate::client::{ApiError, Cluster, Settings};
use crate::manifest::{ObjRef, OPTION_KEYS};
use crate::{k8s_manifest, k8s_secret, rollout};
use claw_provider::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) const MANIFEST: &str = "k8s_manifest";
pub(crate) const SECRET: &str = "k8s_secret";
pub(crate) const FIELD_MANAGER: &str = "claw";
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub struct KubeProvider {
    alias: String,
    pub(crate) cluster: Arc<Cluster>,
    /// What this run's refresh lists showed, by object key: apply then
    /// creates without a GET what the lists showed absent, and deletes
    /// without a GET what they showed to be this stack's.
    pub(crate) seen: Mutex<HashMap<String, Seen>>,
}

/// One object as this run's lists showed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seen {
    /// Listed, and not there (or its kind is not served).
    Absent,
    /// Listed with this stack's labels, with this uid.
    Mine { uid: String },
}

impl KubeProvider {
    pub fn new(alias: String, settings: Settings) -> KubeProvider {
        KubeProvider {
            alias,
            cluster: Arc::new(Cluster::new(settings)),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records what a list (or an operation of this run) showed of `key`.
    pub(crate) fn remember(&self, key: String, seen: Seen) {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, seen);
    }

    /// What this run knows of `key` without asking the server.
    pub(crate) fn known(&self, key: &str) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// The cluster connection (shared with tests and the state backend).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub(crate) fn default_ns(&self) -> String {
        self.cluster.default_namespace()
    }
}

pub(crate) fn attr_str<'a>(a: &'a Attrs, k: &str) -> Option<&'a str> {
    a.get(k).and_then(Value::as_str)
}

/// The object an instance stands for.
pub(crate) fn ident(rtype: &str, attrs: &Attrs) -> Option<ObjRef> {
    match rtype {
        SECRET => Some(ObjRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: attr_str(attrs, "namespace")?.to_string(),
            name: attr_str(attrs, "name")?.to_string(),
        }),
        _ => ObjRef::of_doc(attrs),
    }
}

pub(crate) fn doc_of(attrs: &Attrs) -> Attrs {
    attrs
        .iter()
        .filter(|(k, _)| !OPTION_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    humantime::parse_duration(s.trim()).ok()
}

pub(crate) fn api_diag(address: &str, what: &str, e: &ApiError) -> Diagnostic {
    let mut d = Diagnostic::error(format!("{what}: {}", e.message())).with_address(address);
    match e.reason() {
        "NotFound" if e.message().starts_with("namespaces ") => {
            d = d.with_hint("declare the Namespace in the configuration (claw creates Namespaces before the objects in them) or create it first");
        }
        "Forbidden" => d = d.with_hint("the kubeconfig user lacks RBAC permission for this"),
        "Unauthorized" => {
            d = d.with_hint("the cluster refused the kubeconfig's credentials (expired token or certificate?); check with `kubectl auth whoami`")
        }
        "Invalid" => {
            if let ApiError::Status { causes, .. } = e {
                let lines: Vec<String> = causes.iter().map(|(_, m, f)| format!("{f}: {m}")).collect();
                if !lines.is_empty() {
                    d = d.with_detail(lines.join("\n"));
                }
            }
            d = d.with_hint("fix the manifest; the API server refused it");
        }
        "" => d = d.with_hint("check that the cluster is reachable (kubectl cluster-info) with the same kubeconfig and context"),
        _ => {}
    }
    d
}

#[async_trait::async_trait]
impl Provider for KubeProvider {
    fn validate(&self, req: ValidateRequest<'_>) -> ValidateResponse {
        let diagnostics = match req.rtype {
            MANIFEST => k8s_manifest::validate(&req),
            SECRET => k8s_secret::validate(&req),
            _ => Vec::new(),
        };
        ValidateResponse { diagnostics }
    }

    fn expand(&self, req: ExpandRequest<'_>) -> ExpandResponse {
        match req.rtype {
            MANIFEST => k8s_manifest::expand(&req, &self.default_ns()),
            _ => ExpandResponse::default(),
        }
    }

    fn prepare(&self, req: PrepareRequest<'_>) -> PrepareResponse {
        PrepareResponse::attrs(match req.rtype {
            SECRET => k8s_secret::prepare(&req, &self.default_ns()),
            MANIFEST => k8s_manifest::prepare(&req),
            _ => req.attrs.clone(),
        })
    }

    fn implicit_deps(&self, req: ImplicitDepsRequest) -> ImplicitDepsResponse {
        let ns = self.default_ns();
        let mut edges = k8s_manifest::implicit_edges(&req.items, &ns);
        edges.extend(rollout::links(&req.items, &ns).0);
        ImplicitDepsResponse {
            edges,
            diagnostics: Vec::new(),
        }
    }

    fn reads(&self, req: &ImplicitDepsRequest) -> ReadsResponse {
        ReadsResponse {
            reads: rollout::links(&req.items, &self.default_ns()).1,
            diagnostics: Vec::new(),
        }
    }

    fn fold_reads(&self, req: FoldRequest<'_>) -> PrepareResponse {
        match req.rtype {
            MANIFEST => rollout::fold(req),
            _ => PrepareResponse::attrs(req.attrs),
        }
    }

    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        self.refresh_all(req).await
    }

    async fn diff(&self, req: DiffRequest) -> DiffResponse {
        match req.rtype.as_str() {
            SECRET => k8s_secret::diff(&req),
            _ => self.diff_manifest(&req).await,
        }
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        self.apply_op(req).await.into()
    }

    async fn import(&self, req: ImportRequest) -> ImportResponse {
        self.import_object(req).await.into()
    }

    fn identities(&self, req: IdentityRequest) -> IdentityResponse {
        crate::identity::identities(&self.alias, req.items)
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("kubernetes api requests".into(), self.cluster.requests())]
    }
}
