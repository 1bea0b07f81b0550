//! Reaching the cluster: unreachable servers, namespace-scoped RBAC, TLS
//! with client certificates, contexts, tokens and exec plugins, and errors
//! found before any request.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn an_unreachable_cluster_is_one_error_with_a_hint() {
    let env = env("unreachable");
    drop(env.double); // the kubeconfig now points at a closed port
    let kc = env.dir.path().join("kubeconfig");
    let provider = provider_for(&kc, &env.ctx);
    let f = yaml_file_in(env.dir.path(), "app.yaml", APP);
    let env2 = Env {
        double: kube_api_double::KubeApiDouble::start().unwrap(),
        provider,
        ..env
    };
    let cfg = vec![res("k8s_manifest", "app", json!({ "file": f }))];
    let p = env2.harness(cfg).plan().await;
    let errors: Vec<_> = p.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("kubectl cluster-info"),
        "{}",
        errors[0]
    );
    eprintln!("{}", errors[0]);
}

#[tokio::test]
async fn namespace_scoped_rbac_lists_per_namespace() {
    let env = env("rbac");
    env.double.forbid_cluster_wide_lists(true);
    let two = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-a}
data: {k: a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team-b}
data: {k: b}
"#;
    let f = yaml_file(&env, "two.yaml", two);
    let cfg = vec![res("k8s_manifest", "two", json!({ "file": f }))];
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).converge().await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    env.double.reset_requests();
    let p = h.set(cfg.clone()).plan().await;
    assert!(
        p.is_empty() && p.diagnostics.is_empty(),
        "{:?} {:?}",
        p.changes,
        p.diagnostics
    );
    let lists: Vec<String> = env
        .double
        .request_log()
        .into_iter()
        .filter(|l| l.contains("/configmaps"))
        .collect();
    assert_eq!(
        lists.len(),
        3,
        "a forbidden cluster-wide list, then one per namespace: {lists:?}"
    );
}

#[tokio::test]
async fn https_with_a_private_ca_and_client_certificates_like_k3s() {
    let env = env_tls("tls");
    assert!(env.double.url().starts_with("https://"));
    let cfg = app(&env, APP);
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).converge().await;
    assert_eq!(p.changes.len(), 4);
    assert!(h.set(cfg.clone()).plan().await.is_empty());

    // Without the client certificate the server refuses the handshake: one clear error.
    let kc = env.dir.path().join("kubeconfig-nocert");
    let text: String = std::fs::read_to_string(&env.kubeconfig)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("  user:\n", "  user:\n    token: nope\n");
    std::fs::write(&kc, text).unwrap();
    h.provider = provider_for(&kc, &env.ctx);
    let p = h.plan().await;
    let errors: Vec<_> = p.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .summary
            .contains("cannot reach the Kubernetes API at https://127.0.0.1"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn the_provider_context_picks_the_cluster_and_its_namespace() {
    let first = kube_api_double::KubeApiDouble::start().unwrap();
    let second = kube_api_double::KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: one\n  cluster: {{server: {}}}\n- name: two\n  cluster: {{server: {}}}\n\
             contexts:\n- name: first\n  context: {{cluster: one, user: u}}\n- name: second\n  context: {{cluster: two, user: u, namespace: team}}\n\
             current-context: first\nusers:\n- name: u\n  user: {{token: t}}\n",
            first.url(),
            second.url()
        ),
    )
    .unwrap();
    second
        .put_object(
            "setup",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
        )
        .unwrap();
    let ctx = Ctx::for_tests("ctx", dir.path());
    let mut attrs = Attrs::new();
    attrs.insert("kubeconfig".into(), Value::str(kc.to_str().unwrap()));
    attrs.insert("context".into(), Value::str("second"));
    let provider = claw_kubernetes::factory()
        .configure(ConfigureRequest {
            alias: "k".into(),
            attrs,
            ctx: ctx.clone(),
        })
        .unwrap();
    let env = Env {
        double: second,
        dir,
        provider,
        ctx,
        kubeconfig: kc,
    };
    let cfg = vec![res(
        "k8s_manifest",
        "cm",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}}),
    )];
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).converge().await;
    assert_eq!(
        p.changes[0].address, "k8s_manifest.cm[\"v1/ConfigMap/team/c\"]",
        "the context's namespace"
    );
    assert!(env.double.get("v1", "ConfigMap", "team", "c").is_some());
    assert!(first.get("v1", "ConfigMap", "team", "c").is_none());
    assert_eq!(
        first.requests(),
        0,
        "the current context's cluster is never contacted"
    );
}

#[tokio::test]
async fn tokens_from_the_kubeconfig_and_exec_plugins_authenticate() {
    let double = kube_api_double::KubeApiDouble::start().unwrap();
    double.require_bearer_token("s3cret-token");
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::for_tests("auth", dir.path());
    let cfg = vec![res(
        "k8s_manifest",
        "cm",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}}),
    )];
    let url = double.url();
    let kubeconfig = |user: &str| {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: {url}}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}"
        )
    };
    // A wrong token: one error with a hint about credentials.
    let kc = dir.path().join("wrong");
    std::fs::write(&kc, kubeconfig("    token: wrong\n")).unwrap();
    let p = provider_for(&kc, &ctx);
    let env = Env {
        double,
        dir,
        provider: p,
        ctx: ctx.clone(),
        kubeconfig: kc,
    };
    let two_kinds = vec![
        res(
            "k8s_manifest",
            "cm",
            json!({"manifest": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}}),
        ),
        res(
            "k8s_manifest",
            "ns",
            json!({"manifest": {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}}),
        ),
    ];
    let pl = env.harness(two_kinds).plan().await;
    let errors: Vec<_> = pl.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "one error, not one per kind: {errors:#?}");
    assert!(
        errors[0].hint.as_deref().unwrap().contains("credentials"),
        "{}",
        errors[0]
    );

    // An exec credential plugin (as EKS, GKE and AKS kubeconfigs use).
    let kc = env.dir.path().join("exec");
    std::fs::write(
        &kc,
        kubeconfig(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"-c\", \"printf '%s' '{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1beta1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"s3cret-token\\\"}}'\"]\n      interactiveMode: Never\n",
        ),
    )
    .unwrap();
    let provider = provider_for(&kc, &ctx);
    let env = Env {
        provider,
        kubeconfig: kc,
        ..env
    };
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    assert!(env.double.get("v1", "ConfigMap", "default", "c").is_some());
    assert!(h.set(cfg.clone()).plan().await.is_empty());
}

#[test]
fn an_invalid_object_name_is_an_error_before_any_request() {
    let env = env("names");
    let cfg = vec![res(
        "k8s_manifest",
        "bad",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Web_Config"}}}),
    )];
    let err = env
        .harness(cfg)
        .check()
        .into_iter()
        .find(|d| d.is_error())
        .expect("an error");
    assert!(
        err.summary
            .contains("\"Web_Config\" is not a valid Kubernetes name"),
        "{err}"
    );
    assert!(err.hint.is_some());
    assert_eq!(env.double.requests(), 0);
}
