//! The connection to one cluster: kubeconfig / in-cluster config, raw API
//! requests (counted), Status errors and cached discovery.

use claw_provider::Diagnostic;
use http::{Method, Request};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Where to find the cluster: `[provider.x]` attributes.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

/// A Status error from the API server, or a transport/config failure.
#[derive(Debug, Clone)]
pub enum ApiError {
    Status {
        code: u16,
        reason: String,
        message: String,
        /// (reason, message, field)
        causes: Vec<(String, String, String)>,
    },
    Other(String),
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Status { code, .. } => *code,
            ApiError::Other(_) => 0,
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            ApiError::Status { reason, .. } => reason,
            ApiError::Other(_) => "",
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.code() == 404
    }
    pub fn message(&self) -> String {
        match self {
            ApiError::Status {
                message,
                reason,
                code,
                ..
            } => {
                if message.is_empty() {
                    format!("{code} {reason}")
                } else {
                    message.clone()
                }
            }
            ApiError::Other(m) => m.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// One kind as discovery reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRes {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiRes {
    pub fn base(api_version: &str) -> String {
        if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        }
    }
    /// The collection path; `ns` empty: all namespaces (or cluster-scoped).
    pub fn collection(&self, ns: &str) -> String {
        if self.namespaced && !ns.is_empty() {
            format!(
                "{}/namespaces/{}/{}",
                Self::base(&self.api_version),
                ns,
                self.plural
            )
        } else {
            format!("{}/{}", Self::base(&self.api_version), self.plural)
        }
    }
    pub fn item(&self, ns: &str, name: &str) -> String {
        format!("{}/{}", self.collection(ns), name)
    }
}

pub struct Conn {
    pub client: kube::Client,
    /// The API server URL (for messages).
    pub url: String,
}

/// A lazily connected cluster, shared by a provider alias and its state backend.
pub struct Cluster {
    pub settings: Settings,
    conn: OnceCell<Conn>,
    requests: Arc<AtomicU64>,
    discovery: Mutex<HashMap<String, Arc<Vec<ApiRes>>>>,
    default_ns: std::sync::OnceLock<String>,
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Cluster {
    pub fn new(settings: Settings) -> Cluster {
        Cluster {
            settings,
            conn: OnceCell::new(),
            requests: Arc::new(AtomicU64::new(0)),
            discovery: Mutex::new(HashMap::new()),
            default_ns: std::sync::OnceLock::new(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn kubeconfig_path(&self) -> Option<PathBuf> {
        self.settings.kubeconfig.clone()
    }

    /// The namespace for namespaced objects that name none: the provider's
    /// `namespace`, else the kubeconfig context's, else the in-cluster
    /// service account's, else `default`. Reads local files only.
    pub fn default_namespace(&self) -> String {
        self.default_ns
            .get_or_init(|| {
                if let Some(ns) = &self.settings.namespace {
                    return ns.clone();
                }
                let kc = match self.kubeconfig_path() {
                    Some(p) => Kubeconfig::read_from(p).ok(),
                    None => Kubeconfig::read().ok(),
                };
                if let Some(kc) = kc {
                    let ctx_name = self.settings.context.clone().or(kc.current_context.clone());
                    if let Some(ns) = kc
                        .contexts
                        .iter()
                        .find(|c| Some(&c.name) == ctx_name.as_ref())
                        .and_then(|c| c.context.as_ref())
                        .and_then(|c| c.namespace.clone())
                    {
                        return ns;
                    }
                    return "default".into();
                }
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "default".into())
            })
            .clone()
    }

    async fn connect(&self) -> Result<Conn, Diagnostic> {
        let options = KubeConfigOptions {
            context: self.settings.context.clone(),
            cluster: None,
            user: None,
        };
        let config = match self.kubeconfig_path() {
            Some(p) => {
                let kc = Kubeconfig::read_from(&p).map_err(|e| {
                    Diagnostic::error(format!("cannot read kubeconfig {}: {e}", p.display()))
                        .with_hint("set `kubeconfig = \"...\"` on the provider to an existing file")
                })?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| {
                        Diagnostic::error(format!("kubeconfig {}: {e}", p.display())).with_hint(
                            "check `context` on the provider against `kubectl config get-contexts`",
                        )
                    })?
            }
            None => match kube::Config::from_kubeconfig(&options).await {
                Ok(c) => c,
                Err(kerr) => {
                    if self.settings.context.is_some() {
                        return Err(Diagnostic::error(format!("kubeconfig: {kerr}")).with_hint(
                            "check `context` on the provider against `kubectl config get-contexts`",
                        ));
                    }
                    kube::Config::incluster().map_err(|ierr| {
                        Diagnostic::error("no Kubernetes cluster configured")
                            .with_detail(format!("kubeconfig: {kerr}\nin-cluster: {ierr}"))
                            .with_hint("set KUBECONFIG, or `kubeconfig`/`context` on the provider")
                    })?
                }
            },
        };
        let url = config.cluster_url.to_string();
        let counter = self.requests.clone();
        let layer = tower::util::MapRequestLayer::new(move |r: Request<kube::client::Body>| {
            counter.fetch_add(1, Ordering::Relaxed);
            r
        });
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| Diagnostic::error(format!("cannot build a Kubernetes client: {e}")))?
            .with_layer(&layer)
            .build();
        Ok(Conn { client, url })
    }

    pub async fn conn(&self) -> Result<&Conn, Diagnostic> {
        self.conn.get_or_try_init(|| self.connect()).await
    }

    /// One API request. `body`: (content type, bytes).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        accept: Option<&str>,
    ) -> Result<Value, ApiError> {
        let conn = self
            .conn()
            .await
            .map_err(|d| ApiError::Other(d.to_string()))?;
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = accept {
            b = b.header("accept", a);
        }
        let bytes = match body {
            Some((ct, bytes)) => {
                b = b.header("content-type", ct);
                bytes
            }
            None => Vec::new(),
        };
        let req = b.body(bytes).map_err(|e| ApiError::Other(e.to_string()))?;
        match conn.client.request::<Value>(req).await {
            Ok(v) => Ok(v),
            Err(kube::Error::Api(s)) => Err(ApiError::Status {
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
                causes: s
                    .details
                    .as_ref()
                    .map(|d| {
                        d.causes
                            .iter()
                            .map(|c| (c.reason.clone(), c.message.clone(), c.field.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Err(e) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    let t = s.to_string();
                    if !msg.contains(&t) {
                        msg.push_str(": ");
                        msg.push_str(&t);
                    }
                    src = s.source();
                }
                Err(ApiError::Other(format!(
                    "cannot reach the Kubernetes API at {}: {msg}",
                    conn.url.trim_end_matches('/')
                )))
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.call(Method::GET, path, None, None).await
    }

    /// `GET`, with `None` for 404.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The kinds of one group version (cached for the run); `None` when the
    /// server does not serve it (yet: a CRD not created).
    pub async fn resources(&self, api_version: &str) -> Result<Option<Arc<Vec<ApiRes>>>, ApiError> {
        if let Some(r) = self.discovery.lock().expect("discovery").get(api_version) {
            return Ok(Some(r.clone()));
        }
        let v = match self.get(&ApiRes::base(api_version)).await {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let list: Vec<ApiRes> = v
            .get("resources")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let name = r.get("name")?.as_str()?;
                        if name.contains('/') {
                            return None;
                        }
                        Some(ApiRes {
                            api_version: api_version.to_string(),
                            kind: r.get("kind")?.as_str()?.to_string(),
                            plural: name.to_string(),
                            namespaced: r
                                .get("namespaced")
                                .and_then(Value::as_bool)
                                .unwrap_or(true),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let list = Arc::new(list);
        self.discovery
            .lock()
            .expect("discovery")
            .insert(api_version.to_string(), list.clone());
        Ok(Some(list))
    }

    /// Resolves a kind, `None` when the server does not serve it.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<ApiRes>, ApiError> {
        Ok(self
            .resources(api_version)
            .await?
            .and_then(|l| l.iter().find(|r| r.kind == kind).cloned()))
    }

    /// Forgets a cached group version (after a CRD became Established).
    pub fn forget(&self, api_version: &str) {
        self.discovery
            .lock()
            .expect("discovery")
            .remove(api_version);
    }
}
