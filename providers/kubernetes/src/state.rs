//! The `kubernetes` state backend: the state document in a Secret
//! (`claw-state-<stack>`, key `state.json.gz`, gzip-compressed), the lock a coordination.k8s.io Lease
//! (`claw-lock-<stack>`) whose holderIdentity is the LockInfo JSON, renewed by
//! a background task while held; a lease not renewed within its duration is
//! expired and taken over (the previous holder is reported through progress).

use crate::client::{ApiError, Cluster};
use base64::Engine;
use claw_provider::{
    Attrs, Ctx, Diagnostic, LockError, LockInfo, StateStorage, Value, LABEL_MANAGED_BY, LABEL_STACK,
};
use http::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The key of the gzip-compressed state document in the Secret.
const STATE_KEY: &str = "state.json.gz";

pub struct KubeStateStorage {
    cluster: Arc<Cluster>,
    namespace: Option<String>,
    secret: String,
    lease: String,
    stack: String,
    ctx: Ctx,
    /// Seconds a lease lives without renewal.
    pub lease_seconds: u64,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    notices: Mutex<Vec<Diagnostic>>,
}

fn micro_time(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

fn diag(what: &str, e: &ApiError) -> Diagnostic {
    Diagnostic::error(format!("state backend: {what}: {}", e.message()))
        .with_hint("check that the namespace exists and the kubeconfig user may read and write Secrets and Leases there")
}

impl KubeStateStorage {
    pub fn new(cluster: Arc<Cluster>, attrs: &Attrs, ctx: &Ctx) -> KubeStateStorage {
        let s = |k: &str| attrs.get(k).and_then(Value::as_str).map(str::to_string);
        let stack = ctx.stack.clone();
        KubeStateStorage {
            cluster,
            namespace: s("namespace"),
            secret: s("secret").unwrap_or_else(|| format!("claw-state-{stack}")),
            lease: s("lease").unwrap_or_else(|| format!("claw-lock-{stack}")),
            lease_seconds: attrs
                .get("lease_seconds")
                .and_then(Value::as_int)
                .map(|i| i.max(3) as u64)
                .unwrap_or(30),
            stack,
            ctx: ctx.clone(),
            renewer: Mutex::new(None),
            notices: Mutex::new(Vec::new()),
        }
    }

    fn ns(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| self.cluster.default_namespace())
    }
    fn secret_path(&self) -> String {
        format!("/api/v1/namespaces/{}/secrets/{}", self.ns(), self.secret)
    }
    fn lease_coll(&self) -> String {
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
            self.ns()
        )
    }
    fn lease_path(&self) -> String {
        format!("{}/{}", self.lease_coll(), self.lease)
    }

    fn lease_body(&self, info: &LockInfo, rv: Option<&str>) -> serde_json::Value {
        let now = micro_time(SystemTime::now());
        let mut md = json!({"name": self.lease, "namespace": self.ns(),
            "labels": {LABEL_MANAGED_BY: "claw", LABEL_STACK: self.stack}});
        if let Some(rv) = rv {
            md["resourceVersion"] = json!(rv);
        }
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": md,
            "spec": {
                "holderIdentity": serde_json::to_string(info).unwrap_or_default(),
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": now, "renewTime": now,
            }
        })
    }

    fn holder_of(lease: &serde_json::Value) -> Option<LockInfo> {
        let h = lease.pointer("/spec/holderIdentity")?.as_str()?;
        serde_json::from_str(h).ok().or_else(|| {
            Some(LockInfo {
                id: h.to_string(),
                pid: 0,
                host: String::new(),
                user: String::new(),
                command: String::new(),
                created: String::new(),
            })
        })
    }

    fn expired(lease: &serde_json::Value) -> bool {
        let dur = lease
            .pointer("/spec/leaseDurationSeconds")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let renew = lease
            .pointer("/spec/renewTime")
            .or_else(|| lease.pointer("/spec/acquireTime"))
            .and_then(|v| v.as_str())
            .and_then(|s| humantime::parse_rfc3339_weak(s).ok());
        match renew {
            Some(t) => SystemTime::now()
                .duration_since(t)
                .map(|d| d > Duration::from_secs(dur))
                .unwrap_or(false),
            None => true,
        }
    }

    fn start_renewing(&self, info: &LockInfo) {
        let cluster = self.cluster.clone();
        let path = self.lease_path();
        let id = info.id.clone();
        let every = Duration::from_secs((self.lease_seconds / 3).max(1));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Ok(Some(mut lease)) = cluster.get_opt(&path).await else {
                    return;
                };
                if Self::holder_of(&lease).map(|h| h.id != id).unwrap_or(true) {
                    return;
                }
                lease["spec"]["renewTime"] = json!(micro_time(SystemTime::now()));
                let bytes = serde_json::to_vec(&lease).unwrap_or_default();
                let _ = cluster
                    .call(Method::PUT, &path, Some(("application/json", bytes)), None)
                    .await;
            }
        });
        if let Some(old) = self.renewer.lock().expect("renewer").replace(task) {
            old.abort();
        }
    }

    fn stop_renewing(&self) {
        if let Some(t) = self.renewer.lock().expect("renewer").take() {
            t.abort();
        }
    }
}

impl Drop for KubeStateStorage {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

#[async_trait::async_trait]
impl StateStorage for KubeStateStorage {
    fn describe(&self) -> String {
        format!(
            "secret {}/{} (lock: lease {})",
            self.ns(),
            self.secret,
            self.lease
        )
    }

    async fn read(&self) -> Result<Option<Vec<u8>>, Diagnostic> {
        let Some(s) = self
            .cluster
            .get_opt(&self.secret_path())
            .await
            .map_err(|e| diag("reading the state", &e))?
        else {
            return Ok(None);
        };
        let bad = |e: String| {
            Diagnostic::error(format!(
                "state backend: the state in {} cannot be read: {e}",
                self.describe()
            ))
            .with_hint("restore it from a backup of the Secret, or `claw state` from another copy")
        };
        if let Some(b) = s
            .pointer(&format!("/data/{STATE_KEY}"))
            .and_then(|v| v.as_str())
        {
            let gz = B64.decode(b).map_err(|e| bad(e.to_string()))?;
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Some(out));
        }
        // An uncompressed `state` key (written by hand or by an older claw).
        let Some(b) = s.pointer("/data/state").and_then(|v| v.as_str()) else {
            return Ok(None);
        };
        B64.decode(b).map(Some).map_err(|e| bad(e.to_string()))
    }

    async fn write(&self, bytes: &[u8]) -> Result<(), Diagnostic> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, bytes)
            .and_then(|_| gz.try_finish())
            .map_err(|e| {
                Diagnostic::error(format!("state backend: cannot compress the state: {e}"))
            })?;
        let gz = gz.get_ref();
        // A Secret holds at most 1 MiB.
        if gz.len() > 1_000_000 {
            return Err(Diagnostic::error(format!(
                "state backend: the compressed state is {} bytes, more than a Secret holds (1 MiB)",
                gz.len()
            ))
            .with_hint("split the stack, or use the local state backend"));
        }
        let mut data = serde_json::Map::new();
        data.insert(STATE_KEY.into(), json!(B64.encode(gz)));
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": self.secret, "namespace": self.ns(),
                "labels": {LABEL_MANAGED_BY: "claw", LABEL_STACK: self.stack}},
            "type": "Opaque",
            "data": data,
        });
        let path = format!("{}?fieldManager=claw-state&force=true", self.secret_path());
        self.cluster
            .call(
                Method::PATCH,
                &path,
                Some((
                    "application/apply-patch+yaml",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| diag("writing the state", &e))
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let body = self.lease_body(info, None);
        match self
            .cluster
            .call(
                Method::POST,
                &self.lease_coll(),
                Some((
                    "application/json",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )),
                None,
            )
            .await
        {
            Ok(_) => {
                self.start_renewing(info);
                return Ok(());
            }
            Err(e) if e.reason() == "AlreadyExists" || e.code() == 409 => {}
            Err(e) => return Err(LockError::Other(diag("taking the lock", &e))),
        }
        let lease = self
            .cluster
            .get(&self.lease_path())
            .await
            .map_err(|e| LockError::Other(diag("reading the lock", &e)))?;
        let holder = Self::holder_of(&lease);
        if !Self::expired(&lease) {
            return Err(LockError::Held(holder.unwrap_or(LockInfo {
                id: "unknown".into(),
                pid: 0,
                host: String::new(),
                user: String::new(),
                command: String::new(),
                created: String::new(),
            })));
        }
        // Expired: take it over, guarded by its resourceVersion.
        let rv = lease
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let body = self.lease_body(info, Some(rv));
        match self
            .cluster
            .call(
                Method::PUT,
                &self.lease_path(),
                Some((
                    "application/json",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )),
                None,
            )
            .await
        {
            Ok(_) => {
                if let Some(h) = holder {
                    let msg = format!(
                        "took over an expired lock held by {} (pid {} on {}, {:?}, since {}; not renewed for {}s)",
                        if h.user.is_empty() { "?" } else { &h.user },
                        h.pid,
                        h.host,
                        h.command,
                        h.created,
                        self.lease_seconds
                    );
                    self.ctx.progress.report("state", &msg);
                    self.notices.lock().expect("notices").push(
                        Diagnostic::warning(format!("state backend: {msg}"))
                            .with_hint("that run probably died; check that it is really gone"),
                    );
                }
                self.start_renewing(info);
                Ok(())
            }
            Err(e) if e.code() == 409 => {
                let now = self.cluster.get(&self.lease_path()).await.ok();
                Err(LockError::Held(
                    now.as_ref()
                        .and_then(Self::holder_of)
                        .unwrap_or_else(|| info.clone()),
                ))
            }
            Err(e) => Err(LockError::Other(diag("taking over the expired lock", &e))),
        }
    }

    async fn unlock(&self, info: &LockInfo) -> Result<(), Diagnostic> {
        self.stop_renewing();
        let Some(lease) = self
            .cluster
            .get_opt(&self.lease_path())
            .await
            .map_err(|e| diag("reading the lock", &e))?
        else {
            return Ok(());
        };
        if Self::holder_of(&lease)
            .map(|h| h.id != info.id)
            .unwrap_or(true)
        {
            return Err(Diagnostic::error(
                "state backend: the lock is held by another run; not releasing it",
            )
            .with_hint("`claw force-unlock` removes a stale lock"));
        }
        let uid = lease
            .pointer("/metadata/uid")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let body =
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}});
        match self
            .cluster
            .call(
                Method::DELETE,
                &self.lease_path(),
                Some((
                    "application/json",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )),
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(diag("releasing the lock", &e)),
        }
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, Diagnostic> {
        Ok(self
            .cluster
            .get_opt(&self.lease_path())
            .await
            .map_err(|e| diag("reading the lock", &e))?
            .as_ref()
            .and_then(Self::holder_of))
    }

    fn take_notices(&self) -> Vec<Diagnostic> {
        std::mem::take(&mut *self.notices.lock().expect("notices"))
    }

    async fn force_unlock(&self) -> Result<Option<LockInfo>, Diagnostic> {
        let holder = self.lock_holder().await?;
        match self
            .cluster
            .call(Method::DELETE, &self.lease_path(), None, None)
            .await
        {
            Ok(_) => Ok(holder),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(diag("removing the lock", &e)),
        }
    }
}
