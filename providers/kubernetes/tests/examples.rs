//! The example manifests (examples/*/) applied through the provider against
//! the API double with the values their claw.toml passes: create, a no-change
//! replan, and a destroy that leaves no labelled object. (The CLI end-to-end
//! version, which reads the claw.toml files, is tests/it/kubernetes.rs.)

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn file(dir: &str, f: &str) -> String {
    examples().join(dir).join(f).to_str().unwrap().to_string()
}

fn secret(env: &Env, name: &str, ns: &str, keys: &[&str]) -> Resource {
    let data: claw_provider::Map = keys
        .iter()
        .map(|k| (k.to_string(), env.ctx.secret(&format!("test-{k}"))))
        .collect();
    let mut attrs = Attrs::new();
    attrs.insert("name".into(), Value::str(name));
    attrs.insert("namespace".into(), Value::str(ns));
    attrs.insert("data".into(), Value::Map(data));
    Resource::new("k8s_secret", &name.replace('-', "_"), attrs)
}

async fn round_trip(stack: &str, cfg: impl Fn(&Env) -> Vec<Resource>, min_objects: usize) {
    let env = env(stack);
    let mut h = env.harness(cfg(&env));
    let p = h.converge().await;
    assert!(p.changes.len() >= min_objects, "{:?}", p.changes);
    let labelled = env.double.find_labelled(&format!("claw.dev/stack={stack}"));
    assert_eq!(labelled.len(), p.changes.len(), "{labelled:#?}");
    let again = h.assert_converged().await;
    assert!(again.diagnostics.is_empty(), "{:?}", again.diagnostics);
    h.destroy().await;
    assert_eq!(
        env.double.find_labelled(&format!("claw.dev/stack={stack}")),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn claude_sandbox() {
    round_trip(
        "claude-sandbox",
        |env| {
            let ns = json!({"namespace": "claude-sandbox"});
            vec![
                res("k8s_manifest", "namespace", json!({"manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "claude-sandbox"}}})),
                secret(env, "claude-sandbox-secrets", "claude-sandbox", &["GITHUB_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"]),
                res("k8s_manifest", "network", json!({"file": file("claude-sandbox", "networkpolicy.yaml"), "vars": ns})),
                res("k8s_manifest", "job", json!({"file": file("claude-sandbox", "job-template.yaml"),
                    "vars": {"namespace": "claude-sandbox", "image": "landovsky/claude-sandbox:latest"}})),
            ]
        },
        4,
    )
    .await;
}

#[tokio::test]
async fn claworc() {
    round_trip(
        "claworc",
        |env| {
            let mut v = vec![
                res("k8s_manifest", "namespace", json!({"manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "claworc"}}})),
                res("k8s_manifest", "rbac", json!({"file": file("claworc", "rbac.yaml"), "vars": {"namespace": "claworc"}})),
            ];
            for (bot, port) in [("alpha", 30100), ("bravo", 30102)] {
                v.push(res("k8s_manifest", &format!("bot_{bot}"), json!({"file": file("claworc", "bot.yaml"), "vars": {
                    "name": bot, "namespace": "claworc", "image": "glukw/openclaw-vnc-chrome:latest",
                    "storage_class": "local-path", "chrome_port": port, "terminal_port": port + 1}})));
                v.push(secret(env, &format!("bot-{bot}-keys"), "claworc", &["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "BRAVE_API_KEY"]));
            }
            v
        },
        4 + 2 * 8,
    )
    .await;
}

#[tokio::test]
async fn k8sclaw() {
    round_trip(
        "k8sclaw",
        |_| {
            let ns = json!({"namespace": "k8sclaw-system"});
            vec![
                res("k8s_manifest", "namespace", json!({"manifest": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "k8sclaw-system"}}})),
                res("k8s_manifest", "crds", json!({"file": file("k8sclaw", "crds.yaml")})),
                res("k8s_manifest", "rbac", json!({"file": file("k8sclaw", "rbac.yaml"), "vars": ns})),
                res("k8s_manifest", "network", json!({"file": file("k8sclaw", "network.yaml"), "vars": ns})),
                res("k8s_manifest", "samples", json!({"file": file("k8sclaw", "samples.yaml"), "vars": ns})),
            ]
        },
        14,
    )
    .await;
}

#[tokio::test]
async fn clawdbot_fleet_kubernetes_part() {
    round_trip(
        "clawdbot",
        |env| {
            let ns = json!({"namespace": "clawdbot"});
            vec![
                res("k8s_manifest", "namespace", json!({"file": file("clawdbot-fleet", "k8s/namespace.yaml"), "vars": ns})),
                secret(env, "clawdbot-secrets", "clawdbot", &["ANTHROPIC_API_KEY"]),
                res("k8s_manifest", "gateway", json!({"file": file("clawdbot-fleet", "k8s/clawdbot-gateway.yaml"), "vars": {
                    "namespace": "clawdbot", "image": "ghcr.io/anthropics/clawdbot:latest", "model": "anthropic/claude-sonnet-4-20250514"}, "wait": "rollout"})),
                res("k8s_manifest", "e2e", json!({"file": file("clawdbot-fleet", "k8s/test-runner.yaml"), "vars": {
                    "namespace": "clawdbot", "workspace": "/srv/clawdbot"}, "wait": "complete"})),
            ]
        },
        7,
    )
    .await;
}
