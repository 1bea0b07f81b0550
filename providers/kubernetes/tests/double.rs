//! The Kubernetes provider against the API double (started in-process on a
//! loopback port per test, so tests run in parallel).

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

const APP: &str = r#"
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

fn app(env: &Env, yaml: &str) -> Vec<Res> {
    let f = yaml_file(env, "app.yaml", yaml);
    vec![res("k8s_manifest", "app", json!({ "file": f }))]
}

const DEPLOY: &str = "k8s_manifest.app[\"apps/v1/Deployment/shop/web\"]";
const CM: &str = "k8s_manifest.app[\"v1/ConfigMap/shop/web-config\"]";

#[tokio::test]
async fn create_then_replan_is_a_no_op_despite_server_defaults() {
    let env = env("shop");
    let cfg = app(&env, APP);
    let mut state = State::new();
    let p = converge(&env, &cfg, &mut state).await;
    assert_eq!(p.actions.len(), 4, "{:?}", p.actions);
    assert!(p.actions.iter().all(|(_, _, a)| *a == Action::Create));
    // The server defaulted fields claw never set.
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(
        d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
    assert_eq!(d["metadata"]["labels"][LABEL_STACK], "shop");
    assert_eq!(d["metadata"]["annotations"][LABEL_ADDRESS], DEPLOY);
    let mf = d["metadata"]["managedFields"].as_array().unwrap();
    assert!(mf
        .iter()
        .any(|m| m["manager"] == "claw" && m["operation"] == "Apply"));

    let p = plan(&env, &cfg, &state).await;
    assert!(p.is_empty(), "no-op replan shows noise: {:?}", p.actions);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    // The fingerprint is stable across plans, ignores status writes by
    // controllers, and changes with the spec or the labels.
    let p2 = plan(&env, &cfg, &state).await;
    let fp = |p: &Plan| p.live[DEPLOY].as_ref().unwrap().fingerprint.clone();
    assert_eq!(fp(&p), fp(&p2));
    let rv = |env: &Env| {
        env.double
            .get("apps/v1", "Deployment", "shop", "web")
            .unwrap()["metadata"]["resourceVersion"]
            .clone()
    };
    let before = rv(&env);
    env.double
        .put_status(
            "apps/v1",
            "Deployment",
            "shop",
            "web",
            json!({"observedGeneration": 1, "replicas": 1}),
        )
        .unwrap();
    assert_ne!(before, rv(&env));
    assert_eq!(fp(&p), fp(&plan(&env, &cfg, &state).await), "status only");
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["metadata"]["labels"]["team"] = json!("a");
    env.double.put_object("kubectl-label", d).unwrap();
    let p3 = plan(&env, &cfg, &state).await;
    assert_ne!(fp(&p), fp(&p3), "labels changed");
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["paused"] = json!(true);
    env.double.put_object("kubectl-edit", d).unwrap();
    assert_ne!(fp(&p3), fp(&plan(&env, &cfg, &state).await), "spec changed");
}

#[tokio::test]
async fn drift_by_hand_is_planned_and_converged() {
    let env = env("drift");
    let cfg = app(&env, APP);
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    // Someone edits the image (an Update by another manager takes the field).
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25-hacked");
    env.double.put_object("kubectl-edit", d).unwrap();

    let p = plan(&env, &cfg, &state).await;
    let Some(Action::Update(changes)) = p.action(DEPLOY) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].path, "spec.template.spec.containers[0].image");
    assert_eq!(changes[0].before, Some(Value::str("nginx:1.25-hacked")));
    assert_eq!(changes[0].after, Some(Value::str("nginx:1.27")));
    assert_eq!(p.actions.len(), 1);
    apply(&env, &p, &mut state).await.unwrap();
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

#[tokio::test]
async fn a_field_removed_from_the_config_is_removed() {
    let env = env("removal");
    let mut state = State::new();
    converge(&env, &app(&env, APP), &mut state).await;
    let less = APP
        .replace("  mode: fast\n", "")
        .replace("        resources: {limits: {memory: 128Mi}}\n", "");
    let cfg = app(&env, &less);
    let p = plan(&env, &cfg, &state).await;
    let Some(Action::Update(c)) = p.action(CM) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].path, "data.mode");
    assert_eq!(c[0].before, Some(Value::str("fast")));
    assert_eq!(c[0].after, None);
    let Some(Action::Update(c)) = p.action(DEPLOY) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(
        c[0].path,
        "spec.template.spec.containers[0].resources.limits.memory"
    );
    assert_eq!(c[0].after, None);
    apply(&env, &p, &mut state).await.unwrap();
    let cm = env
        .double
        .get("v1", "ConfigMap", "shop", "web-config")
        .unwrap();
    assert_eq!(cm["data"], json!({"greeting": "hello"}));
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert!(d["spec"]["template"]["spec"]["containers"][0]["resources"]
        .get("limits")
        .is_none());
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

#[tokio::test]
async fn a_conflict_with_another_manager_names_it_and_force_takes_over() {
    let env = env("conflict");
    let mut state = State::new();
    converge(&env, &app(&env, APP), &mut state).await;
    // An autoscaler owns replicas; claw never set them.
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["replicas"] = json!(5);
    env.double.put_object("kube-autoscaler", d).unwrap();
    assert!(
        plan(&env, &app(&env, APP), &state).await.is_empty(),
        "fields claw does not set are not drift"
    );

    let with_replicas = APP.replace(
        "  selector: {matchLabels: {app: web}}",
        "  replicas: 2\n  selector: {matchLabels: {app: web}}",
    );
    let p = plan(&env, &app(&env, &with_replicas), &state).await;
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .unwrap_or_else(|| panic!("{:?}", p.diagnostics));
    assert!(d.summary.contains("\"kube-autoscaler\""), "{d}");
    assert!(d.summary.contains(".spec.replicas"), "{d}");
    assert!(
        d.hint
            .as_deref()
            .unwrap()
            .contains("force_conflicts = true"),
        "{d}"
    );
    // Apply refuses as well, and leaves the object alone.
    let p_forced = {
        let mut p = p;
        p.diagnostics.clear();
        p
    };
    let err = apply(&env, &p_forced, &mut state).await.unwrap_err();
    assert!(err.summary.contains("kube-autoscaler"), "{err}");
    assert_eq!(
        env.double
            .get("apps/v1", "Deployment", "shop", "web")
            .unwrap()["spec"]["replicas"],
        5
    );

    let f = yaml_file(&env, "app.yaml", &with_replicas);
    let cfg = vec![res(
        "k8s_manifest",
        "app",
        json!({ "file": f, "force_conflicts": true }),
    )];
    let p = plan(&env, &cfg, &state).await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    apply(&env, &p, &mut state).await.unwrap();
    assert_eq!(
        env.double
            .get("apps/v1", "Deployment", "shop", "web")
            .unwrap()["spec"]["replicas"],
        2
    );
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

#[tokio::test]
async fn an_unmanaged_object_with_the_same_name_is_reported_and_untouched() {
    let env = env("unmanaged");
    env.double
        .put_object(
            "kubectl-create",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config", "namespace": "default"}, "data": {"theirs": "1"}}),
        )
        .unwrap();
    let cfg = vec![res(
        "k8s_manifest",
        "cm",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}, "data": {"ours": "1"}}}),
    )];
    let mut state = State::new();
    let p = plan(&env, &cfg, &state).await;
    let addr = "k8s_manifest.cm[\"v1/ConfigMap/default/web-config\"]";
    assert_eq!(p.live[addr].as_ref().unwrap().owner, Owner::Unmanaged);
    assert!(p.diagnostics[0]
        .hint
        .as_deref()
        .unwrap()
        .starts_with("claw import"));
    // Even a forced create refuses to touch it.
    let forced = Plan {
        actions: vec![(addr.into(), "k8s_manifest".into(), Action::Create)],
        diagnostics: vec![],
        ..p
    };
    let err = apply(&env, &forced, &mut state).await.unwrap_err();
    assert!(err.summary.contains("not managed by claw"), "{err}");
    assert_eq!(err.hint.as_deref(), Some("claw import k8s_manifest.cm[\"v1/ConfigMap/default/web-config\"] v1/ConfigMap/default/web-config"));
    let cm = env
        .double
        .get("v1", "ConfigMap", "default", "web-config")
        .unwrap();
    assert_eq!(cm["data"], json!({"theirs": "1"}));
}

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
    let mut state = State::new();
    let p = plan(&env, &cfg, &state).await;
    assert!(
        p.deps.contains(&(cr.to_string(), crd.to_string())),
        "{:?}",
        p.deps
    );
    assert!(
        p.deps.contains(&(cr.to_string(), ns.to_string())),
        "{:?}",
        p.deps
    );
    assert_eq!(
        p.action(cr),
        Some(&Action::Create),
        "the CR's kind is not served yet: planned as a create"
    );
    apply(&env, &p, &mut state).await.unwrap();
    assert_eq!(
        env.double
            .get("claw.example/v1", "Widget", "shop", "w1")
            .unwrap()["spec"]["size"],
        3
    );
    assert!(plan(&env, &cfg, &state).await.is_empty());

    // Destroy: everything is deleted, the CR before its CRD, the namespace last.
    env.double.reset_requests();
    let p = plan(&env, &[], &state).await;
    assert_eq!(p.actions.len(), 3);
    apply(&env, &p, &mut state).await.unwrap();
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
async fn orphans_left_by_a_crash_are_found_and_deleted() {
    let env = env("orphans");
    let mut state = State::new();
    converge(&env, &app(&env, APP), &mut state).await;
    // Lose the state of the ConfigMap (a crash between apply and the state
    // write) and drop it from the config: it is an orphan. (Orphans are found
    // among the kinds in use: the config keeps another ConfigMap.)
    state.remove(CM);
    let less = APP.replace("name: web-config", "name: other-config");
    let p = plan(&env, &app(&env, &less), &state).await;
    assert_eq!(p.action(CM), Some(&Action::Delete), "{:?}", p.actions);
    apply(&env, &p, &mut state).await.unwrap();
    assert!(env
        .double
        .get("v1", "ConfigMap", "shop", "web-config")
        .is_none());
}

#[tokio::test]
async fn secrets_are_sensitive_and_changes_show_only_hashes() {
    let env = env("secrets");
    std::env::set_var("CLAW_K8S_TEST_TOKEN", "s3cr3t-value");
    let ctx = &env.ctx;
    let mut attrs = Attrs::new();
    let mut data = std::collections::BTreeMap::new();
    data.insert("token".to_string(), ctx.secret("s3cr3t-value"));
    data.insert("plain".to_string(), Value::str("literal-value"));
    attrs.insert("data".into(), Value::Map(data.clone()));
    attrs.insert("namespace".into(), Value::str("default"));
    attrs.insert(
        "labels".into(),
        Value::Map(
            [("team".to_string(), Value::str("a"))]
                .into_iter()
                .collect(),
        ),
    );
    let cfg = vec![Res {
        rtype: "k8s_secret",
        name: "k3s".into(),
        attrs: attrs.clone(),
    }];
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    let s = env.double.get("v1", "Secret", "default", "k3s").unwrap();
    assert_eq!(s["data"]["token"], "czNjcjN0LXZhbHVl");
    let stored = serde_json::to_string(&state).unwrap();
    assert!(
        !stored.contains("s3cr3t-value")
            && !stored.contains("literal-value")
            && !stored.contains("czNjcjN0"),
        "{stored}"
    );
    assert!(plan(&env, &cfg, &state).await.is_empty());

    data.insert("token".to_string(), ctx.secret("rotated"));
    data.remove("plain");
    attrs.insert("data".into(), Value::Map(data));
    attrs.remove("labels");
    let cfg = vec![Res {
        rtype: "k8s_secret",
        name: "k3s".into(),
        attrs,
    }];
    let p = plan(&env, &cfg, &state).await;
    let Some(Action::Update(c)) = p.action("k8s_secret.k3s") else {
        panic!("{:?}", p.actions)
    };
    let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["data.token", "data.plain", "labels.team"]);
    assert!(c.iter().filter(|c| c.path.starts_with("data.")).all(|c| c
        .before
        .as_ref()
        .map(|v| matches!(v, Value::Secret(_)))
        .unwrap_or(true)));
    assert!(!format!("{c:?}").contains("rotated"));
    apply(&env, &p, &mut state).await.unwrap();
    let s = env.double.get("v1", "Secret", "default", "k3s").unwrap();
    assert_eq!(s["data"], json!({"token": "cm90YXRlZA=="}));
    assert!(
        s["metadata"]["labels"].get("team").is_none(),
        "the label claw set before is gone"
    );
    assert_eq!(s["metadata"]["labels"][LABEL_STACK], "secrets");
    assert!(plan(&env, &cfg, &state).await.is_empty());
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
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    assert!(plan(&env, &cfg, &state).await.is_empty());
    let bad = vec![res(
        "k8s_manifest",
        "x",
        json!({"file": f, "wait_timeout": "soon"}),
    )];
    let err = instances(&env, &bad).unwrap_err();
    assert!(err.hint.unwrap().contains("90s"));
}

#[tokio::test]
async fn no_change_plan_lists_each_kind_once() {
    let env = env("bench");
    let mut docs = vec!["apiVersion: v1\nkind: Namespace\nmetadata: {name: many}\n".to_string()];
    for i in 0..15 {
        docs.push(format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: many}}\ndata: {{k: v{i}}}\n"));
        docs.push(format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: sa-{i}, namespace: many}}\n"
        ));
        docs.push(format!("apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: many}}\nspec: {{selector: {{app: a{i}}}, ports: [{{port: 80}}]}}\n"));
        docs.push(format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d-{i}, namespace: many}}\nspec:\n  selector: {{matchLabels: {{app: a{i}}}}}\n  template:\n    metadata: {{labels: {{app: a{i}}}}}\n    spec: {{containers: [{{name: c, image: \"nginx:1.27\"}}]}}\n"));
        docs.push(format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: r-{i}, namespace: many}}\nrules: [{{apiGroups: [\"\"], resources: [pods], verbs: [get]}}]\n"));
    }
    let f = yaml_file(&env, "many.yaml", &docs.join("---\n"));
    let cfg = vec![res("k8s_manifest", "many", json!({ "file": f }))];
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    env.double.reset_requests();
    let provider = provider_for(&env.kubeconfig, &env.ctx); // a fresh run: discovery not cached
    let env2 = Env { provider, ..env };
    let p = plan(&env2, &cfg, &state).await;
    assert!(p.is_empty(), "{:?}", p.actions);
    let log = env2.double.request_log();
    // 6 kinds in 3 group versions: 3 discovery requests + 6 lists.
    assert_eq!(log.len(), 9, "{log:#?}");
    assert_eq!(env2.provider.counters()[0].1, 9);
}

#[tokio::test]
async fn quantities_the_server_normalises_are_not_drift() {
    let env = env("quantities");
    let with_cpu = APP.replace(
        "resources: {limits: {memory: 128Mi}}",
        "resources: {limits: {memory: 1024Mi, cpu: 1000m}, requests: {cpu: 0.5}}",
    );
    let cfg = app(&env, &with_cpu);
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    let r = &d["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert_eq!(
        r["limits"],
        json!({"memory": "1Gi", "cpu": "1"}),
        "the double canonicalises like a real server"
    );
    assert_eq!(r["requests"], json!({"cpu": "500m"}));
    env.double.reset_requests();
    let p = plan(&env, &cfg, &state).await;
    assert!(p.is_empty(), "{:?}", p.actions);
    assert!(
        env.double
            .request_log()
            .iter()
            .all(|l| !l.contains("dryRun")),
        "no dry-run needed for a no-change plan"
    );
    // A real change is still seen.
    let cfg = app(&env, &with_cpu.replace("cpu: 1000m", "cpu: 1500m"));
    let p = plan(&env, &cfg, &state).await;
    let Some(Action::Update(c)) = p.action(DEPLOY) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(
        c[0].path,
        "spec.template.spec.containers[0].resources.limits.cpu"
    );
}

#[tokio::test]
async fn import_adopts_an_unmanaged_object_and_labels_it() {
    let env = env("import");
    env.double
        .put_object(
            "kubectl-create",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "legacy", "namespace": "default"}, "data": {"k": "v"}}),
        )
        .unwrap();
    let addr = "k8s_manifest.legacy[\"v1/ConfigMap/default/legacy\"]";
    let s = env
        .provider
        .import(ImportRequest {
            ctx: env.ctx.clone(),
            address: addr.into(),
            rtype: "k8s_manifest".into(),
            id: "v1/ConfigMap/default/legacy".into(),
            desired: None,
        })
        .await
        .into_state()
        .unwrap();
    assert_eq!(s.id, "v1/ConfigMap/default/legacy");
    let cm = env
        .double
        .get("v1", "ConfigMap", "default", "legacy")
        .unwrap();
    assert_eq!(cm["metadata"]["labels"][LABEL_STACK], "import");
    assert_eq!(cm["metadata"]["annotations"][LABEL_ADDRESS], addr);
    let cfg = vec![res(
        "k8s_manifest",
        "legacy",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "legacy"}, "data": {"k": "v"}}}),
    )];
    let mut state = State::new();
    state.insert(addr.into(), ("k8s_manifest".into(), s));
    let p = plan(&env, &cfg, &state).await;
    assert!(
        p.is_empty() && p.diagnostics.is_empty(),
        "{:?} {:?}",
        p.actions,
        p.diagnostics
    );
    let err = env
        .provider
        .import(ImportRequest {
            ctx: env.ctx.clone(),
            address: addr.into(),
            rtype: "k8s_manifest".into(),
            id: "legacy".into(),
            desired: None,
        })
        .await
        .into_state()
        .unwrap_err();
    assert!(err.hint.unwrap().contains("apps/v1/Deployment"));
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
    let mut state = State::new();
    let started = std::time::Instant::now();
    converge(&env, &cfg, &mut state).await;
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
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

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
    let p = plan(&env2, &cfg, &State::new()).await;
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
    let mut state = State::new();
    let p = converge(&env, &cfg, &mut state).await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    env.double.reset_requests();
    let p = plan(&env, &cfg, &state).await;
    assert!(
        p.is_empty() && p.diagnostics.is_empty(),
        "{:?} {:?}",
        p.actions,
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
async fn a_removed_container_is_removed_and_injected_ones_are_not_drift() {
    let env = env("containers");
    let two = APP.replace(
        "        resources: {limits: {memory: 128Mi}}\n",
        "        resources: {limits: {memory: 128Mi}}\n      - name: logger\n        image: busybox:1.36\n        args: [tail, -f, /dev/null]\n",
    );
    let mut state = State::new();
    converge(&env, &app(&env, &two), &mut state).await;
    // A webhook-style sidecar added by another manager is not drift.
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "mesh-proxy", "image": "proxy:1"}));
    env.double.put_object("mesh-injector", d).unwrap();
    assert!(plan(&env, &app(&env, &two), &state).await.is_empty());

    let cfg = app(&env, APP);
    let p = plan(&env, &cfg, &state).await;
    let Some(Action::Update(c)) = p.action(DEPLOY) else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].path, "spec.template.spec.containers[1]");
    assert_eq!(c[0].after, None);
    apply(&env, &p, &mut state).await.unwrap();
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web", "mesh-proxy"]);
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

#[tokio::test]
async fn https_with_a_private_ca_and_client_certificates_like_k3s() {
    let env = env_tls("tls");
    assert!(env.double.url().starts_with("https://"));
    let cfg = app(&env, APP);
    let mut state = State::new();
    let p = converge(&env, &cfg, &mut state).await;
    assert_eq!(p.actions.len(), 4);
    assert!(plan(&env, &cfg, &state).await.is_empty());

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
    let provider = provider_for(&kc, &env.ctx);
    let env2 = Env { provider, ..env };
    let p = plan(&env2, &cfg, &state).await;
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
    let mut state = State::new();
    let p = converge(&env, &cfg, &mut state).await;
    assert_eq!(
        p.actions[0].0, "k8s_manifest.cm[\"v1/ConfigMap/team/c\"]",
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
async fn an_immutable_field_change_is_planned_as_a_replace() {
    let env = env("immutable");
    let job = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: e2e}
spec:
  backoffLimit: 3
  template:
    metadata: {labels: {app: e2e}}
    spec:
      restartPolicy: Never
      containers: [{name: e2e, image: "runner:1", command: ["pnpm", "test:e2e"]}]
"#;
    let f = yaml_file(&env, "job.yaml", job);
    let cfg = vec![res("k8s_manifest", "e2e", json!({ "file": f }))];
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    let live = env.double.get("batch/v1", "Job", "default", "e2e").unwrap();
    assert!(
        live["spec"]["template"]["metadata"]["labels"]["job-name"].is_string(),
        "controller labels added"
    );
    assert!(
        plan(&env, &cfg, &state).await.is_empty(),
        "controller-added labels are not drift"
    );
    let old_uid = live["metadata"]["uid"].clone();

    // backoffLimit may change in place; the pod template may not.
    yaml_file(
        &env,
        "job.yaml",
        &job.replace("backoffLimit: 3", "backoffLimit: 4"),
    );
    let p = plan(&env, &cfg, &state).await;
    assert!(
        matches!(
            p.action("k8s_manifest.e2e[\"batch/v1/Job/default/e2e\"]"),
            Some(Action::Update(_))
        ),
        "{:?}",
        p.actions
    );
    apply(&env, &p, &mut state).await.unwrap();

    yaml_file(
        &env,
        "job.yaml",
        &job.replace("backoffLimit: 3", "backoffLimit: 4")
            .replace("runner:1", "runner:2"),
    );
    let p = plan(&env, &cfg, &state).await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let Some(Action::Replace(c)) = p.action("k8s_manifest.e2e[\"batch/v1/Job/default/e2e\"]")
    else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(c[0].path, "spec.template.spec.containers[0].image");
    apply(&env, &p, &mut state).await.unwrap();
    let live = env.double.get("batch/v1", "Job", "default", "e2e").unwrap();
    assert_ne!(live["metadata"]["uid"], old_uid, "a new Job");
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "runner:2"
    );
    assert!(plan(&env, &cfg, &state).await.is_empty());
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
    let deps = edges(&env, items);
    assert_eq!(
        deps,
        vec![(
            "k8s_secret.s".to_string(),
            "k8s_manifest.ns[\"v1/Namespace//default\"]".to_string()
        )]
    );
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
    let mut state = State::new();
    let started = std::time::Instant::now();
    converge(&env, &cfg, &mut state).await;
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
    let p = plan(&env, &cfg, &state).await;
    let err = apply(&env, &p, &mut state).await.unwrap_err();
    assert!(err.summary.contains("not ready after 1s"), "{err}");
    assert!(err.hint.unwrap().contains("wait_timeout"));
}

#[tokio::test]
async fn zero_values_the_server_omits_and_list_items_without_kind_are_not_drift() {
    let env = env("omitempty");
    let with_zeroes = APP.replace(
        "        resources: {limits: {memory: 128Mi}}\n",
        "        resources: {limits: {memory: 128Mi}}\n        args: []\n        volumeMounts: [{name: cache, mountPath: /cache, readOnly: false, subPath: \"\"}]\n      volumes: [{name: cache, emptyDir: {}}]\n",
    );
    let cfg = app(&env, &with_zeroes);
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c.get("args").is_none() && c["volumeMounts"][0].get("readOnly").is_none(),
        "the double omits zero values: {c}"
    );
    let p = plan(&env, &cfg, &state).await;
    assert!(p.is_empty(), "{:?}", p.actions);
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
    let err = instances(&env, &cfg).unwrap_err();
    assert!(
        err.summary
            .contains("\"Web_Config\" is not a valid Kubernetes name"),
        "{err}"
    );
    assert!(err.hint.is_some());
    assert_eq!(env.double.requests(), 0);
}

#[tokio::test]
async fn an_object_of_another_stack_is_reported_as_such_and_untouched() {
    let env = env("mine");
    env.double
        .put_object(
            "claw",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "shared", "namespace": "default",
                    "labels": {LABEL_MANAGED_BY: "claw", LABEL_STACK: "theirs"}},
                "data": {"owner": "theirs"}}),
        )
        .unwrap();
    let cfg = vec![res(
        "k8s_manifest",
        "cm",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared"}, "data": {"owner": "mine"}}}),
    )];
    let mut state = State::new();
    env.double.reset_requests();
    let p = plan(&env, &cfg, &state).await;
    let addr = "k8s_manifest.cm[\"v1/ConfigMap/default/shared\"]";
    assert_eq!(
        p.live[addr].as_ref().unwrap().owner,
        Owner::OtherStack("theirs".into())
    );
    assert_eq!(
        env.double.request_log().len(),
        2,
        "discovery + one list: {:?}",
        env.double.request_log()
    );
    let forced = Plan {
        actions: vec![(addr.into(), "k8s_manifest".into(), Action::Create)],
        diagnostics: vec![],
        ..p
    };
    let err = apply(&env, &forced, &mut state).await.unwrap_err();
    assert!(err.summary.contains("belongs to stack \"theirs\""), "{err}");
    assert_eq!(
        env.double
            .get("v1", "ConfigMap", "default", "shared")
            .unwrap()["data"]["owner"],
        "theirs"
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
    let pl = plan(&env, &two_kinds, &State::new()).await;
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
    let mut state = State::new();
    converge(&env, &cfg, &mut state).await;
    assert!(env.double.get("v1", "ConfigMap", "default", "c").is_some());
    assert!(plan(&env, &cfg, &state).await.is_empty());
}

/// The manifest file is an input of the plan (path as written, keyed digest
/// of its bytes), reported by `expand`, which reads it.
#[test]
fn a_manifest_file_is_reported_as_an_input() {
    let env = env("inputs");
    let f = yaml_file(&env, "app.yaml", APP);
    let Value::Map(attrs) = Value::from_json(&json!({ "file": f })) else {
        panic!()
    };
    let resp = env.provider.expand(ExpandRequest {
        address: "k8s_manifest.app",
        rtype: "k8s_manifest",
        name: "app",
        key: None,
        attrs: &attrs,
        ctx: &env.ctx,
    });
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    assert_eq!(resp.instances.len(), 4);
    assert_eq!(
        resp.inputs,
        vec![Input {
            path: "app.yaml".into(),
            digest: env.ctx.digest(APP.as_bytes()),
        }]
    );
}
