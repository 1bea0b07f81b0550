//! A Kubernetes API server double, shaped like the real server, for claw's tests.
//!
//! [`KubeApiDouble::start`] serves plain HTTP on a loopback port from its own
//! thread; point a kubeconfig at [`KubeApiDouble::url`] (see
//! [`KubeApiDouble::kubeconfig`]). It implements:
//!
//! - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`;
//! - create / get / list / replace / patch / delete (and delete-collection) for the
//!   core, apps, batch, networking.k8s.io, rbac, apiextensions, coordination.k8s.io
//!   and policy kinds, and for custom resources once their CRD exists (CRDs are
//!   Established at once);
//! - label selectors (equality- and set-based), `metadata.name`/`metadata.namespace`
//!   field selectors, metadata-only lists (`as=PartialObjectMetadataList`);
//! - uid, resourceVersion (a no-op write keeps it), generation, 409 Conflict on a
//!   stale resourceVersion, 409 AlreadyExists;
//! - JSON merge patch, strategic merge patch (lists of named objects merged by
//!   name), JSON patch, and server-side apply (`application/apply-patch+yaml`)
//!   with fieldManager, managedFields (FieldsV1), conflicts (409 naming the other
//!   manager and the fields) and `force=true`; updates take ownership of the
//!   fields they change, as on a real server;
//! - `dryRun=All`; Status error bodies with real reasons (NotFound, AlreadyExists,
//!   Conflict, Invalid, BadRequest, MethodNotAllowed, UnsupportedMediaType);
//! - namespaces (objects need their namespace; deleting one deletes its objects),
//!   server-side defaults (Deployment replicas/strategy/revisionHistoryLimit, pod
//!   terminationGracePeriodSeconds, imagePullPolicy, Service clusterIP, ...) and
//!   simulated controllers that mark Deployments rolled out and Jobs complete;
//! - a request counter and log ([`KubeApiDouble::requests`]).

pub mod fields;
pub mod selector;
pub mod tls;
pub mod types;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use fields::{field_set, Path, Seg};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use types::ResType;

#[derive(Debug, Clone)]
struct Manager {
    manager: String,
    operation: &'static str,
    api_version: String,
    time: String,
    fields: BTreeSet<Path>,
}

#[derive(Debug, Clone)]
struct Stored {
    obj: Value,
    managers: Vec<Manager>,
}

#[derive(Default)]
struct Store {
    /// Refuse cluster-wide lists of namespaced kinds with 403, like a user
    /// whose RBAC is namespace-scoped.
    forbid_cluster_lists: bool,
    /// How long the simulated controllers take to roll out a changed
    /// Deployment/StatefulSet/DaemonSet or complete a Job (0: at once).
    rollout_delay: std::time::Duration,
    /// Workloads waiting for their controller: (kind key, (ns, name), when).
    pending_rollouts: Vec<(String, (String, String), std::time::Instant)>,
    /// How long a new CRD stays not Established (0: at once).
    crd_delay: std::time::Duration,
    /// CRDs waiting to become Established: (name, when).
    pending: Vec<(String, std::time::Instant)>,
    types: Vec<ResType>,
    /// `group/plural` → (namespace, name) → object.
    objects: BTreeMap<String, BTreeMap<(String, String), Stored>>,
    rv: u64,
}

struct Shared {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    bearer: Mutex<Option<String>>,
    store: Mutex<Store>,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
    addr: Mutex<Option<SocketAddr>>,
}

/// A running double. Dropping it stops the server.
pub struct KubeApiDouble {
    addr: SocketAddr,
    /// PEMs for the kubeconfig when serving TLS.
    tls: Option<(String, String, String)>,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn key(rt: &ResType) -> String {
    format!("{}/{}", rt.group, rt.plural)
}

impl KubeApiDouble {
    /// Starts a double on `127.0.0.1` with a free port.
    pub fn start() -> std::io::Result<KubeApiDouble> {
        Self::start_on("127.0.0.1:0".parse().expect("addr"))
    }

    /// Starts a double on a given address (port 0: any free port).
    pub fn start_on(addr: SocketAddr) -> std::io::Result<KubeApiDouble> {
        Self::serve(addr, None)
    }

    /// Starts a double that serves HTTPS with a private CA and requires a
    /// client certificate (mutual TLS, as k3s does); [`KubeApiDouble::kubeconfig`]
    /// then carries the CA and the client certificate and key.
    pub fn start_tls() -> std::io::Result<KubeApiDouble> {
        Self::serve("127.0.0.1:0".parse().expect("addr"), Some(tls::generate()?))
    }

    pub fn start_tls_on(addr: SocketAddr) -> std::io::Result<KubeApiDouble> {
        Self::serve(addr, Some(tls::generate()?))
    }

    fn serve(addr: SocketAddr, tls: Option<tls::TlsMaterial>) -> std::io::Result<KubeApiDouble> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            bearer: Mutex::new(None),
            store: Mutex::new(Store::new()),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            addr: Mutex::new(Some(addr)),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let pems = tls.as_ref().map(|t| {
            (
                t.ca_pem.clone(),
                t.client_cert_pem.clone(),
                t.client_key_pem.clone(),
            )
        });
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config));
        let thread = std::thread::Builder::new()
            .name(format!("kube-api-double-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    match acceptor {
                        None => {
                            let _ = axum::serve(listener, app)
                                .with_graceful_shutdown(async move {
                                    let _ = rx.await;
                                })
                                .await;
                        }
                        Some(acceptor) => {
                            let accept_loop = async move {
                                loop {
                                    let Ok((tcp, _)) = listener.accept().await else {
                                        continue;
                                    };
                                    let acceptor = acceptor.clone();
                                    let app = app.clone();
                                    tokio::spawn(async move {
                                        // A handshake without a valid client certificate fails here.
                                        let Ok(stream) = acceptor.accept(tcp).await else {
                                            return;
                                        };
                                        let svc =
                                            hyper_util::service::TowerToHyperService::new(app);
                                        let _ = hyper::server::conn::http1::Builder::new()
                                            .serve_connection(
                                                hyper_util::rt::TokioIo::new(stream),
                                                svc,
                                            )
                                            .await;
                                    });
                                }
                            };
                            tokio::select! {
                                _ = accept_loop => {}
                                _ = rx => {}
                            }
                        }
                    }
                });
            })?;
        Ok(KubeApiDouble {
            addr,
            tls: pems,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` when serving TLS)
    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.0.as_str())
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request served so far, as `METHOD /path?query`.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().expect("log").clone()
    }

    pub fn reset_requests(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.log.lock().expect("log").clear();
    }

    /// A kubeconfig (YAML) with one context `double` pointing at this server.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let (ca, user) = match &self.tls {
            Some((ca, cert, key)) => (
                format!("    certificate-authority-data: {}\n", b64(ca)),
                format!(
                    "    client-certificate-data: {}\n    client-key-data: {}\n",
                    b64(cert),
                    b64(key)
                ),
            ),
            None => (String::new(), "    token: double-token\n".to_string()),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: double\n  cluster:\n    server: {}\n{ca}contexts:\n- name: double\n  context:\n    cluster: double\n    user: double\n    namespace: {}\ncurrent-context: double\nusers:\n- name: double\n  user:\n{user}",
            self.url(),
            namespace
        )
    }

    /// Reads an object directly (no request counted).
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.shared.store.lock().expect("store");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let rt = st
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)?;
        let s = st
            .objects
            .get(&key(rt))?
            .get(&(namespace.to_string(), name.to_string()))?;
        Some(st.render(rt, s, api_version))
    }

    /// All objects (of every kind) whose labels match a selector, as
    /// `apiVersion/Kind/namespace/name`.
    pub fn find_labelled(&self, selector: &str) -> Vec<String> {
        let reqs = selector::parse(selector).expect("selector");
        let st = self.shared.store.lock().expect("store");
        let mut out = Vec::new();
        for rt in &st.types {
            if let Some(objs) = st.objects.get(&key(rt)) {
                for ((ns, name), s) in objs {
                    if selector::matches(&reqs, &selector::labels_of(&s.obj)) {
                        out.push(format!(
                            "{}/{}/{}/{}",
                            rt.gv(&rt.versions[0]),
                            rt.kind,
                            ns,
                            name
                        ));
                    }
                }
            }
        }
        out
    }

    /// Makes the simulated controllers take `d` to roll out a changed
    /// workload or complete a Job (until then its status says not ready).
    pub fn set_rollout_delay(&self, d: std::time::Duration) {
        self.shared.store.lock().expect("store").rollout_delay = d;
    }

    /// Makes new CRDs become Established only after `d` (their kinds are not
    /// served until then), as on a real server under load.
    pub fn set_crd_establish_delay(&self, d: std::time::Duration) {
        self.shared.store.lock().expect("store").crd_delay = d;
    }

    /// Answers cluster-wide lists of namespaced kinds with 403 Forbidden, as
    /// for a user with namespace-scoped RBAC.
    pub fn forbid_cluster_wide_lists(&self, forbid: bool) {
        self.shared
            .store
            .lock()
            .expect("store")
            .forbid_cluster_lists = forbid;
    }

    /// Requires `Authorization: Bearer <token>` on every request (401
    /// Unauthorized otherwise), as a real server authenticates tokens.
    pub fn require_bearer_token(&self, token: &str) {
        *self.shared.bearer.lock().expect("bearer") = Some(token.to_string());
    }

    /// Replaces an object's status as a controller does (the status
    /// subresource: resourceVersion changes, generation does not).
    pub fn put_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<(), String> {
        let mut st = self.shared.store.lock().expect("store");
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let rt = st
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
            .ok_or_else(|| format!("no kind {kind} in {api_version}"))?;
        st.rv += 1;
        let rv = st.rv;
        let s = st
            .objects
            .get_mut(&key(&rt))
            .and_then(|m| m.get_mut(&(namespace.to_string(), name.to_string())))
            .ok_or_else(|| format!("{kind} {namespace}/{name} not found"))?;
        s.obj["status"] = status;
        s.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        Ok(())
    }

    /// Stores an object as another client would (an `Update` by `manager`).
    pub fn put_object(&self, manager: &str, obj: Value) -> Result<Value, String> {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1")
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut st = self.shared.store.lock().expect("store");
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        let rt = st
            .types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
            .ok_or_else(|| format!("no kind {kind} in {api_version}"))?;
        let ns = if rt.namespaced {
            obj.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let version = api_version.rsplit('/').next().unwrap_or("v1").to_string();
        st.write(
            &rt,
            &version,
            &ns,
            &name,
            obj,
            WriteOp::Update(manager.to_string()),
            false,
        )
        .map_err(|e| e.to_string())
    }
}

impl Drop for KubeApiDouble {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An error answered as a Status body.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: Value::Null,
        }
    }
    fn not_found(rt: &ResType, name: &str) -> ApiError {
        ApiError {
            details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
            ..ApiError::new(
                404,
                "NotFound",
                format!("{} {:?} not found", rt.qualified(), name),
            )
        }
    }
    fn body(&self) -> Value {
        let mut v = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if !self.details.is_null() {
            v["details"] = self.details.clone();
        }
        v
    }
}

fn respond(code: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

enum WriteOp {
    Create(String),
    Update(String),
    Apply { manager: String, force: bool },
}

impl Store {
    fn new() -> Store {
        let mut st = Store {
            types: types::builtin(),
            ..Default::default()
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = st.types[0].clone();
            let _ = st.write(
                &rt,
                "v1",
                "",
                ns,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                WriteOp::Create("kube-apiserver".into()),
                false,
            );
        }
        st
    }

    fn render(&self, rt: &ResType, s: &Stored, api_version: &str) -> Value {
        let mut o = s.obj.clone();
        o["apiVersion"] = json!(api_version);
        o["kind"] = json!(rt.kind);
        let mf: Vec<Value> = s
            .managers
            .iter()
            .map(|m| {
                json!({
                    "manager": m.manager, "operation": m.operation, "apiVersion": m.api_version,
                    "time": m.time, "fieldsType": "FieldsV1", "fieldsV1": fields::fields_v1(&m.fields),
                })
            })
            .collect();
        if let Some(md) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            md.insert("managedFields".into(), Value::Array(mf));
        }
        o
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects
            .get("/namespaces")
            .map(|m| m.contains_key(&(String::new(), ns.to_string())))
            .unwrap_or(false)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        rt: &ResType,
        version: &str,
        ns: &str,
        name: &str,
        mut body: Value,
        op: WriteOp,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let api_version = rt.gv(version);
        if !body.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "the body of the request was not an object",
            ));
        }
        // Identity: the path wins; a contradicting body is refused.
        let md = body
            .as_object_mut()
            .expect("object")
            .entry("metadata")
            .or_insert(json!({}));
        if !md.is_object() {
            return Err(ApiError::new(
                400,
                "BadRequest",
                "metadata must be an object",
            ));
        }
        let body_ns = md
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
        if rt.namespaced {
            if let Some(bns) = &body_ns {
                if bns != ns {
                    return Err(ApiError::new(400, "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request"));
                }
            }
            md["namespace"] = json!(ns);
        } else if let Some(m) = md.as_object_mut() {
            m.remove("namespace");
        }
        let body_name = md.get("name").and_then(Value::as_str).map(str::to_string);
        let name = match (name.is_empty(), body_name) {
            (true, Some(n)) => n,
            (true, None) => {
                if let Some(g) = md.get("generateName").and_then(Value::as_str) {
                    format!("{g}{}", &uuid::Uuid::new_v4().simple().to_string()[..5])
                } else {
                    return Err(ApiError {
                        details: json!({"kind": rt.kind, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]}),
                        ..ApiError::new(422, "Invalid", format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", rt.kind_qualified()))
                    });
                }
            }
            (false, Some(n)) if n != name => {
                return Err(ApiError::new(
                    400,
                    "BadRequest",
                    format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    ),
                ));
            }
            (false, _) => name.to_string(),
        };
        md["name"] = json!(name);
        if rt.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError {
                details: json!({"name": ns, "kind": "namespaces"}),
                ..ApiError::new(404, "NotFound", format!("namespaces {ns:?} not found"))
            });
        }
        let k = key(rt);
        let id = (ns.to_string(), name.clone());
        let old = self.objects.get(&k).and_then(|m| m.get(&id)).cloned();
        if let (WriteOp::Create(_), Some(_)) = (&op, &old) {
            return Err(ApiError {
                details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} {:?} already exists", rt.qualified(), name),
                )
            });
        }
        if let (WriteOp::Update(_), Some(o)) = (&op, &old) {
            let want = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let have = o
                .obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !want.is_empty() && want != have {
                return Err(ApiError {
                    details: json!({"name": name, "group": rt.group, "kind": rt.plural}),
                    ..ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                        rt.qualified(), name))
                });
            }
        }
        let mut managers = old.as_ref().map(|o| o.managers.clone()).unwrap_or_default();
        let old_obj = old.as_ref().map(|o| o.obj.clone()).unwrap_or(json!({}));
        let stamp = now();

        // The new object, before server defaults.
        let mut new = match &op {
            WriteOp::Apply { manager, force } => {
                let applied = {
                    let mut a = body.clone();
                    if let Some(m) = a.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("managedFields");
                        m.remove("resourceVersion");
                    }
                    a
                };
                let fa = field_set(&applied);
                // Conflicts with other managers that own a field this apply sets to another value.
                let mut conflicts: Vec<(String, Path)> = Vec::new();
                for m in &managers {
                    if m.manager == *manager && m.operation == "Apply" {
                        continue;
                    }
                    for p in fa.intersection(&m.fields) {
                        if matches!(p.last(), Some(Seg::Item(_))) {
                            continue;
                        }
                        if fields::get(&old_obj, p) != fields::get(&applied, p) {
                            conflicts.push((m.manager.clone(), p.clone()));
                        }
                    }
                }
                if !conflicts.is_empty() && !force {
                    return Err(conflict_error(
                        rt,
                        &name,
                        &api_version,
                        &conflicts,
                        &managers,
                    ));
                }
                for (mname, p) in &conflicts {
                    for m in managers.iter_mut().filter(|m| &m.manager == mname) {
                        m.fields.remove(p);
                    }
                }
                let prev: BTreeSet<Path> = managers
                    .iter()
                    .find(|m| m.manager == *manager && m.operation == "Apply")
                    .map(|m| m.fields.clone())
                    .unwrap_or_default();
                let others: BTreeSet<Path> = managers
                    .iter()
                    .filter(|m| !(m.manager == *manager && m.operation == "Apply"))
                    .flat_map(|m| m.fields.iter().cloned())
                    .collect();
                let mut merged = old_obj.clone();
                for p in prev.difference(&fa) {
                    let owned_below = others.iter().any(|o| o.starts_with(p));
                    if !owned_below {
                        fields::remove(&mut merged, p);
                        // Maps left empty by the removal go too.
                        let mut up = p.clone();
                        while up.pop().is_some() && !up.is_empty() {
                            let empty = fields::get(&merged, &up)
                                .map(|v| v.as_object().map(|m| m.is_empty()).unwrap_or(false))
                                .unwrap_or(false);
                            if !empty || others.contains(&up) {
                                break;
                            }
                            fields::remove(&mut merged, &up);
                        }
                    }
                }
                fields::apply_merge(&mut merged, &applied);
                managers.retain(|m| !(m.manager == *manager && m.operation == "Apply"));
                managers.push(Manager {
                    manager: manager.clone(),
                    operation: "Apply",
                    api_version: api_version.clone(),
                    time: stamp.clone(),
                    fields: fa,
                });
                merged
            }
            WriteOp::Create(manager) | WriteOp::Update(manager) => {
                let mut b = body.clone();
                if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                let changed: BTreeSet<Path> = field_set(&b)
                    .into_iter()
                    .filter(|p| fields::get(&old_obj, p) != fields::get(&b, p))
                    .collect();
                if !changed.is_empty() {
                    for m in managers.iter_mut() {
                        m.fields.retain(|p| !changed.contains(p));
                    }
                    match managers
                        .iter_mut()
                        .find(|m| m.manager == *manager && m.operation == "Update")
                    {
                        Some(m) => {
                            m.fields.extend(changed);
                            m.time = stamp.clone();
                        }
                        None => managers.push(Manager {
                            manager: manager.clone(),
                            operation: "Update",
                            api_version: api_version.clone(),
                            time: stamp.clone(),
                            fields: changed,
                        }),
                    }
                }
                b
            }
        };

        // Server-owned metadata.
        let seq = self.rv + 1;
        {
            let nm = new
                .as_object_mut()
                .expect("object")
                .entry("metadata")
                .or_insert(json!({}));
            let nm = nm.as_object_mut().expect("metadata");
            nm.insert("name".into(), json!(name));
            if rt.namespaced {
                nm.insert("namespace".into(), json!(ns));
            }
            nm.remove("managedFields");
            for f in ["uid", "creationTimestamp", "generation"] {
                match old_obj.pointer(&format!("/metadata/{f}")) {
                    Some(v) => {
                        nm.insert(f.into(), v.clone());
                    }
                    None => {
                        nm.remove(f);
                    }
                }
            }
            if old.is_none() {
                nm.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
                nm.insert("creationTimestamp".into(), json!(stamp));
            }
        }
        if let Some(status) = old_obj.get("status") {
            new["status"] = status.clone();
        }
        // Allocated fields survive updates that omit them.
        if rt.kind == "Service" {
            for f in ["clusterIP", "clusterIPs"] {
                if new.pointer(&format!("/spec/{f}")).is_none() {
                    if let Some(v) = old_obj.pointer(&format!("/spec/{f}")) {
                        new["spec"][f] = v.clone();
                    }
                }
            }
        }
        types::apply_defaults(&rt.kind, &mut new, seq);
        if rt.kind == "Job" {
            // The job controller's selector and pod labels, set at creation.
            let uid = new.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            if new.pointer("/spec/selector").is_none() {
                new["spec"]["selector"] =
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            }
            if let Some(t) = new
                .pointer_mut("/spec/template")
                .and_then(Value::as_object_mut)
            {
                let md = t.entry("metadata").or_insert(json!({}));
                if !md.get("labels").map(Value::is_object).unwrap_or(false) {
                    md["labels"] = json!({});
                }
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", json!(name)),
                    ("controller-uid", uid.clone()),
                    ("job-name", json!(name)),
                ] {
                    md["labels"][k] = v;
                }
            }
        }
        let mut errs = types::validate(rt, &new);
        if rt.kind == "Job"
            && old.is_some()
            && old_obj.pointer("/spec/template") != new.pointer("/spec/template")
        {
            errs.push((
                "spec.template".into(),
                "Invalid value: field is immutable".into(),
            ));
        }
        if !errs.is_empty() {
            let causes: Vec<Value> = errs
                .iter()
                .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
                .collect();
            let msg = errs
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError {
                details: json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
                ..ApiError::new(
                    422,
                    "Invalid",
                    format!("{} {:?} is invalid: {}", rt.kind_qualified(), name, msg),
                )
            });
        }
        let spec_of = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
                m.remove("apiVersion");
                m.remove("kind");
            }
            v
        };
        let generation = match old_obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
        {
            Some(g) if spec_of(&old_obj) != spec_of(&new) => g + 1,
            Some(g) => g,
            None => 1,
        };
        if new.get("spec").is_some() || rt.crd.is_some() {
            new["metadata"]["generation"] = json!(generation);
        } else if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("generation");
        }
        let workload = matches!(
            rt.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job"
        );
        let changed_spec = old.is_none()
            || old_obj.pointer("/metadata/generation") != new.pointer("/metadata/generation");
        let delayed = workload && !self.rollout_delay.is_zero() && changed_spec;
        if delayed {
            let g = new
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            new["status"] = if rt.kind == "Job" {
                json!({"active": 1})
            } else {
                json!({"observedGeneration": g, "replicas": 0, "updatedReplicas": 0,
                       "readyReplicas": 0, "availableReplicas": 0})
            };
        } else if !workload || self.rollout_delay.is_zero() {
            types::simulate_status(&rt.kind, &mut new);
        }
        // Drop ownership of fields that no longer exist.
        for m in managers.iter_mut() {
            m.fields.retain(|p| fields::get(&new, p).is_some());
        }
        managers.retain(|m| !m.fields.is_empty());

        let unchanged = old.as_ref().map(|o| {
            let mut a = o.obj.clone();
            let mut b = new.clone();
            for x in [&mut a, &mut b] {
                if let Some(m) = x.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                if let Some(m) = x.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            let fm = |ms: &Vec<Manager>| -> Vec<(String, &'static str, BTreeSet<Path>)> {
                ms.iter()
                    .map(|m| (m.manager.clone(), m.operation, m.fields.clone()))
                    .collect()
            };
            a == b && fm(&o.managers) == fm(&managers)
        });
        if unchanged == Some(true) {
            let o = old.expect("old");
            return Ok(self.render(rt, &o, &api_version));
        }
        if let Some(o) = &old {
            // Keep the times of managers whose fields did not change.
            for m in managers.iter_mut() {
                if let Some(om) = o
                    .managers
                    .iter()
                    .find(|x| x.manager == m.manager && x.operation == m.operation)
                {
                    if om.fields == m.fields {
                        m.time = om.time.clone();
                    }
                }
            }
        }
        let rv = if dry_run { self.rv } else { seq };
        new["metadata"]["resourceVersion"] = json!(rv.to_string());
        if let Some(m) = new.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
        let stored = Stored { obj: new, managers };
        let out = self.render(rt, &stored, &api_version);
        let mut stored = stored;
        let mut out = out;
        let delay_crd =
            rt.kind == "CustomResourceDefinition" && old.is_none() && !self.crd_delay.is_zero();
        if delay_crd {
            let conds = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "False", "reason": "Installing", "message": "the initial names have been accepted"}
            ]);
            stored.obj["status"]["conditions"] = conds.clone();
            out["status"]["conditions"] = conds;
        }
        if !dry_run {
            self.rv = seq;
            if delayed {
                self.pending_rollouts
                    .retain(|(pk, pid, _)| !(pk == &k && pid == &id));
                self.pending_rollouts.push((
                    k.clone(),
                    id.clone(),
                    std::time::Instant::now() + self.rollout_delay,
                ));
            }
            self.objects.entry(k).or_default().insert(id, stored);
            if delay_crd {
                self.pending
                    .push((name.clone(), std::time::Instant::now() + self.crd_delay));
            } else if rt.kind == "CustomResourceDefinition" {
                if let Some(t) = types::from_crd(&out) {
                    self.types
                        .retain(|x| !(x.group == t.group && x.kind == t.kind));
                    self.types.push(t);
                }
            }
        }
        Ok(out)
    }

    /// Establishes the CRDs whose delay has passed.
    fn establish_due(&mut self) {
        let now = std::time::Instant::now();
        let done: Vec<(String, (String, String))> = self
            .pending_rollouts
            .iter()
            .filter(|(_, _, t)| *t <= now)
            .map(|(k, id, _)| (k.clone(), id.clone()))
            .collect();
        self.pending_rollouts.retain(|(_, _, t)| *t > now);
        for (k, id) in done {
            let kind = self
                .types
                .iter()
                .find(|t| key(t) == k)
                .map(|t| t.kind.clone())
                .unwrap_or_default();
            self.rv += 1;
            let rv = self.rv;
            if let Some(s) = self.objects.get_mut(&k).and_then(|m| m.get_mut(&id)) {
                types::simulate_status(&kind, &mut s.obj);
                s.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            }
        }
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, t)| *t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        self.pending.retain(|(_, t)| *t > now);
        for name in due {
            let key = "apiextensions.k8s.io/customresourcedefinitions".to_string();
            self.rv += 1;
            let rv = self.rv;
            let Some(s) = self
                .objects
                .get_mut(&key)
                .and_then(|m| m.get_mut(&(String::new(), name.clone())))
            else {
                continue;
            };
            s.obj["status"]["conditions"] = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
            ]);
            s.obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let obj = s.obj.clone();
            if let Some(t) = types::from_crd(&obj) {
                self.types
                    .retain(|x| !(x.group == t.group && x.kind == t.kind));
                self.types.push(t);
            }
        }
    }

    fn delete(
        &mut self,
        rt: &ResType,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let k = key(rt);
        let id = (ns.to_string(), name.to_string());
        let exists = self
            .objects
            .get(&k)
            .map(|m| m.contains_key(&id))
            .unwrap_or(false);
        if !exists {
            return Err(ApiError::not_found(rt, name));
        }
        if dry_run {
            let s = self.objects[&k][&id].clone();
            return Ok(self.render(rt, &s, &rt.gv(&rt.versions[0])));
        }
        let s = self
            .objects
            .get_mut(&k)
            .and_then(|m| m.remove(&id))
            .expect("exists");
        self.rv += 1;
        if rt.kind == "Namespace" {
            for (tk, objs) in self.objects.iter_mut() {
                if let Some(t) = self.types.iter().find(|t| &key(t) == tk) {
                    if t.namespaced {
                        objs.retain(|(ons, _), _| ons != name);
                    }
                }
            }
        }
        if rt.kind == "CustomResourceDefinition" {
            if let Some(t) = self
                .types
                .iter()
                .find(|t| t.crd.as_deref() == Some(name))
                .cloned()
            {
                self.objects.remove(&key(&t));
                self.types.retain(|x| x != &t);
            }
        }
        let _ = s;
        Ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": self.rv.to_string()}
        }))
    }
}

fn conflict_error(
    rt: &ResType,
    name: &str,
    api_version: &str,
    conflicts: &[(String, Path)],
    managers: &[Manager],
) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            let av = managers
                .iter()
                .find(|x| &x.manager == m)
                .map(|x| x.api_version.clone())
                .unwrap_or_else(|| api_version.to_string());
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m:?} using {av}"), "field": fields::render(p)})
        })
        .collect();
    let message = if conflicts.len() == 1 {
        let (m, p) = &conflicts[0];
        let av = managers
            .iter()
            .find(|x| &x.manager == m)
            .map(|x| x.api_version.as_str())
            .unwrap_or(api_version);
        format!(
            "Apply failed with 1 conflict: conflict with {m:?} using {av}: {}",
            fields::render(p)
        )
    } else {
        let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by.entry(m.as_str()).or_default().push(fields::render(p));
        }
        let mut s = format!("Apply failed with {} conflicts: ", conflicts.len());
        let parts: Vec<String> = by
            .iter()
            .map(|(m, ps)| {
                let av = managers
                    .iter()
                    .find(|x| x.manager == *m)
                    .map(|x| x.api_version.as_str())
                    .unwrap_or(api_version);
                format!("conflicts with {m:?} using {av}:\n- {}", ps.join("\n- "))
            })
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    ApiError {
        details: json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}),
        ..ApiError::new(409, "Conflict", message)
    }
}

fn query_map(uri: &Uri) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(q) = uri.query() {
        for part in q.split('&') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            out.insert(pct_decode(k), pct_decode(v));
        }
    }
    out
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(x) if h.len() == 2 => {
                        out.push(x);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn discovery_resources(types: &[ResType], group: &str, version: &str) -> Value {
    let mut res = Vec::new();
    for t in types
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
    {
        res.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": t.short_names,
        }));
        res.push(json!({
            "name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced,
            "kind": t.kind, "verbs": ["get", "patch", "update"],
        }));
        if matches!(t.kind.as_str(), "Deployment" | "StatefulSet" | "ReplicaSet") {
            res.push(json!({
                "name": format!("{}/scale", t.plural), "singularName": "", "namespaced": t.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
        "resources": res,
    })
}

fn group_entry(types: &[ResType], group: &str) -> Value {
    let mut versions: Vec<String> = Vec::new();
    for t in types.iter().filter(|t| t.group == group) {
        for v in &t.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or(Value::Null)})
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The double's own control endpoints (not counted): `GET /_double/requests`
    // returns the count so far, `DELETE /_double/requests` resets it.
    if uri.path() == "/_double/requests" {
        if method == Method::DELETE {
            shared.requests.store(0, Ordering::SeqCst);
            shared.log.lock().expect("log").clear();
        }
        let n = shared.requests.load(Ordering::SeqCst);
        return respond(200, json!({ "requests": n }));
    }
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let want = shared.bearer.lock().expect("bearer").clone();
    if let Some(want) = want {
        let got = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if got != Some(want.as_str()) {
            shared
                .log
                .lock()
                .expect("log")
                .push(format!("{method} {} -> 401", uri.path()));
            return respond(
                401,
                ApiError::new(401, "Unauthorized", "Unauthorized").body(),
            );
        }
    }
    shared.log.lock().expect("log").push(format!(
        "{} {}",
        method,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    ));
    match route(&shared, &method, &uri, &headers, &body) {
        Ok((code, v)) => respond(code, v),
        Err(e) => respond(e.code, e.body()),
    }
}

fn route(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let segs: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(pct_decode)
        .collect();
    let q = query_map(uri);
    let mut st = shared.store.lock().expect("store");
    st.establish_due();
    let seg = |i: usize| segs.get(i).map(String::as_str);
    let get_only = || -> Result<(), ApiError> {
        if method != Method::GET {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ));
        }
        Ok(())
    };
    // Discovery.
    match (seg(0), segs.len()) {
        (Some("version"), 1) => {
            get_only()?;
            return Ok((
                200,
                json!({
                    "major": "1", "minor": "33", "gitVersion": "v1.33.0-claw-double", "gitCommit": "0000000",
                    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            ));
        }
        (Some("api"), 1) => {
            get_only()?;
            let addr = shared
                .addr
                .lock()
                .expect("addr")
                .map(|a| a.to_string())
                .unwrap_or_default();
            return Ok((
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]}),
            ));
        }
        (Some("api"), 2) => {
            get_only()?;
            if seg(1) != Some("v1") {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            return Ok((200, discovery_resources(&st.types, "", "v1")));
        }
        (Some("apis"), 1) => {
            get_only()?;
            let mut groups: Vec<String> = Vec::new();
            for t in st.types.iter().filter(|t| !t.group.is_empty()) {
                if !groups.contains(&t.group) {
                    groups.push(t.group.clone());
                }
            }
            let gs: Vec<Value> = groups.iter().map(|g| group_entry(&st.types, g)).collect();
            return Ok((
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}),
            ));
        }
        (Some("apis"), 2) => {
            get_only()?;
            let g = seg(1).unwrap_or("");
            if !st.types.iter().any(|t| t.group == g) {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            let mut e = group_entry(&st.types, g);
            e["kind"] = json!("APIGroup");
            e["apiVersion"] = json!("v1");
            return Ok((200, e));
        }
        (Some("apis"), 3) => {
            get_only()?;
            let (g, v) = (seg(1).unwrap_or(""), seg(2).unwrap_or(""));
            if !st
                .types
                .iter()
                .any(|t| t.group == g && t.versions.iter().any(|x| x == v))
            {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            return Ok((200, discovery_resources(&st.types, g, v)));
        }
        _ => {}
    }
    // Resources: /api/v1/... or /apis/<g>/<v>/...
    let (group, version, rest): (&str, &str, &[String]) = match seg(0) {
        Some("api") if segs.len() > 2 => ("", seg(1).unwrap_or(""), &segs[2..]),
        Some("apis") if segs.len() > 3 => (seg(1).unwrap_or(""), seg(2).unwrap_or(""), &segs[3..]),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ))
        }
    };
    let find = |plural: &str| {
        st.types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    };
    // namespaces/<ns>/<plural>[/<name>[/<sub>]] vs <plural>[/<name>[/<sub>]]
    let (rt, ns, name, sub) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && rest[2] != "status"
        && rest[2] != "finalize"
    {
        let rt = find(&rest[2]).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
        if !rt.namespaced {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        (
            rt,
            rest[1].clone(),
            rest.get(3).cloned(),
            rest.get(4).cloned(),
        )
    } else {
        let rt = find(&rest[0]).ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })?;
        (
            rt,
            String::new(),
            rest.get(1).cloned(),
            rest.get(2).cloned(),
        )
    };
    let ns_for_item = if rt.namespaced {
        ns.clone()
    } else {
        String::new()
    };
    if rt.namespaced && name.is_some() && ns.is_empty() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let scalable = matches!(
        rt.kind.as_str(),
        "Deployment" | "StatefulSet" | "ReplicaSet"
    );
    if let Some(s) = &sub {
        if s != "status" && !(s == "scale" && scalable) {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
    }
    let api_version = rt.gv(version);
    let dry_run = q.get("dryRun").map(|v| v == "All").unwrap_or(false);
    if q.get("watch")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
    {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "watch is not supported by this server",
        ));
    }
    let manager_of = |default_ua: bool| -> String {
        if let Some(m) = q.get("fieldManager") {
            return m.clone();
        }
        let ua = headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        let m = ua.split('/').next().unwrap_or("unknown").to_string();
        if default_ua {
            m
        } else {
            "unknown".into()
        }
    };
    let parse_body = |ct: &str| -> Result<Value, ApiError> {
        if ct.contains("protobuf") || ct.contains("cbor") {
            return Err(ApiError::new(415, "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {ct}")));
        }
        if ct.contains("yaml") {
            serde_yaml_ng::from_slice::<Value>(body)
                .map_err(|e| ApiError::new(400, "BadRequest", format!("error decoding YAML: {e}")))
        } else {
            serde_json::from_slice::<Value>(body).map_err(|e| {
                ApiError::new(
                    400,
                    "BadRequest",
                    format!("couldn't get version/kind; json parse error: {e}"),
                )
            })
        }
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let id = (ns_for_item.clone(), name.clone().unwrap_or_default());
    let current = name
        .as_ref()
        .and_then(|_| st.objects.get(&key(&rt)).and_then(|m| m.get(&id)).cloned());

    // The scale subresource (kubectl scale): an autoscaling/v1 Scale view of
    // spec.replicas; a change is an Update of the object by the caller.
    if sub.as_deref() == Some("scale") {
        let n = name.clone().unwrap_or_default();
        let Some(cur) = current else {
            return Err(ApiError::not_found(&rt, &n));
        };
        let scale_of = |o: &Value| {
            json!({
                "apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": n, "namespace": ns_for_item,
                    "resourceVersion": o.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)},
                "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
                "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0))},
            })
        };
        let mut scale = scale_of(&cur.obj);
        match method.clone() {
            Method::GET => return Ok((200, scale)),
            Method::PUT => scale = parse_body(&content_type)?,
            Method::PATCH => {
                let patch = parse_body(&content_type)?;
                match content_type.split(';').next().unwrap_or("").trim() {
                    "application/json-patch+json" => fields::json_patch(&mut scale, &patch)
                        .map_err(|e| ApiError::new(422, "Invalid", e))?,
                    _ => fields::merge_patch(&mut scale, &patch),
                }
            }
            _ => {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ))
            }
        }
        let mut obj = st.render(&rt, &cur, &api_version);
        obj["spec"]["replicas"] = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        let out = st.write(
            &rt,
            version,
            &ns_for_item,
            &n,
            obj,
            WriteOp::Update(manager_of(true)),
            dry_run,
        )?;
        return Ok((200, scale_of(&out)));
    }

    match (method.clone(), name.as_ref()) {
        (Method::GET, None) if st.forbid_cluster_lists && rt.namespaced && ns.is_empty() => {
            Err(ApiError {
                details: json!({"group": rt.group, "kind": rt.plural}),
                ..ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "{} is forbidden: User \"double\" cannot list resource {:?} in API group {:?} at the cluster scope",
                        rt.qualified(),
                        rt.plural,
                        rt.group
                    ),
                )
            })
        }
        (Method::GET, None) => {
            let sel = q
                .get("labelSelector")
                .map(|s| selector::parse(s))
                .transpose()
                .map_err(|e| ApiError::new(400, "BadRequest", e))?;
            let fsel = q.get("fieldSelector").cloned();
            let meta_only = headers
                .get("accept")
                .and_then(|v| v.to_str().ok())
                .map(|a| a.contains("as=PartialObjectMetadataList"))
                .unwrap_or(false);
            let mut items = Vec::new();
            if let Some(objs) = st.objects.get(&key(&rt)) {
                for ((ons, _), s) in objs {
                    if rt.namespaced && !ns.is_empty() && ons != &ns {
                        continue;
                    }
                    if let Some(sel) = &sel {
                        if !selector::matches(sel, &selector::labels_of(&s.obj)) {
                            continue;
                        }
                    }
                    if let Some(f) = &fsel {
                        if !selector::field_matches(f, &s.obj)
                            .map_err(|e| ApiError::new(400, "BadRequest", e))?
                        {
                            continue;
                        }
                    }
                    let mut o = st.render(&rt, s, &api_version);
                    if rt.crd.is_none() {
                        // As a real server: items of built-in lists carry no
                        // apiVersion/kind (custom resources keep theirs).
                        if let Some(m) = o.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                    }
                    if meta_only {
                        o = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"].clone()});
                    }
                    items.push(o);
                }
            }
            let (av, kind) = if meta_only {
                (
                    "meta.k8s.io/v1".to_string(),
                    "PartialObjectMetadataList".to_string(),
                )
            } else {
                (api_version.clone(), format!("{}List", rt.kind))
            };
            Ok((
                200,
                json!({"apiVersion": av, "kind": kind, "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            ))
        }
        (Method::GET, Some(n)) => match current {
            Some(s) => Ok((200, st.render(&rt, &s, &api_version))),
            None => Err(ApiError::not_found(&rt, n)),
        },
        (Method::POST, None) => {
            if sub.is_some() {
                return Err(ApiError::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                ));
            }
            let b = parse_body(&content_type)?;
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                "",
                b,
                WriteOp::Create(manager_of(true)),
                dry_run,
            )?;
            Ok((201, out))
        }
        (Method::PUT, Some(n)) => {
            let Some(cur) = current else {
                return Err(ApiError::not_found(&rt, n));
            };
            let mut b = parse_body(&content_type)?;
            if sub.is_some() {
                let mut whole = cur.obj.clone();
                whole["status"] = b.get("status").cloned().unwrap_or(Value::Null);
                let mut s = cur.clone();
                s.obj = whole;
                if !dry_run {
                    st.rv += 1;
                    s.obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.objects
                        .entry(key(&rt))
                        .or_default()
                        .insert(id, s.clone());
                }
                return Ok((200, st.render(&rt, &s, &api_version)));
            }
            if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                m.entry("name").or_insert(json!(n));
            }
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                n,
                b,
                WriteOp::Update(manager_of(true)),
                dry_run,
            )?;
            Ok((200, out))
        }
        (Method::PATCH, Some(n)) => {
            let ct = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if ct == "application/apply-patch+yaml" {
                let Some(manager) = q.get("fieldManager").cloned() else {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "PATCH /apply requires fieldManager to be set",
                    ));
                };
                let force = q.get("force").map(|v| v == "true").unwrap_or(false);
                let b = parse_body(&content_type)?;
                if let (Some(av), Some(k)) = (
                    b.get("apiVersion").and_then(Value::as_str),
                    b.get("kind").and_then(Value::as_str),
                ) {
                    if av != api_version || k != rt.kind {
                        return Err(ApiError::new(400, "BadRequest",
                            format!("the API version in the data ({av}) does not match the expected API version ({api_version})")));
                    }
                } else {
                    return Err(ApiError::new(
                        400,
                        "BadRequest",
                        "apiVersion and kind are required in an applied configuration",
                    ));
                }
                let out = st.write(
                    &rt,
                    version,
                    &ns_for_item,
                    n,
                    b,
                    WriteOp::Apply { manager, force },
                    dry_run,
                )?;
                return Ok((if current.is_some() { 200 } else { 201 }, out));
            }
            let Some(cur) = current else {
                return Err(ApiError::not_found(&rt, n));
            };
            let patch = parse_body(&content_type)?;
            let mut target = st.render(&rt, &cur, &api_version);
            match ct.as_str() {
                "application/merge-patch+json" => fields::merge_patch(&mut target, &patch),
                "application/strategic-merge-patch+json" => {
                    if rt.crd.is_some() {
                        return Err(ApiError::new(415, "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
                    }
                    fields::strategic_patch(&mut target, &patch)
                }
                "application/json-patch+json" => fields::json_patch(&mut target, &patch)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format: {other}"),
                    ))
                }
            }
            if sub.is_some() {
                let mut s = cur.clone();
                s.obj["status"] = target.get("status").cloned().unwrap_or(Value::Null);
                if !dry_run {
                    st.rv += 1;
                    s.obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.objects
                        .entry(key(&rt))
                        .or_default()
                        .insert(id, s.clone());
                }
                return Ok((200, st.render(&rt, &s, &api_version)));
            }
            if let Some(m) = target.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            let out = st.write(
                &rt,
                version,
                &ns_for_item,
                n,
                target,
                WriteOp::Update(manager_of(true)),
                dry_run,
            )?;
            Ok((200, out))
        }
        (Method::DELETE, Some(n)) => {
            let out = st.delete(&rt, &ns_for_item, n, dry_run)?;
            Ok((200, out))
        }
        (Method::DELETE, None) => {
            let sel = q
                .get("labelSelector")
                .map(|s| selector::parse(s))
                .transpose()
                .map_err(|e| ApiError::new(400, "BadRequest", e))?;
            let names: Vec<(String, String)> = st
                .objects
                .get(&key(&rt))
                .map(|objs| {
                    objs.iter()
                        .filter(|((ons, _), _)| !rt.namespaced || ns.is_empty() || ons == &ns)
                        .filter(|(_, s)| {
                            sel.as_ref()
                                .map(|r| selector::matches(r, &selector::labels_of(&s.obj)))
                                .unwrap_or(true)
                        })
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut items = Vec::new();
            for (ons, n) in names {
                if let Some(s) = st
                    .objects
                    .get(&key(&rt))
                    .and_then(|m| m.get(&(ons.clone(), n.clone())))
                    .cloned()
                {
                    items.push(st.render(&rt, &s, &api_version));
                }
                st.delete(&rt, &ons, &n, dry_run)?;
            }
            Ok((
                200,
                json!({"apiVersion": api_version, "kind": format!("{}List", rt.kind), "metadata": {}, "items": items}),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )),
    }
}
