//! Requests per operation against the API double (issue 14): refresh lists
//! each kind once; apply then makes at most one request per object, because
//! refresh already knows which objects are absent (create: one apply patch)
//! and which are this stack's (update: one apply patch; delete: one DELETE).

mod common;

use common::*;
use serde_json::json;

/// 1 Namespace and `n` each of ConfigMap, Secret, Service and Deployment.
fn objects(n: usize, version: &str) -> String {
    let mut docs = vec!["apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n".to_string()];
    for i in 0..n {
        docs.push(format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: bench}}\ndata: {{key: {version}-{i}}}\n"));
        docs.push(format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s-{i}, namespace: bench}}\nstringData: {{token: t-{i}}}\n"));
        docs.push(format!("apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: bench}}\nspec: {{selector: {{app: a{i}}}, ports: [{{port: 80}}]}}\n"));
        docs.push(format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d-{i}, namespace: bench}}\nspec:\n  selector: {{matchLabels: {{app: a{i}}}}}\n  template:\n    metadata: {{labels: {{app: a{i}}}}}\n    spec: {{containers: [{{name: c, image: \"nginx:1.27\"}}]}}\n"));
    }
    docs.join("---\n")
}

/// Requests since the last reset, by method.
fn by_method(env: &Env) -> (usize, usize, usize) {
    let log = env.double.request_log();
    let n = |m: &str| log.iter().filter(|l| l.starts_with(m)).count();
    (n("GET "), n("PATCH "), n("DELETE "))
}

#[tokio::test]
async fn apply_makes_one_request_per_object() {
    let env = env("requests");
    let n = 10;
    let objs = 1 + 4 * n;
    let f = yaml_file(&env, "objects.yaml", &objects(n, "v1"));
    let mut h = env.harness(vec![res("k8s_manifest", "objects", json!({ "file": f }))]);

    // Create from nothing: the plan's lists show every object absent.
    let plan = h.plan().await;
    assert_eq!(plan.changes.len(), objs);
    env.double.reset_requests();
    h.apply_plan(&plan).await.unwrap();
    let (gets, patches, deletes) = by_method(&env);
    eprintln!("create {objs} objects: {gets} GET, {patches} PATCH");
    assert_eq!(
        (gets, patches, deletes),
        (0, objs, 0),
        "{:#?}",
        env.double.request_log()
    );
    h.assert_converged().await;

    // Update every ConfigMap: one apply patch each.
    yaml_file(&env, "objects.yaml", &objects(n, "v2"));
    let plan = h.plan().await;
    assert_eq!(plan.changes.len(), n, "{:?}", plan.changes);
    env.double.reset_requests();
    h.apply_plan(&plan).await.unwrap();
    let (gets, patches, deletes) = by_method(&env);
    eprintln!("update {n} objects: {gets} GET, {patches} PATCH");
    assert_eq!(
        (gets, patches, deletes),
        (0, n, 0),
        "{:#?}",
        env.double.request_log()
    );
    h.assert_converged().await;

    // Destroy: one DELETE each (the Namespace too: the double removes it at once).
    let plan = h.plan_destroy().await;
    env.double.reset_requests();
    h.apply_plan(&plan).await.unwrap();
    let (gets, patches, deletes) = by_method(&env);
    eprintln!("delete {objs} objects: {gets} GET, {deletes} DELETE");
    assert_eq!(
        (gets, patches, deletes),
        (0, 0, objs),
        "{:#?}",
        env.double.request_log()
    );
    assert!(env
        .double
        .find_labelled("claw.dev/stack=requests")
        .is_empty());
}

/// Without a refresh of this run (a provider that has not listed the kind),
/// apply still checks before it creates: it never takes over an object it
/// does not own.
#[tokio::test]
async fn without_a_list_a_create_still_looks_first() {
    let env = env("unlisted");
    env.double
        .put_object(
            "kubectl-create",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "theirs", "namespace": "default"}, "data": {"k": "v"}}),
        )
        .unwrap();
    let cfg = vec![res(
        "k8s_manifest",
        "cm",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs"}, "data": {"k": "mine"}}}),
    )];
    let h = env.harness(cfg);
    let forced = h.forced_create("k8s_manifest.cm[\"v1/ConfigMap/default/theirs\"]");
    let mut fresh = env.harness(vec![]);
    fresh.provider = provider_for(&env.kubeconfig, &env.ctx);
    let err = fresh.apply_plan(&forced).await.unwrap_err();
    assert!(err.summary.contains("not managed by claw"), "{err}");
    assert_eq!(
        env.double
            .get("v1", "ConfigMap", "default", "theirs")
            .unwrap()["data"]["k"],
        "v"
    );
}
