//! Order and waiting: CRDs and Namespaces first (deleted last), CRDs
//! Established, rollouts and Jobs.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

const CRD_AND_CR: &str = r#"
apiVersion: claw.example/v1
kind: Widget
metadata: {name: w1, namespace: shop}
spec: {size: 3}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.claw.example}
spec:
  group: claw.example
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"#;

#[tokio::test]
async fn custom_resources_follow_their_crd_and_namespace_and_deletes_reverse() {
    let env = env("crd");
    let f = yaml_file(&env, "crd.yaml", CRD_AND_CR);
    let cfg = vec![res("k8s_manifest", "w", json!({ "file": f }))];
    let cr = "k8s_manifest.w[\"claw.example/v1/Widget/shop/w1\"]";
    let crd = "k8s_manifest.w[\"apiextensions.k8s.io/v1/CustomResourceDefinition//widgets.claw.example\"]";
    let ns = "k8s_manifest.w[\"v1/Namespace//shop\"]";
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).plan().await;
    assert!(p.edges.contains(&Edge::new(cr, crd)), "{:?}", p.edges);
    assert!(p.edges.contains(&Edge::new(cr, ns)), "{:?}", p.edges);
    assert_eq!(
        p.action(cr),
        Some(Action::Create),
        "the CR's kind is not served yet: planned as a create"
    );
    h.apply_plan(&p).await.unwrap();
    assert_eq!(
        env.double
            .get("claw.example/v1", "Widget", "shop", "w1")
            .unwrap()["spec"]["size"],
        3
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());

    // Destroy: everything is deleted, the CR before its CRD, the namespace last.
    env.double.reset_requests();
    let p = h.set(vec![]).plan().await;
    assert_eq!(p.changes.len(), 3);
    h.apply_plan(&p).await.unwrap();
    let deletes: Vec<String> = env
        .double
        .request_log()
        .into_iter()
        .filter(|l| l.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes.len(), 3, "{deletes:?}");
    assert!(deletes[0].contains("/widgets/w1"), "{deletes:?}");
    assert!(
        deletes[1].contains("/customresourcedefinitions/"),
        "{deletes:?}"
    );
    assert!(deletes[2].contains("/namespaces/shop"), "{deletes:?}");
    assert!(env.double.find_labelled("claw.dev/stack=crd").is_empty());
}

#[tokio::test]
async fn a_custom_resource_waits_until_its_crd_is_established() {
    let mut env = env("establish");
    env.double
        .set_crd_establish_delay(std::time::Duration::from_millis(1500));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    env.ctx.progress = Progress(std::sync::Arc::new(move |a: &str, m: &str| {
        s2.lock().unwrap().push(format!("{a}: {m}"))
    }));
    let f = yaml_file(&env, "crd.yaml", CRD_AND_CR);
    let cfg = vec![res("k8s_manifest", "w", json!({ "file": f }))];
    let mut h = env.harness(vec![]);
    let started = std::time::Instant::now();
    h.set(cfg.clone()).converge().await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(1000));
    assert!(env
        .double
        .get("claw.example/v1", "Widget", "shop", "w1")
        .is_some());
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|m| m.contains("Widget")
            && m.contains(
                "waiting for the CustomResourceDefinition of Widget.claw.example to be Established"
            )),
        "{seen:?}"
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());
}

#[test]
fn a_secret_without_namespace_waits_for_the_default_namespace_document() {
    let env = env("deps");
    let Value::Map(ns) = Value::from_json(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
    ) else {
        panic!()
    };
    let Value::Map(secret) = Value::from_json(&json!({"data": {"k": "v"}})) else {
        panic!()
    };
    let item = |address: &str, rtype: &str, attrs| DepItem {
        address: address.into(),
        rtype: rtype.into(),
        attrs,
    };
    let items = vec![
        item(
            "k8s_manifest.ns[\"v1/Namespace//default\"]",
            "k8s_manifest",
            ns,
        ),
        item("k8s_secret.s", "k8s_secret", secret),
    ];
    let deps = env.provider.implicit_deps(ImplicitDepsRequest { items });
    assert_eq!(
        deps.edges,
        vec![Edge::new(
            "k8s_secret.s",
            "k8s_manifest.ns[\"v1/Namespace//default\"]"
        )]
    );
}

#[tokio::test]
async fn wait_for_rollout_and_job_completion() {
    let env = env("wait");
    let jobs = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: e2e}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: e2e, image: "busybox:1.36", command: ["true"]}]
"#;
    let f = yaml_file(&env, "job.yaml", jobs);
    let app = yaml_file(&env, "app.yaml", APP);
    let cfg = vec![
        res(
            "k8s_manifest",
            "app",
            json!({"file": app, "wait": "rollout", "wait_timeout": "30s"}),
        ),
        res(
            "k8s_manifest",
            "e2e",
            json!({"file": f, "wait": "complete"}),
        ),
    ];
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    assert!(h.set(cfg.clone()).plan().await.is_empty());
    let bad = vec![res(
        "k8s_manifest",
        "x",
        json!({"file": f, "wait_timeout": "soon"}),
    )];
    let err = env
        .harness(bad)
        .check()
        .into_iter()
        .find(|d| d.is_error())
        .expect("an error");
    assert!(err.hint.unwrap().contains("90s"));
}

#[tokio::test]
async fn apply_waits_for_a_slow_rollout_and_reports_progress() {
    let mut env = env("slow");
    env.double
        .set_rollout_delay(std::time::Duration::from_millis(1500));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    env.ctx.progress = Progress(std::sync::Arc::new(move |a: &str, m: &str| {
        s2.lock().unwrap().push(format!("{a}: {m}"))
    }));
    let f = yaml_file(&env, "app.yaml", APP);
    let cfg = vec![res(
        "k8s_manifest",
        "app",
        json!({"file": f, "wait": "rollout", "wait_timeout": "20s"}),
    )];
    let mut h = env.harness(vec![]);
    let started = std::time::Instant::now();
    h.set(cfg.clone()).converge().await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400));
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 1);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|m| m.starts_with(DEPLOY) && m.contains("rollout: 0/1 updated, 0/1 available")),
        "{seen:?}"
    );

    // Too short a timeout: an error that says what it waited for.
    env.double
        .set_rollout_delay(std::time::Duration::from_secs(8));
    yaml_file(&env, "app.yaml", &APP.replace("nginx:1.27", "nginx:1.28"));
    let cfg = vec![res(
        "k8s_manifest",
        "app",
        json!({"file": f, "wait": "rollout", "wait_timeout": "1s"}),
    )];
    let p = h.set(cfg.clone()).plan().await;
    let err = h.apply_plan(&p).await.unwrap_err();
    assert!(err.summary.contains("not ready after 1s"), "{err}");
    assert!(err.hint.unwrap().contains("wait_timeout"));
}
