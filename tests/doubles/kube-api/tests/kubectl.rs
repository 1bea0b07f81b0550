//! Keeps the double honest: the real `kubectl` (Debian `kubernetes-client`)
//! discovers, applies server-side, patches, conflicts and deletes against it.

use kube_api_double::KubeApiDouble;
use std::path::Path;
use std::process::{Command, Output};

fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubectl is required in CI (apt-get install kubernetes-client)");
        }
        eprintln!("SKIP: kubectl not found (apt-get install kubernetes-client)");
    }
    ok
}

fn kubectl(home: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", home.join("kubeconfig"))
        .env("HOME", home)
        .output()
        .expect("run kubectl")
}

/// Standard output only (kubectl may add "No resources found" on stderr).
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: demo
  labels: {app: web, tier: front}
data:
  a: "1"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 80}]
"#;

#[test]
fn kubectl_discovers_applies_patches_and_deletes() {
    if !kubectl_available() {
        return;
    }
    let double = KubeApiDouble::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("kubeconfig"), double.kubeconfig("default")).unwrap();
    std::fs::write(home.path().join("app.yaml"), APP).unwrap();
    let app = home.path().join("app.yaml");
    let app = app.to_str().unwrap();

    let o = kubectl(home.path(), &["version", "-o", "json"]);
    assert!(text(&o).contains("v1.33.0-claw-double"), "{}", text(&o));

    let o = kubectl(
        home.path(),
        &["apply", "--server-side", "--validate=false", "-f", app],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("deployment.apps/web serverside-applied"),
        "{}",
        text(&o)
    );

    // Server-side defaults and managed fields, as a real server reports them.
    let o = kubectl(
        home.path(),
        &["get", "deployment", "web", "-n", "demo", "-o",
          "jsonpath={.spec.replicas} {.spec.strategy.type} {.spec.template.spec.terminationGracePeriodSeconds} {.metadata.managedFields[*].manager}"],
    );
    assert_eq!(stdout(&o).trim(), "2 RollingUpdate 30 kubectl");

    // Set-based label selectors.
    let o = kubectl(
        home.path(),
        &[
            "get",
            "configmaps",
            "-A",
            "-l",
            "app in (web, api),tier!=back",
            "-o",
            "name",
        ],
    );
    assert_eq!(stdout(&o).trim(), "configmap/web-config");
    let o = kubectl(
        home.path(),
        &[
            "get",
            "configmaps",
            "-A",
            "-l",
            "app notin (web)",
            "-o",
            "name",
        ],
    );
    assert_eq!(stdout(&o).trim(), "", "{}", text(&o));

    // A hand edit takes ownership of the field: the next apply conflicts, naming the manager.
    let o = kubectl(
        home.path(),
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            "demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &["apply", "--server-side", "--validate=false", "-f", app],
    );
    assert!(!o.status.success());
    // kubectl ≥ 1.22 patches as field manager "kubectl-patch"; older ones
    // (Debian's kubernetes-client 1.20) leave it to the server, which takes
    // the user agent's "kubectl".
    let t = text(&o);
    assert!(
        t.contains(r#"Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas"#)
            || t.contains(r#"Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.replicas"#),
        "{t}"
    );
    let o = kubectl(
        home.path(),
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=false",
            "-f",
            app,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(stdout(&o).trim(), "2");

    // Strategic merge patch keyed by container name.
    let o = kubectl(
        home.path(),
        &[
            "patch",
            "deployment",
            "web",
            "-n",
            "demo",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(home.path(), &["get", "deployment", "web", "-n", "demo", "-o",
        "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(stdout(&o).trim(), "nginx:1.28 80");

    // The scale subresource.
    let o = kubectl(
        home.path(),
        &["scale", "deployment", "web", "-n", "demo", "--replicas=4"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &[
            "get",
            "deployment",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
    );
    assert_eq!(stdout(&o).trim(), "4");

    // Errors carry real Status reasons.
    // (`kubectl create <kind>` sends protobuf, which the double refuses with 415; files go as JSON.)
    let cm = home.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: demo}\n",
    )
    .unwrap();
    let o = kubectl(
        home.path(),
        &["create", "--validate=false", "-f", cm.to_str().unwrap()],
    );
    assert!(text(&o).contains("AlreadyExists"), "{}", text(&o));
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: nowhere}\n",
    )
    .unwrap();
    let o = kubectl(
        home.path(),
        &["create", "--validate=false", "-f", cm.to_str().unwrap()],
    );
    assert!(
        text(&o).contains(r#"namespaces "nowhere" not found"#),
        "{}",
        text(&o)
    );
    std::fs::write(
        &cm,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad, namespace: demo}\nspec: {}\n",
    )
    .unwrap();
    let o = kubectl(
        home.path(),
        &["create", "--validate=false", "-f", cm.to_str().unwrap()],
    );
    assert!(
        text(&o).contains("is invalid") && text(&o).contains("spec.selector: Required value"),
        "{}",
        text(&o)
    );

    let o = kubectl(
        home.path(),
        &["delete", "deployment", "web", "-n", "demo", "--wait=false"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(home.path(), &["get", "deployment", "web", "-n", "demo"]);
    assert!(text(&o).contains("NotFound"), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &["delete", "namespace", "demo", "--wait=false"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &["get", "configmaps", "-n", "demo", "-o", "name"],
    );
    assert_eq!(
        stdout(&o).trim(),
        "",
        "deleting a namespace deletes its objects"
    );
    assert!(double.requests() > 10);
}

#[test]
fn kubectl_serves_custom_resources_once_their_crd_exists() {
    if !kubectl_available() {
        return;
    }
    let double = KubeApiDouble::start().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("kubeconfig"), double.kubeconfig("default")).unwrap();
    let cr = r#"apiVersion: example.dev/v1
kind: Widget
metadata: {name: w1, namespace: default}
spec: {size: 3}
"#;
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;
    std::fs::write(home.path().join("cr.yaml"), cr).unwrap();
    std::fs::write(home.path().join("crd.yaml"), crd).unwrap();
    let p = |f: &str| home.path().join(f).to_str().unwrap().to_string();
    let o = kubectl(
        home.path(),
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            &p("cr.yaml"),
        ],
    );
    assert!(
        !o.status.success(),
        "a CR without its CRD must fail: {}",
        text(&o)
    );
    let o = kubectl(
        home.path(),
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            &p("crd.yaml"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &[
            "get",
            "crd",
            "widgets.example.dev",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#,
        ],
    );
    assert_eq!(stdout(&o).trim(), "True");
    let o = kubectl(
        home.path(),
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            &p("cr.yaml"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = kubectl(
        home.path(),
        &["get", "widgets", "w1", "-o", "jsonpath={.spec.size}"],
    );
    assert_eq!(stdout(&o).trim(), "3");
}

#[test]
fn kubectl_talks_mutual_tls_to_the_double() {
    if !kubectl_available() {
        return;
    }
    let double = KubeApiDouble::start_tls().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("kubeconfig"), double.kubeconfig("default")).unwrap();
    let o = kubectl(home.path(), &["get", "namespaces", "-o", "name"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("namespace/kube-system"), "{}", text(&o));
    std::fs::write(
        home.path().join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: over-tls}\ndata: {a: b}\n",
    )
    .unwrap();
    let cm = home.path().join("cm.yaml");
    let o = kubectl(
        home.path(),
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            cm.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(double
        .get("v1", "ConfigMap", "default", "over-tls")
        .is_some());
}
