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

mod error;
pub mod fields;
mod http;
pub mod selector;
mod store;
pub mod tls;
pub mod types;

use axum::Router;
pub use error::ApiError;
use http::handle;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use store::{key, Store, WriteOp};

struct Shared {
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub(crate) bearer: Mutex<Option<String>>,
    pub(crate) store: Mutex<Store>,
    pub(crate) requests: AtomicU64,
    pub(crate) log: Mutex<Vec<String>>,
    pub(crate) addr: Mutex<Option<SocketAddr>>,
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
