//! The API double and a provider configured against it; plans and applies
//! go through the SDK's harness ([`claw_provider::testing`]), which runs the
//! engine's steps and the real `decide`.

#![allow(dead_code, clippy::result_large_err)]

pub use claw_provider::decide::Action;
pub use claw_provider::testing::{Harness, Plan, Resource};
use claw_provider::*;
use kube_api_double::KubeApiDouble;
use std::sync::Arc;

pub struct Env {
    pub double: KubeApiDouble,
    pub dir: tempfile::TempDir,
    pub provider: Arc<dyn Provider>,
    pub ctx: Ctx,
    pub kubeconfig: std::path::PathBuf,
}

pub fn env(stack: &str) -> Env {
    env_with(stack, KubeApiDouble::start().expect("start the API double"))
}

/// Like [`env`], with a double serving HTTPS and requiring a client certificate.
pub fn env_tls(stack: &str) -> Env {
    env_with(
        stack,
        KubeApiDouble::start_tls().expect("start the TLS API double"),
    )
}

pub fn env_with(stack: &str, double: KubeApiDouble) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, double.kubeconfig("default")).unwrap();
    let ctx = Ctx::for_tests(stack, dir.path());
    let provider = provider_for(&kubeconfig, &ctx);
    Env {
        double,
        dir,
        provider,
        ctx,
        kubeconfig,
    }
}

pub fn provider_for(kubeconfig: &std::path::Path, ctx: &Ctx) -> Arc<dyn Provider> {
    let mut attrs = Attrs::new();
    attrs.insert(
        "kubeconfig".into(),
        Value::str(kubeconfig.to_str().unwrap()),
    );
    attrs.insert("namespace".into(), Value::str("default"));
    claw_kubernetes::factory()
        .configure(ConfigureRequest {
            alias: "k8s".into(),
            attrs,
            ctx: ctx.clone(),
        })
        .unwrap()
}

impl Env {
    /// A harness (empty state) planning `config` through this provider.
    pub fn harness(&self, config: Vec<Resource>) -> Harness {
        let mut h = Harness::new(self.provider.clone(), self.ctx.clone());
        h.set(config);
        h
    }
}

/// A resource table: (type, name, attributes as JSON).
pub fn res(rtype: &str, name: &str, attrs: serde_json::Value) -> Resource {
    Resource::json(rtype, name, attrs)
}

/// The attribute changes of `address`, which the plan must show as `action`.
pub fn changes<'a>(p: &'a Plan, address: &str, action: Action) -> &'a [AttrChange] {
    match p.get(address) {
        Some(c) if c.action == action => &c.diff,
        _ => panic!(
            "{address}: expected {action:?}; the plan: {:#?}",
            p.changes
                .iter()
                .map(|c| (&c.address, c.action))
                .collect::<Vec<_>>()
        ),
    }
}

pub const APP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
        resources: {limits: {memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  greeting: hello
  mode: fast
"#;

/// The `app` manifest from `yaml` (written to app.yaml).
pub fn app(env: &Env, yaml: &str) -> Vec<Resource> {
    let f = yaml_file(env, "app.yaml", yaml);
    vec![res("k8s_manifest", "app", serde_json::json!({ "file": f }))]
}

pub const DEPLOY: &str = "k8s_manifest.app[\"apps/v1/Deployment/shop/web\"]";
pub const CM: &str = "k8s_manifest.app[\"v1/ConfigMap/shop/web-config\"]";

pub fn yaml_file(env: &Env, name: &str, text: &str) -> String {
    std::fs::write(env.dir.path().join(name), text).unwrap();
    name.to_string()
}

pub fn yaml_file_in(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_string()
}
