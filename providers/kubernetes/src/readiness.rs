//! Waiting: for a CustomResourceDefinition to be Established, for a rollout
//! or a Job after apply, for an object to be gone after delete.

use crate::client::{ApiError, ApiRes};
use crate::manifest::ObjRef;
use crate::provider::{api_diag, KubeProvider};
use claw_provider::*;
use std::time::{Duration, Instant};

impl KubeProvider {
    /// Resolves the kind; for a custom resource whose CRD is not served yet,
    /// waits until the CRD is Established.
    pub(crate) async fn resolve_or_wait(
        &self,
        address: &str,
        r: &ObjRef,
        ctx: &Ctx,
    ) -> Result<ApiRes, Diagnostic> {
        let diag = |e: &ApiError| api_diag(address, &format!("discovery of {}", r.api_version), e);
        if let Some(res) = self
            .cluster
            .resolve(&r.api_version, &r.kind)
            .await
            .map_err(|e| diag(&e))?
        {
            return Ok(res);
        }
        let start = Instant::now();
        let timeout = Duration::from_secs(120);
        loop {
            let crds = self
                .cluster
                .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
                .await
                .map_err(|e| diag(&e))?;
            let crd = crds
                .get("items")
                .and_then(|i| i.as_array())
                .and_then(|items| {
                    items
                        .iter()
                        .find(|c| {
                            c.pointer("/spec/group").and_then(|g| g.as_str()) == Some(r.group())
                                && c.pointer("/spec/names/kind").and_then(|k| k.as_str())
                                    == Some(r.kind.as_str())
                        })
                        .cloned()
                });
            let established = crd
                .as_ref()
                .and_then(|c| c.pointer("/status/conditions"))
                .and_then(|c| c.as_array())
                .map(|cs| {
                    cs.iter().any(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Established")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
                .unwrap_or(false);
            if established {
                self.cluster.forget(&r.api_version);
                if let Some(res) = self
                    .cluster
                    .resolve(&r.api_version, &r.kind)
                    .await
                    .map_err(|e| diag(&e))?
                {
                    return Ok(res);
                }
            }
            if start.elapsed() > timeout
                || (crd.is_none() && start.elapsed() > Duration::from_secs(10))
            {
                return Err(Diagnostic::error(format!(
                    "the server does not serve {} in {}",
                    r.kind, r.api_version
                ))
                .with_address(address)
                .with_hint("declare its CustomResourceDefinition in the configuration (claw applies CRDs first and waits until they are Established)"));
            }
            ctx.progress.report(
                address,
                &format!(
                    "waiting for the CustomResourceDefinition of {}.{} to be Established ({}s)",
                    r.kind,
                    r.group(),
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub(crate) async fn wait_ready(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        mode: &str,
        timeout: Duration,
        ctx: &Ctx,
    ) -> Result<(), Diagnostic> {
        let start = Instant::now();
        loop {
            let obj = self
                .cluster
                .get(&res.item(&r.namespace, &r.name))
                .await
                .map_err(|e| api_diag(address, &format!("reading {}", r.display()), &e))?;
            let i = |p: &str| obj.pointer(p).and_then(|v| v.as_i64());
            let gen_ok = i("/status/observedGeneration").unwrap_or(0)
                >= i("/metadata/generation").unwrap_or(0);
            let (done, msg) = match (mode, r.kind.as_str()) {
                ("complete", "Job") => {
                    let cond = |t: &str| {
                        obj.pointer("/status/conditions")
                            .and_then(|c| c.as_array())
                            .map(|cs| {
                                cs.iter().any(|c| {
                                    c.get("type").and_then(|x| x.as_str()) == Some(t)
                                        && c.get("status").and_then(|x| x.as_str()) == Some("True")
                                })
                            })
                            .unwrap_or(false)
                    };
                    if cond("Failed") {
                        return Err(Diagnostic::error(format!(
                            "Job {}/{} failed",
                            r.namespace, r.name
                        ))
                        .with_address(address)
                        .with_hint(format!("kubectl logs -n {} job/{}", r.namespace, r.name)));
                    }
                    (
                        cond("Complete"),
                        format!(
                            "waiting for Job to complete: {} succeeded",
                            i("/status/succeeded").unwrap_or(0)
                        ),
                    )
                }
                ("rollout", "DaemonSet") => {
                    let want = i("/status/desiredNumberScheduled").unwrap_or(0);
                    let upd = i("/status/updatedNumberScheduled").unwrap_or(0);
                    let avail = i("/status/numberAvailable").unwrap_or(0);
                    (
                        gen_ok && upd >= want && avail >= want,
                        format!("rollout: {avail}/{want} available"),
                    )
                }
                ("rollout", "Deployment" | "StatefulSet" | "ReplicaSet") => {
                    let want = i("/spec/replicas").unwrap_or(1);
                    let upd = i("/status/updatedReplicas").unwrap_or(0);
                    let ready = if r.kind == "StatefulSet" {
                        i("/status/readyReplicas").unwrap_or(0)
                    } else {
                        i("/status/availableReplicas").unwrap_or(0)
                    };
                    (
                        gen_ok && upd >= want && ready >= want,
                        format!("rollout: {upd}/{want} updated, {ready}/{want} available"),
                    )
                }
                _ => (true, String::new()),
            };
            if done {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Diagnostic::error(format!(
                    "{} not ready after {}s ({msg})",
                    r.display(),
                    timeout.as_secs()
                ))
                .with_address(address)
                .with_hint("raise `wait_timeout`, or check `kubectl describe` for why it does not become ready"));
            }
            ctx.progress
                .report(address, &format!("{msg} ({}s)", start.elapsed().as_secs()));
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }

    pub(crate) async fn wait_gone(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        ctx: &Ctx,
    ) -> Result<(), Diagnostic> {
        let start = Instant::now();
        loop {
            match self.cluster.get_opt(&res.item(&r.namespace, &r.name)).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) => {}
                Err(e) => return Err(api_diag(address, &format!("reading {}", r.display()), &e)),
            }
            if start.elapsed() > Duration::from_secs(300) {
                return Err(Diagnostic::error(format!(
                    "{} is still terminating after 5 minutes",
                    r.display()
                ))
                .with_address(address)
                .with_hint("look for finalizers that block its deletion (kubectl get -o yaml)"));
            }
            ctx.progress.report(
                address,
                &format!(
                    "waiting for {} to terminate ({}s)",
                    r.display(),
                    start.elapsed().as_secs()
                ),
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
