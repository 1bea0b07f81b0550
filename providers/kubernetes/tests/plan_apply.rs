//! k8s_manifest and k8s_secret through the harness against the API double:
//! create, no-change replans despite server defaults, drift, removed fields,
//! replaces of immutable fields, secrets, inputs, request counts.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn create_then_replan_is_a_no_op_despite_server_defaults() {
    let env = env("shop");
    let cfg = app(&env, APP);
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).converge().await;
    assert_eq!(p.changes.len(), 4, "{:?}", p.changes);
    assert!(p.changes.iter().all(|c| c.action == Action::Create));
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

    let p = h.set(cfg.clone()).plan().await;
    assert!(p.is_empty(), "no-op replan shows noise: {:?}", p.changes);
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    // The fingerprint is stable across plans, ignores status writes by
    // controllers, and changes with the spec or the labels.
    let p2 = h.set(cfg.clone()).plan().await;
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
    assert_eq!(fp(&p), fp(&h.set(cfg.clone()).plan().await), "status only");
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["metadata"]["labels"]["team"] = json!("a");
    env.double.put_object("kubectl-label", d).unwrap();
    let p3 = h.set(cfg.clone()).plan().await;
    assert_ne!(fp(&p), fp(&p3), "labels changed");
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["paused"] = json!(true);
    env.double.put_object("kubectl-edit", d).unwrap();
    assert_ne!(
        fp(&p3),
        fp(&h.set(cfg.clone()).plan().await),
        "spec changed"
    );
}

#[tokio::test]
async fn drift_by_hand_is_planned_and_converged() {
    let env = env("drift");
    let cfg = app(&env, APP);
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    // Someone edits the image (an Update by another manager takes the field).
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.25-hacked");
    env.double.put_object("kubectl-edit", d).unwrap();

    let p = h.set(cfg.clone()).plan().await;
    let changes = changes(&p, DEPLOY, Action::Update);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].path, "spec.template.spec.containers[0].image");
    assert_eq!(changes[0].before, Some(Value::str("nginx:1.25-hacked")));
    assert_eq!(changes[0].after, Some(Value::str("nginx:1.27")));
    assert_eq!(p.changes.len(), 1);
    h.apply_plan(&p).await.unwrap();
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());
}

#[tokio::test]
async fn a_field_removed_from_the_config_is_removed() {
    let env = env("removal");
    let mut h = env.harness(vec![]);
    h.set(app(&env, APP)).converge().await;
    let less = APP
        .replace("  mode: fast\n", "")
        .replace("        resources: {limits: {memory: 128Mi}}\n", "");
    let cfg = app(&env, &less);
    let p = h.set(cfg.clone()).plan().await;
    let c = changes(&p, CM, Action::Update);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].path, "data.mode");
    assert_eq!(c[0].before, Some(Value::str("fast")));
    assert_eq!(c[0].after, None);
    let c = changes(&p, DEPLOY, Action::Update);
    assert_eq!(
        c[0].path,
        "spec.template.spec.containers[0].resources.limits.memory"
    );
    assert_eq!(c[0].after, None);
    h.apply_plan(&p).await.unwrap();
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
    assert!(h.set(cfg.clone()).plan().await.is_empty());
}

#[tokio::test]
async fn secrets_are_sensitive_and_changes_show_only_hashes() {
    let env = env("secrets");
    std::env::set_var("CLAW_K8S_TEST_TOKEN", "s3cr3t-value");
    let ctx = &env.ctx;
    let mut attrs = Attrs::new();
    let mut data = Map::new();
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
    let cfg = vec![Resource::new("k8s_secret", "k3s", attrs.clone())];
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    let s = env.double.get("v1", "Secret", "default", "k3s").unwrap();
    assert_eq!(s["data"]["token"], "czNjcjN0LXZhbHVl");
    let stored =
        serde_json::to_string(&h.state.values().map(|r| &r.object).collect::<Vec<_>>()).unwrap();
    assert!(
        !stored.contains("s3cr3t-value")
            && !stored.contains("literal-value")
            && !stored.contains("czNjcjN0"),
        "{stored}"
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());

    data.insert("token".to_string(), ctx.secret("rotated"));
    data.remove("plain");
    attrs.insert("data".into(), Value::Map(data));
    attrs.remove("labels");
    let cfg = vec![Resource::new("k8s_secret", "k3s", attrs)];
    let p = h.set(cfg.clone()).plan().await;
    let c = changes(&p, "k8s_secret.k3s", Action::Update);
    let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["data.token", "data.plain", "labels.team"]);
    assert!(c.iter().filter(|c| c.path.starts_with("data.")).all(|c| c
        .before
        .as_ref()
        .map(|v| matches!(v, Value::Secret(_)))
        .unwrap_or(true)));
    assert!(!format!("{c:?}").contains("rotated"));
    h.apply_plan(&p).await.unwrap();
    let s = env.double.get("v1", "Secret", "default", "k3s").unwrap();
    assert_eq!(s["data"], json!({"token": "cm90YXRlZA=="}));
    assert!(
        s["metadata"]["labels"].get("team").is_none(),
        "the label claw set before is gone"
    );
    assert_eq!(s["metadata"]["labels"][LABEL_STACK], "secrets");
    assert!(h.set(cfg.clone()).plan().await.is_empty());
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
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    env.double.reset_requests();
    h.provider = provider_for(&env.kubeconfig, &env.ctx); // a fresh run: discovery not cached
    let p = h.plan().await;
    assert!(p.is_empty(), "{:?}", p.changes);
    let log = env.double.request_log();
    // 6 kinds in 3 group versions: 3 discovery requests + 6 lists.
    assert_eq!(log.len(), 9, "{log:#?}");
    assert_eq!(h.provider.counters()[0].1, 9);
}

#[tokio::test]
async fn quantities_the_server_normalises_are_not_drift() {
    let env = env("quantities");
    let with_cpu = APP.replace(
        "resources: {limits: {memory: 128Mi}}",
        "resources: {limits: {memory: 1024Mi, cpu: 1000m}, requests: {cpu: 0.5}}",
    );
    let cfg = app(&env, &with_cpu);
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
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
    let p = h.set(cfg.clone()).plan().await;
    assert!(p.is_empty(), "{:?}", p.changes);
    assert!(
        env.double
            .request_log()
            .iter()
            .all(|l| !l.contains("dryRun")),
        "no dry-run needed for a no-change plan"
    );
    // A real change is still seen.
    let cfg = app(&env, &with_cpu.replace("cpu: 1000m", "cpu: 1500m"));
    let p = h.set(cfg.clone()).plan().await;
    let c = changes(&p, DEPLOY, Action::Update);
    assert_eq!(
        c[0].path,
        "spec.template.spec.containers[0].resources.limits.cpu"
    );
}

#[tokio::test]
async fn a_removed_container_is_removed_and_injected_ones_are_not_drift() {
    let env = env("containers");
    let two = APP.replace(
        "        resources: {limits: {memory: 128Mi}}\n",
        "        resources: {limits: {memory: 128Mi}}\n      - name: logger\n        image: busybox:1.36\n        args: [tail, -f, /dev/null]\n",
    );
    let mut h = env.harness(vec![]);
    h.set(app(&env, &two)).converge().await;
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
    assert!(h.set(app(&env, &two)).plan().await.is_empty());

    let cfg = app(&env, APP);
    let p = h.set(cfg.clone()).plan().await;
    let c = changes(&p, DEPLOY, Action::Update);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].path, "spec.template.spec.containers[1]");
    assert_eq!(c[0].after, None);
    h.apply_plan(&p).await.unwrap();
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
    assert!(h.set(cfg.clone()).plan().await.is_empty());
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
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    let live = env.double.get("batch/v1", "Job", "default", "e2e").unwrap();
    assert!(
        live["spec"]["template"]["metadata"]["labels"]["job-name"].is_string(),
        "controller labels added"
    );
    assert!(
        h.set(cfg.clone()).plan().await.is_empty(),
        "controller-added labels are not drift"
    );
    let old_uid = live["metadata"]["uid"].clone();

    // backoffLimit may change in place; the pod template may not.
    yaml_file(
        &env,
        "job.yaml",
        &job.replace("backoffLimit: 3", "backoffLimit: 4"),
    );
    let p = h.set(cfg.clone()).plan().await;
    assert!(
        matches!(
            p.action("k8s_manifest.e2e[\"batch/v1/Job/default/e2e\"]"),
            Some(Action::Update)
        ),
        "{:?}",
        p.changes
    );
    h.apply_plan(&p).await.unwrap();

    yaml_file(
        &env,
        "job.yaml",
        &job.replace("backoffLimit: 3", "backoffLimit: 4")
            .replace("runner:1", "runner:2"),
    );
    let p = h.set(cfg.clone()).plan().await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    let c = changes(
        &p,
        "k8s_manifest.e2e[\"batch/v1/Job/default/e2e\"]",
        Action::DeleteCreate,
    );
    assert_eq!(c[0].path, "spec.template.spec.containers[0].image");
    h.apply_plan(&p).await.unwrap();
    let live = env.double.get("batch/v1", "Job", "default", "e2e").unwrap();
    assert_ne!(live["metadata"]["uid"], old_uid, "a new Job");
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "runner:2"
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());
}

#[tokio::test]
async fn zero_values_the_server_omits_and_list_items_without_kind_are_not_drift() {
    let env = env("omitempty");
    let with_zeroes = APP.replace(
        "        resources: {limits: {memory: 128Mi}}\n",
        "        resources: {limits: {memory: 128Mi}}\n        args: []\n        volumeMounts: [{name: cache, mountPath: /cache, readOnly: false, subPath: \"\"}]\n      volumes: [{name: cache, emptyDir: {}}]\n",
    );
    let cfg = app(&env, &with_zeroes);
    let mut h = env.harness(vec![]);
    h.set(cfg.clone()).converge().await;
    let d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c.get("args").is_none() && c["volumeMounts"][0].get("readOnly").is_none(),
        "the double omits zero values: {c}"
    );
    let p = h.set(cfg.clone()).plan().await;
    assert!(p.is_empty(), "{:?}", p.changes);
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
