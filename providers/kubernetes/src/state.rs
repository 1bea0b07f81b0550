//! The `kubernetes` state backend: the state document in a Secret
//! (`claw-state-<stack>`, key `state.json.gz`, gzip-compressed), the lock a coordination.k8s.io Lease
//! (`claw-lock-<stack>`) whose holderIdentity is the LockInfo JSON, renewed by
//! a background task while held; a lease not renewed within its duration is
//! expired and taken over (the previous holder is reported through progress).
//!
//! The run's journal is one small Secret per batch of records
//! (`<secret>-journal-00000000`, `-00000001`, ..., labelled
//! `claw.dev/state-journal=<hash of the state Secret's name>`): an append is
//! one `POST` of that batch only, so an apply of N objects sends O(N) bytes
//! and no object nears the 1 MiB limit; the engine folds them into the state
//! Secret at the end of the run and deletes them with one delete-collection.

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
/// The key of a journal Secret's records.
const JOURNAL_KEY: &str = "records";
/// The label naming the state a journal Secret belongs to.
const LABEL_JOURNAL: &str = "claw.dev/state-journal";
/// A Secret holds at most 1 MiB of data; journal batches are split below it.
const SECRET_MAX: usize = 1_000_000;
const JOURNAL_CHUNK: usize = 700_000;

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
    /// The number of the next journal Secret.
    journal_seq: std::sync::atomic::AtomicU64,
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
            journal_seq: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn ns(&self) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| self.cluster.default_namespace())
    }
    /// One request with a JSON body.
    async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.cluster
            .call(method, path, Some(("application/json", bytes)), None)
            .await
    }

    fn secrets(&self) -> String {
        format!("/api/v1/namespaces/{}/secrets", self.ns())
    }
    fn secret_path(&self) -> String {
        format!("{}/{}", self.secrets(), self.secret)
    }
    /// The label value marking this state's journal Secrets (a Secret name
    /// may be longer than a label value).
    fn journal_label(&self) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(self.secret.as_bytes())[..8])
    }
    fn journal_selector(&self) -> String {
        format!(
            "labelSelector={}%3D{}",
            LABEL_JOURNAL.replace('/', "%2F"),
            self.journal_label()
        )
    }

    /// A Secret of this backend named `name` holding `data`.
    fn secret_body(
        &self,
        name: &str,
        data: serde_json::Map<String, serde_json::Value>,
        journal: bool,
    ) -> Vec<u8> {
        let mut labels = json!({LABEL_MANAGED_BY: "claw", LABEL_STACK: self.stack});
        if journal {
            labels[LABEL_JOURNAL] = json!(self.journal_label());
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": self.ns(), "labels": labels},
            "type": "Opaque",
            "data": data,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The state document as the Secret's data: gzip-compressed, refused
    /// when it would not fit.
    fn state_data(
        &self,
        bytes: &[u8],
    ) -> Result<serde_json::Map<String, serde_json::Value>, Diagnostic> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, bytes)
            .and_then(|_| gz.try_finish())
            .map_err(|e| {
                Diagnostic::error(format!("state backend: cannot compress the state: {e}"))
            })?;
        let gz = gz.get_ref();
        // A Secret holds at most 1 MiB (base64 is counted decoded).
        if gz.len() > SECRET_MAX {
            return Err(Diagnostic::error(format!(
                "state backend: the compressed state is {} bytes, more than a Secret holds (1 MiB)",
                gz.len()
            ))
            .with_hint("split the stack, or use the local state backend"));
        }
        let mut data = serde_json::Map::new();
        data.insert(STATE_KEY.into(), json!(B64.encode(gz)));
        Ok(data)
    }

    /// Replaces the lease (read as `lease`) with one held by `info`, guarded
    /// by its resourceVersion; the former holder is reported as a notice
    /// ("took over {what} held by ...{why}").
    async fn replace_lease(
        &self,
        lease: &serde_json::Value,
        info: &LockInfo,
        what: &str,
        why: &str,
    ) -> Result<(), LockError> {
        let holder = Self::holder_of(lease);
        let rv = lease
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let body = self.lease_body(info, Some(rv));
        match self.send_json(Method::PUT, &self.lease_path(), &body).await {
            Ok(_) => {
                if let Some(h) = holder {
                    let msg = format!(
                        "took over {what} held by {} (pid {} on {}, {:?}, since {}{why})",
                        if h.user.is_empty() { "?" } else { &h.user },
                        h.pid,
                        h.host,
                        h.command,
                        h.created,
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
            Err(e) => Err(LockError::Other(diag("taking over the lock", &e))),
        }
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
        let body = self.secret_body(&self.secret, self.state_data(bytes)?, false);
        let path = format!("{}?fieldManager=claw-state&force=true", self.secret_path());
        self.cluster
            .call(
                Method::PATCH,
                &path,
                Some(("application/apply-patch+yaml", body)),
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| diag("writing the state", &e))
    }

    async fn create(&self, bytes: &[u8]) -> Result<Vec<u8>, Diagnostic> {
        let body = self.secret_body(&self.secret, self.state_data(bytes)?, false);
        match self
            .cluster
            .call(
                Method::POST,
                &self.secrets(),
                Some(("application/json", body)),
                None,
            )
            .await
        {
            Ok(_) => Ok(bytes.to_vec()),
            Err(e) if e.reason() == "AlreadyExists" || e.code() == 409 => self
                .read()
                .await?
                .ok_or_else(|| diag("creating the state", &e)),
            Err(e) => Err(diag("creating the state", &e)),
        }
    }

    async fn journal_append(&self, bytes: &[u8]) -> Result<(), Diagnostic> {
        use std::sync::atomic::Ordering;
        for chunk in bytes.chunks(JOURNAL_CHUNK) {
            let n = self.journal_seq.fetch_add(1, Ordering::SeqCst);
            let name = format!("{}-journal-{n:08}", self.secret);
            let mut data = serde_json::Map::new();
            data.insert(JOURNAL_KEY.into(), json!(B64.encode(chunk)));
            self.cluster
                .call(
                    Method::POST,
                    &self.secrets(),
                    Some(("application/json", self.secret_body(&name, data, true))),
                    None,
                )
                .await
                .map_err(|e| diag("appending to the state journal", &e))?;
        }
        Ok(())
    }

    async fn journal_read(&self) -> Result<Option<Vec<u8>>, Diagnostic> {
        let list = self
            .cluster
            .get(&format!("{}?{}", self.secrets(), self.journal_selector()))
            .await
            .map_err(|e| diag("reading the state journal", &e))?;
        let prefix = format!("{}-journal-", self.secret);
        let mut parts: Vec<(String, &str)> = list
            .get("items")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let name = s.pointer("/metadata/name")?.as_str()?;
                let data = s.pointer(&format!("/data/{JOURNAL_KEY}"))?.as_str()?;
                name.starts_with(&prefix).then(|| (name.to_string(), data))
            })
            .collect();
        if parts.is_empty() {
            return Ok(None);
        }
        parts.sort();
        let mut out = Vec::new();
        for (name, data) in parts {
            out.extend(B64.decode(data).map_err(|e| {
                Diagnostic::error(format!(
                    "state backend: the journal Secret {name} cannot be read: {e}"
                ))
            })?);
        }
        Ok(Some(out))
    }

    async fn journal_remove(&self) -> Result<(), Diagnostic> {
        self.cluster
            .call(
                Method::DELETE,
                &format!("{}?{}", self.secrets(), self.journal_selector()),
                None,
                None,
            )
            .await
            .map(|_| ())
            .map_err(|e| diag("removing the state journal", &e))
    }

    async fn take_over(&self, dead: &LockInfo, info: &LockInfo) -> Result<(), LockError> {
        let lease = self
            .cluster
            .get(&self.lease_path())
            .await
            .map_err(|e| LockError::Other(diag("reading the lock", &e)))?;
        match Self::holder_of(&lease) {
            Some(h) if h.id == dead.id => {
                self.replace_lease(
                    &lease,
                    info,
                    "the lock",
                    "; that process is no longer running",
                )
                .await
            }
            Some(h) => Err(LockError::Held(h)),
            None => Err(LockError::Held(dead.clone())),
        }
    }

    async fn lock(&self, info: &LockInfo) -> Result<(), LockError> {
        let body = self.lease_body(info, None);
        match self
            .send_json(Method::POST, &self.lease_coll(), &body)
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
        let why = format!("; not renewed for {}s", self.lease_seconds);
        self.replace_lease(&lease, info, "an expired lock", &why)
            .await
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
