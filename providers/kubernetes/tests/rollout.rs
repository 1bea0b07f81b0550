//! Automatic rollouts through the harness against the API double: a
//! Deployment reading a `k8s_secret` through `envFrom`, and one mounting a
//! ConfigMap of a `k8s_manifest`, carry `claw.dev/inputs` on their pod
//! template; a changed value changes it (a keyed digest, not a plain hash),
//! an unchanged one changes nothing, and `rollout = false` leaves it out.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

const GW: &str = "k8s_manifest.gw[\"apps/v1/Deployment/default/gw\"]";
const CM: &str = "k8s_manifest.cfg[\"v1/ConfigMap/default/gw-config\"]";
const PATH: &str = "spec.template.metadata.annotations[\"claw.dev/inputs\"]";

fn deployment(pod_spec: serde_json::Value, rollout: Option<bool>) -> Resource {
    let mut attrs = json!({"manifest": {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw"},
        "spec": {"selector": {"matchLabels": {"app": "gw"}},
                 "template": {"metadata": {"labels": {"app": "gw"}}, "spec": pod_spec}}}});
    if let Some(r) = rollout {
        attrs["rollout"] = json!(r);
    }
    res("k8s_manifest", "gw", attrs)
}

fn reads_secret(rollout: Option<bool>) -> Resource {
    deployment(
        json!({"containers": [{"name": "gw", "image": "gw:1", "envFrom": [{"secretRef": {"name": "gw-keys"}}]}]}),
        rollout,
    )
}

fn secret(value: &str) -> Resource {
    res(
        "k8s_secret",
        "keys",
        json!({"name": "gw-keys", "data": {"API_KEY": value}}),
    )
}

fn inputs(env: &Env) -> Option<String> {
    let d = env.double.get("apps/v1", "Deployment", "default", "gw")?;
    d["spec"]["template"]["metadata"]["annotations"]["claw.dev/inputs"]
        .as_str()
        .map(str::to_string)
}

/// The plain digests an annotation must never be (of the value, and of
/// its base64 form as the Secret holds it).
fn plain_digests(value: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    [value.to_string(), b64]
        .iter()
        .map(|v| hex::encode(Sha256::digest(v.as_bytes())))
        .collect()
}

#[tokio::test]
async fn a_rotated_secret_rolls_the_deployment_that_reads_it() {
    let env = env("roll");
    let mut h = env.harness(vec![secret("one"), reads_secret(None)]);
    let p = h.converge().await;
    assert_eq!(p.action(GW), Some(Action::Create));
    // The Secret is applied first: the Deployment depends on it.
    assert!(
        p.edges.contains(&Edge::new(GW, "k8s_secret.keys")),
        "{:?}",
        p.edges
    );
    let first = inputs(&env).expect("the pod template carries claw.dev/inputs");
    assert!(first.starts_with("hmac-sha256:"), "{first}");

    // The same value again: nothing to do.
    h.set(vec![secret("one"), reads_secret(None)]);
    h.assert_converged().await;

    // A new value: the Secret and the Deployment's pod template change.
    h.set(vec![secret("two"), reads_secret(None)]);
    let p = h.plan().await;
    assert_eq!(p.action("k8s_secret.keys"), Some(Action::Update));
    let diff = changes(&p, GW, Action::Update);
    assert_eq!(
        diff.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        [PATH]
    );
    h.apply().await;
    h.assert_converged().await;
    let second = inputs(&env).unwrap();
    assert_ne!(second, first);
    for plain in plain_digests("two").into_iter().chain(plain_digests("one")) {
        assert!(!second.contains(&plain), "a plain digest of the value");
        assert!(!first.contains(&plain), "a plain digest of the value");
    }
}

#[tokio::test]
async fn a_changed_config_map_rolls_the_deployment_that_mounts_it() {
    let env = env("roll");
    let cm = |v: &str| {
        res(
            "k8s_manifest",
            "cfg",
            json!({"manifest": {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "gw-config"}, "data": {"clawdbot.json": v}}}),
        )
    };
    let gw = deployment(
        json!({"containers": [{"name": "gw", "image": "gw:1",
                "volumeMounts": [{"name": "config", "mountPath": "/etc/clawdbot"}]}],
               "volumes": [{"name": "config", "configMap": {"name": "gw-config"}}]}),
        None,
    );
    let mut h = env.harness(vec![cm("{}"), gw.clone()]);
    h.converge().await;
    let first = inputs(&env).unwrap();
    h.set(vec![cm("{\"port\": 8080}"), gw.clone()]);
    let p = h.plan().await;
    assert_eq!(p.action(CM), Some(Action::Update));
    assert_eq!(p.action(GW), Some(Action::Update));
    h.apply().await;
    h.assert_converged().await;
    let second = inputs(&env).unwrap();
    assert_ne!(first, second);
    for plain in plain_digests("{\"port\": 8080}") {
        assert!(!second.contains(&plain));
    }
    // A label on the ConfigMap is not its data: no rollout.
    let mut labelled = cm("{\"port\": 8080}");
    labelled.attrs.insert(
        "manifest".into(),
        Value::from_json(&json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "gw-config", "labels": {"team": "a"}},
            "data": {"clawdbot.json": "{\"port\": 8080}"}})),
    );
    h.set(vec![labelled, gw]);
    let p = h.plan().await;
    assert_eq!(p.action(CM), Some(Action::Update));
    assert_eq!(p.action(GW), None, "{:?}", p.changes);
}

#[tokio::test]
async fn rollout_false_keeps_the_order_and_leaves_the_template_alone() {
    let env = env("roll");
    let mut h = env.harness(vec![secret("one"), reads_secret(Some(false))]);
    let p = h.converge().await;
    assert!(p.edges.contains(&Edge::new(GW, "k8s_secret.keys")));
    assert_eq!(inputs(&env), None);
    h.set(vec![secret("two"), reads_secret(Some(false))]);
    let p = h.plan().await;
    assert_eq!(p.action("k8s_secret.keys"), Some(Action::Update));
    assert_eq!(p.action(GW), None);
    // `rollout` is claw's, not the document's: not sent, not drift.
    let d = env
        .double
        .get("apps/v1", "Deployment", "default", "gw")
        .unwrap();
    assert!(d.get("rollout").is_none());
}

#[tokio::test]
async fn an_unmanaged_secret_is_not_followed() {
    let env = env("roll");
    // The Deployment reads `gw-keys`, which this stack does not manage.
    let mut h = env.harness(vec![reads_secret(None)]);
    h.converge().await;
    assert_eq!(inputs(&env), None);
}
