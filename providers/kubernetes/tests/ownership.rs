//! Whose objects claw touches: field-manager conflicts, unmanaged and other
//! stacks' objects, import, orphans.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_conflict_with_another_manager_names_it_and_force_takes_over() {
    let env = env("conflict");
    let mut h = env.harness(vec![]);
    h.set(app(&env, APP)).converge().await;
    // An autoscaler owns replicas; claw never set them.
    let mut d = env
        .double
        .get("apps/v1", "Deployment", "shop", "web")
        .unwrap();
    d["spec"]["replicas"] = json!(5);
    env.double.put_object("kube-autoscaler", d).unwrap();
    assert!(
        h.set(app(&env, APP)).plan().await.is_empty(),
        "fields claw does not set are not drift"
    );

    let with_replicas = APP.replace(
        "  selector: {matchLabels: {app: web}}",
        "  replicas: 2\n  selector: {matchLabels: {app: web}}",
    );
    let p = h.set(app(&env, &with_replicas)).plan().await;
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
    let err = h.apply_plan(&p_forced).await.unwrap_err();
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
    let p = h.set(cfg.clone()).plan().await;
    assert!(p.diagnostics.is_empty(), "{:?}", p.diagnostics);
    h.apply_plan(&p).await.unwrap();
    assert_eq!(
        env.double
            .get("apps/v1", "Deployment", "shop", "web")
            .unwrap()["spec"]["replicas"],
        2
    );
    assert!(h.set(cfg.clone()).plan().await.is_empty());
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
    let mut h = env.harness(vec![]);
    let p = h.set(cfg.clone()).plan().await;
    let addr = "k8s_manifest.cm[\"v1/ConfigMap/default/web-config\"]";
    assert_eq!(p.live[addr].as_ref().unwrap().owner, Owner::Unmanaged);
    assert!(p.diagnostics[0]
        .hint
        .as_deref()
        .unwrap()
        .starts_with("claw import"));
    // Even a forced create refuses to touch it.
    let forced = h.forced_create(addr);
    let err = h.apply_plan(&forced).await.unwrap_err();
    assert!(err.summary.contains("not managed by claw"), "{err}");
    assert_eq!(err.hint.as_deref(), Some("claw import k8s_manifest.cm[\"v1/ConfigMap/default/web-config\"] v1/ConfigMap/default/web-config"));
    let cm = env
        .double
        .get("v1", "ConfigMap", "default", "web-config")
        .unwrap();
    assert_eq!(cm["data"], json!({"theirs": "1"}));
}

#[tokio::test]
async fn orphans_left_by_a_crash_are_found_and_deleted() {
    let env = env("orphans");
    let mut h = env.harness(vec![]);
    h.set(app(&env, APP)).converge().await;
    // Lose the state of the ConfigMap (a crash between apply and the state
    // write) and drop it from the config: it is an orphan. (Orphans are found
    // among the kinds in use: the config keeps another ConfigMap.)
    h.state.remove(CM);
    let less = APP.replace("name: web-config", "name: other-config");
    let p = h.set(app(&env, &less)).plan().await;
    assert_eq!(p.action(CM), Some(Action::Delete), "{:?}", p.changes);
    h.apply_plan(&p).await.unwrap();
    assert!(env
        .double
        .get("v1", "ConfigMap", "shop", "web-config")
        .is_none());
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
    let cfg = vec![res(
        "k8s_manifest",
        "legacy",
        json!({"manifest": {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "legacy"}, "data": {"k": "v"}}}),
    )];
    let mut h = env.harness(cfg);
    let s = h.import(addr, "v1/ConfigMap/default/legacy").await.unwrap();
    assert_eq!(s.id, "v1/ConfigMap/default/legacy");
    let cm = env
        .double
        .get("v1", "ConfigMap", "default", "legacy")
        .unwrap();
    assert_eq!(cm["metadata"]["labels"][LABEL_STACK], "import");
    assert_eq!(cm["metadata"]["annotations"][LABEL_ADDRESS], addr);
    let p = h.plan().await;
    assert!(
        p.is_empty() && p.diagnostics.is_empty(),
        "{:?} {:?}",
        p.changes,
        p.diagnostics
    );
    let err = h.import(addr, "legacy").await.unwrap_err();
    assert!(err.hint.unwrap().contains("apps/v1/Deployment"));
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
    let mut h = env.harness(vec![]);
    env.double.reset_requests();
    let p = h.set(cfg.clone()).plan().await;
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
    let forced = h.forced_create(addr);
    let err = h.apply_plan(&forced).await.unwrap_err();
    assert!(err.summary.contains("belongs to stack \"theirs\""), "{err}");
    assert_eq!(
        env.double
            .get("v1", "ConfigMap", "default", "shared")
            .unwrap()["data"]["owner"],
        "theirs"
    );
}
