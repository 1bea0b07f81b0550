//! Automatic rollouts through the CLI against the Kubernetes API double
//! (issue 15): a Deployment reading a `k8s_secret` through `envFrom`, and
//! one mounting a ConfigMap of a `k8s_manifest`. A changed value plans the
//! Deployment's update with the reason, apply changes its pod-template
//! annotation (a keyed digest, never a plain SHA-1/SHA-256 of the value),
//! and the next plan is clean; an unchanged value plans nothing.

use crate::common::{says, Ctx, Out};
use kube_api_double::KubeApiDouble;
use sha2::{Digest, Sha256};

const STACK: &str = r#"[stack]
name = "rollout"

[provider.k3s]
type = "kubernetes"
namespace = "rollout"

[k8s_manifest.ns]
manifest = { apiVersion = "v1", kind = "Namespace", metadata = { name = "rollout" } }

[k8s_secret.keys]
name = "gw-keys"
data = { API_KEY = { env = "GW_KEY" } }

[k8s_manifest.cfg]
manifest = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "gw-config" }, data = { "clawdbot.json" = "${vars.config}" } }

[k8s_manifest.gw]
file = "gw.yaml"

[vars]
config = "{}"
"#;

const GW: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: gw}
spec:
  selector: {matchLabels: {app: gw}}
  template:
    metadata: {labels: {app: gw}}
    spec:
      containers:
      - name: gw
        image: clawdbot:1
        envFrom: [{secretRef: {name: gw-keys}}]
        volumeMounts: [{name: config, mountPath: /etc/clawdbot}]
      volumes:
      - {name: config, configMap: {name: gw-config}}
"#;

const DEPLOYMENT: &str = "k8s_manifest.gw[\"apps/v1/Deployment/rollout/gw\"]";

struct Setup {
    t: Ctx,
    double: KubeApiDouble,
}

fn setup() -> Setup {
    let double = KubeApiDouble::start().expect("start the Kubernetes API double");
    let t = Ctx::new();
    t.write("kubeconfig", &double.kubeconfig("default"));
    let kc = t.path("kubeconfig").display().to_string();
    let t = t.env("KUBECONFIG", &kc);
    t.write("claw.toml", STACK);
    t.write("gw.yaml", GW);
    Setup { t, double }
}

/// Runs claw with `GW_KEY=key`, expecting `code`.
fn run(t: &Ctx, key: &str, args: &[&str], code: i32) -> Out {
    let o = t.command(args).env("GW_KEY", key).output().unwrap();
    let out = Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert_eq!(out.code, code, "claw {args:?}:\n{}", out.all());
    out
}

fn annotation(d: &KubeApiDouble) -> String {
    let dep = d.get("apps/v1", "Deployment", "rollout", "gw").unwrap();
    dep["spec"]["template"]["metadata"]["annotations"]["claw.dev/inputs"]
        .as_str()
        .expect("the pod template carries claw.dev/inputs")
        .to_string()
}

/// SHA-1 and SHA-256 of `value`, plain and as the Secret holds it (base64).
fn plain_digests(value: &str) -> Vec<String> {
    let b64 = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    let mut out = Vec::new();
    for v in [value.to_string(), b64] {
        out.push(hex::encode(Sha256::digest(v.as_bytes())));
        let sha1 = std::process::Command::new("sh")
            .arg("-c")
            .arg("printf %s \"$V\" | sha1sum")
            .env("V", &v)
            .output()
            .unwrap();
        let sha1 = String::from_utf8_lossy(&sha1.stdout);
        out.push(sha1.split_whitespace().next().unwrap().to_string());
    }
    assert!(out.iter().all(|d| d.len() >= 40), "{out:?}");
    out
}

fn assert_not_plain(annotation: &str, value: &str) {
    for d in plain_digests(value) {
        assert!(
            !annotation.contains(&d),
            "the annotation holds a plain digest of the value: {annotation}"
        );
    }
}

#[test]
fn kubernetes_a_rotated_secret_rolls_the_deployment_that_reads_it_through_env_from() {
    let Setup { t, double } = setup();
    let plan = run(&t, "key-one", &["plan"], 0);
    says(&plan.stdout, "Plan: 4 to create");
    run(&t, "key-one", &["apply", "--auto-approve"], 0);
    run(&t, "key-one", &["plan", "--detailed-exitcode"], 0);
    let first = annotation(&double);
    assert!(first.starts_with("hmac-sha256:"), "{first}");
    assert_not_plain(&first, "key-one");

    let plan = run(&t, "key-two", &["plan", "--detailed-exitcode"], 2);
    says(&plan.stdout, "~ k8s_secret.keys");
    says(&plan.stdout, DEPLOYMENT);
    says(
        &plan.stdout,
        "update in place (rolls pods: k8s_secret.keys changed)",
    );
    says(
        &plan.stdout,
        "~ spec.template.metadata.annotations[\"claw.dev/inputs\"]",
    );
    says(
        &plan.stdout,
        "Plan: 0 to create, 2 to update, 0 to replace, 0 to delete.",
    );
    assert!(!plan.all().contains("key-two"), "{}", plan.all());
    let json = run(&t, "key-two", &["plan", "--format", "json"], 0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let change = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == DEPLOYMENT)
        .unwrap();
    assert_eq!(
        change["reason"],
        serde_json::json!({"kind": "rollout", "by": ["k8s_secret.keys"]})
    );

    run(&t, "key-two", &["apply", "--auto-approve"], 0);
    let second = annotation(&double);
    assert_ne!(second, first, "the pod template changed: the pods roll");
    assert_not_plain(&second, "key-two");
    run(&t, "key-two", &["plan", "--detailed-exitcode"], 0);
    let state = t.read(".claw/state.json");
    assert!(!state.contains("key-two") && !state.contains("key-one"));
}

#[test]
fn kubernetes_a_changed_config_map_rolls_the_deployment_that_mounts_it() {
    let Setup { t, double } = setup();
    run(&t, "k", &["apply", "--auto-approve"], 0);
    let first = annotation(&double);
    let with_config = |v: &str, extra: &str| {
        STACK
            .replace("config = \"{}\"", &format!("config = '{v}'"))
            .replace("file = \"gw.yaml\"", &format!("file = \"gw.yaml\"{extra}"))
    };
    // Planned, saved and applied from the file: the plan is the contract.
    t.write("claw.toml", &with_config("{\"port\": 8080}", ""));
    let plan = run(
        &t,
        "k",
        &["plan", "--out", "p.json", "--detailed-exitcode"],
        2,
    );
    says(
        &plan.stdout,
        "update in place (rolls pods: k8s_manifest.cfg[\"v1/ConfigMap/rollout/gw-config\"] changed)",
    );
    run(&t, "k", &["apply", "p.json"], 0);
    let second = annotation(&double);
    assert_ne!(second, first);
    assert_not_plain(&second, "{\"port\": 8080}");
    run(&t, "k", &["plan", "--detailed-exitcode"], 0);

    // Opting out: the annotation is no longer claw's to set, and a changed
    // value updates the ConfigMap alone.
    t.write(
        "claw.toml",
        &with_config("{\"port\": 8080}", "\nrollout = false"),
    );
    run(&t, "k", &["apply", "--auto-approve"], 0);
    let dep = double
        .get("apps/v1", "Deployment", "rollout", "gw")
        .unwrap();
    assert!(
        dep["spec"]["template"]["metadata"]["annotations"]["claw.dev/inputs"].is_null(),
        "{dep:#}"
    );
    t.write(
        "claw.toml",
        &with_config("{\"port\": 9090}", "\nrollout = false"),
    );
    let plan = run(&t, "k", &["plan", "--detailed-exitcode"], 2);
    says(&plan.stdout, "Plan: 0 to create, 1 to update");
    assert!(!plan.stdout.contains(DEPLOYMENT), "{}", plan.stdout);
}
