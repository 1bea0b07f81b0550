//! The Kubernetes provider end to end through the CLI: each example
//! (claude-sandbox, claworc, k8sclaw and the k3s part of clawdbot-fleet)
//! applies, then `plan --detailed-exitcode` exits 0, then `destroy` leaves no
//! object with the stack's label; drift, unmanaged objects and the
//! `kubernetes` state backend with its Lease lock.
//!
//! They run against the Kubernetes API double (`kube-api-double`), started
//! in-process per test. With `CLAW_TEST_REAL_CLUSTER=1` the example round
//! trips run against the cluster in KUBECONFIG instead (a scratch cluster:
//! they create and delete the examples' namespaces, CRDs and ClusterRoles);
//! the tests that inspect or edit the double directly are then skipped.

use crate::common::Ctx;
use kube_api_double::KubeApiDouble;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn real_cluster() -> bool {
    std::env::var("CLAW_TEST_REAL_CLUSTER").as_deref() == Ok("1")
}

/// Copies an example folder (claw.toml and its YAML files) into the test dir.
fn copy_example(ctx: &Ctx, name: &str) {
    fn walk(src: &Path, rel: &Path, ctx: &Ctx) {
        for e in std::fs::read_dir(src.join(rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                walk(src, &r, ctx);
            } else {
                ctx.write(
                    r.to_str().unwrap(),
                    &std::fs::read_to_string(e.path()).unwrap(),
                );
            }
        }
    }
    walk(&examples().join(name), Path::new(""), ctx);
}

/// The k3s part of clawdbot-fleet as a stack of its own: the marked sections
/// of the example's claw.toml.
fn clawdbot_kubernetes_part() -> String {
    let (vars, body) = crate::common::fleet_part("kubernetes");
    format!("[stack]\nname = \"clawdbot\"\n\n[vars]\n{vars}\n{body}")
}

/// A test dir with one example, and where its cluster is.
struct Setup {
    ctx: Ctx,
    double: Option<KubeApiDouble>,
}

fn setup(example: &str) -> Setup {
    let ctx = Ctx::new();
    if example == "clawdbot-fleet" {
        ctx.write("claw.toml", &clawdbot_kubernetes_part());
        for f in std::fs::read_dir(examples().join("clawdbot-fleet/k8s")).unwrap() {
            let f = f.unwrap();
            ctx.write(
                &format!("k8s/{}", f.file_name().to_str().unwrap()),
                &std::fs::read_to_string(f.path()).unwrap(),
            );
        }
    } else {
        copy_example(&ctx, example);
    }
    let secrets = [
        "GITHUB_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "BRAVE_API_KEY",
    ];
    let mut ctx = ctx;
    for s in secrets {
        ctx = ctx.env(s, &format!("test-value-of-{s}"));
    }
    if real_cluster() {
        let kc = std::env::var("KUBECONFIG").expect("CLAW_TEST_REAL_CLUSTER=1 needs KUBECONFIG");
        let mut ctx = ctx.env("KUBECONFIG", &kc);
        if let Ok(c) = std::env::var("CLAW_TEST_KUBE_CONTEXT") {
            ctx = ctx.env("CLAW_VAR_kube_context", &c);
        }
        return Setup { ctx, double: None };
    }
    let double = KubeApiDouble::start().expect("start the Kubernetes API double");
    ctx.write("kubeconfig", &double.kubeconfig("default"));
    let kc = ctx.path("kubeconfig").to_str().unwrap().to_string();
    Setup {
        ctx: ctx.env("KUBECONFIG", &kc),
        double: Some(double),
    }
}

fn round_trip(example: &str, stack: &str, min_creates: usize) {
    let s = setup(example);
    let ctx = &s.ctx;
    ctx.ok(&["validate"], 0);
    let plan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    let creates = plan
        .stdout
        .lines()
        .filter(|l| l.trim_end().ends_with("create") && l.contains("k8s_"))
        .count();
    assert!(creates >= min_creates, "{}", plan.stdout);
    assert!(
        !plan.all().contains("test-value-of-"),
        "secret values leak into the plan"
    );

    ctx.ok(&["apply", "--auto-approve"], 0);
    let state = ctx.read(".claw/state.json");
    assert!(
        !state.contains("test-value-of-"),
        "secret values leak into the state"
    );
    if let Some(d) = &s.double {
        let labelled = d.find_labelled(&format!("claw.dev/stack={stack}"));
        assert_eq!(labelled.len(), creates, "{labelled:#?}");
    }

    let again = ctx.ok(&["-v", "plan", "--detailed-exitcode"], 0);
    assert!(
        again.all().contains("kubernetes api requests"),
        "{}",
        again.all()
    );

    ctx.ok(&["destroy", "--auto-approve"], 0);
    if let Some(d) = &s.double {
        assert_eq!(
            d.find_labelled(&format!("claw.dev/stack={stack}")),
            Vec::<String>::new()
        );
    }
    let after = ctx.ok(&["state", "list"], 0);
    assert!(!after.stdout.contains("k8s_"), "{}", after.stdout);
}

#[test]
fn claude_sandbox_example_applies_replans_clean_and_destroys() {
    round_trip("claude-sandbox", "claude-sandbox", 4);
}

#[test]
fn claworc_example_applies_replans_clean_and_destroys() {
    // namespace + 3 RBAC objects + 3 bots × (7 objects + 1 Secret)
    round_trip("claworc", "claworc", 28);
}

#[test]
fn k8sclaw_example_applies_replans_clean_and_destroys() {
    // namespace + 4 CRDs + 3 RBAC + 2 NetworkPolicies + 4 custom resources
    round_trip("k8sclaw", "k8sclaw", 14);
}

#[test]
fn clawdbot_fleet_kubernetes_part_applies_replans_clean_and_destroys() {
    // namespace, Secret, Deployment, Service, ConfigMap, PVC, Job
    round_trip("clawdbot-fleet", "clawdbot", 7);
}

#[test]
fn drift_by_hand_shows_in_the_plan_and_apply_converges() {
    if real_cluster() {
        eprintln!("SKIPPED: edits the API double directly");
        return;
    }
    let s = setup("clawdbot-fleet");
    let (ctx, d) = (&s.ctx, s.double.as_ref().unwrap());
    ctx.ok(&["apply", "--auto-approve"], 0);
    let mut dep = d
        .get("apps/v1", "Deployment", "clawdbot", "clawdbot-gateway")
        .unwrap();
    dep["spec"]["template"]["spec"]["containers"][0]["image"] =
        serde_json::json!("clawdbot:hand-edited");
    d.put_object("kubectl-edit", dep).unwrap();

    let plan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout
            .contains("spec.template.spec.containers[0].image"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("clawdbot:hand-edited"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 to update"), "{}", plan.stdout);
    ctx.ok(&["apply", "--auto-approve"], 0);
    ctx.ok(&["plan", "--detailed-exitcode"], 0);
    let dep = d
        .get("apps/v1", "Deployment", "clawdbot", "clawdbot-gateway")
        .unwrap();
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/anthropics/clawdbot:latest"
    );
}

#[test]
fn an_unmanaged_object_with_the_same_name_stops_the_plan_untouched() {
    if real_cluster() {
        eprintln!("SKIPPED: edits the API double directly");
        return;
    }
    let s = setup("clawdbot-fleet");
    let (ctx, d) = (&s.ctx, s.double.as_ref().unwrap());
    d.put_object("kubectl-create", serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "clawdbot"}})).unwrap();
    d.put_object(
        "kubectl-create",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "clawdbot-config", "namespace": "clawdbot"}, "data": {"mine": "yes"}}),
    )
    .unwrap();
    let out = ctx.ok(&["plan"], 1);
    assert!(out.all().contains("claw import"), "{}", out.all());
    assert!(
        out.all().contains("v1/ConfigMap/clawdbot/clawdbot-config"),
        "{}",
        out.all()
    );
    let cm = d
        .get("v1", "ConfigMap", "clawdbot", "clawdbot-config")
        .unwrap();
    assert_eq!(cm["data"], serde_json::json!({"mine": "yes"}));

    // Adopting them as the hint says: then the plan updates them in place.
    ctx.ok(
        &[
            "import",
            r#"k8s_manifest.namespace["v1/Namespace//clawdbot"]"#,
            "v1/Namespace//clawdbot",
        ],
        0,
    );
    ctx.ok(
        &[
            "import",
            r#"k8s_manifest.gateway["v1/ConfigMap/clawdbot/clawdbot-config"]"#,
            "v1/ConfigMap/clawdbot/clawdbot-config",
        ],
        0,
    );
    let cm = d
        .get("v1", "ConfigMap", "clawdbot", "clawdbot-config")
        .unwrap();
    assert_eq!(cm["metadata"]["labels"]["claw.dev/stack"], "clawdbot");
    let plan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(plan.stdout.contains("1 to update"), "{}", plan.stdout);
    ctx.ok(&["apply", "--auto-approve"], 0);
    ctx.ok(&["plan", "--detailed-exitcode"], 0);
    let cm = d
        .get("v1", "ConfigMap", "clawdbot", "clawdbot-config")
        .unwrap();
    assert_eq!(
        cm["data"]["mine"], "yes",
        "fields only the old manager set stay"
    );
    assert!(cm["data"]["clawdbot.json"].is_string());
}

#[test]
fn the_kubernetes_state_backend_keeps_state_in_a_secret_and_locks_with_a_lease() {
    if real_cluster() {
        eprintln!("SKIPPED: reads the API double directly");
        return;
    }
    let s = setup("claude-sandbox");
    let (ctx, d) = (&s.ctx, s.double.as_ref().unwrap());
    let toml = ctx.read("claw.toml").replace(
        "name = \"claude-sandbox\"\n",
        "name = \"claude-sandbox\"\nstate = { backend = \"kubernetes\", provider = \"k8s\", namespace = \"kube-system\" }\n",
    );
    ctx.write("claw.toml", &toml);
    ctx.ok(&["apply", "--auto-approve"], 0);
    assert!(
        !ctx.exists(".claw/state.json"),
        "no local state with the kubernetes backend"
    );
    let secret = d
        .get("v1", "Secret", "kube-system", "claw-state-claude-sandbox")
        .expect("state Secret");
    assert!(secret["data"]["state.json.gz"].is_string());
    ctx.ok(&["plan", "--detailed-exitcode"], 0);

    // Another run holds the lock (its Lease is fresh): apply fails at once and names it.
    let now = humantime_now();
    d.put_object(
        "other-claw",
        serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "claw-lock-claude-sandbox", "namespace": "kube-system"},
            "spec": {"holderIdentity": serde_json::json!({"id": "other-run", "pid": 4242, "host": "laptop",
                "user": "alice", "command": "claw apply", "created": now}).to_string(),
                "leaseDurationSeconds": 600, "acquireTime": now, "renewTime": now}}),
    )
    .unwrap();
    let out = ctx.ok(&["apply", "--auto-approve"], 1);
    assert!(
        out.all().contains("alice") || out.all().contains("4242"),
        "{}",
        out.all()
    );
    let out = ctx.ok(&["force-unlock"], 0);
    assert!(
        out.all().contains("alice") || out.all().contains("4242"),
        "{}",
        out.all()
    );
    ctx.ok(&["destroy", "--auto-approve"], 0);
    assert_eq!(
        d.find_labelled("claw.dev/stack=claude-sandbox,claw.dev/managed-by=claw")
            .len(),
        1,
        "only the state Secret stays"
    );
}

fn humantime_now() -> String {
    // RFC 3339 without a time crate: seconds since the epoch, formatted by `date`.
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.000000Z"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_second_apply_fails_at_once_while_the_first_holds_the_lease() {
    if real_cluster() {
        eprintln!("SKIPPED: slows down the API double's controllers");
        return;
    }
    let s = setup("clawdbot-fleet");
    let (ctx, d) = (&s.ctx, s.double.as_ref().unwrap());
    // The first apply waits ~6 s for the gateway's rollout, holding the lock.
    d.set_rollout_delay(std::time::Duration::from_secs(6));
    let toml = ctx
        .read("claw.toml")
        .replace("# wait = \"rollout\"", "wait = \"rollout\"")
        .replace(
            "name = \"clawdbot\"\n",
            "name = \"clawdbot\"\nstate = { backend = \"kubernetes\", provider = \"k3s\", namespace = \"kube-system\" }\n",
        );
    assert!(toml.contains("\nwait = \"rollout\""));
    ctx.write("claw.toml", &toml);
    let first = ctx
        .command(&["apply", "--auto-approve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    let started = std::time::Instant::now();
    while d
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "kube-system",
            "claw-lock-clawdbot",
        )
        .is_none()
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the first apply never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = ctx.claw(&["apply", "--auto-approve"]);
    let first = first.wait_with_output().unwrap();
    let first_out = format!(
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(first.status.success(), "{first_out}");
    assert_eq!(second.code, 1, "{}", second.all());
    assert!(
        second.all().contains(&pid),
        "the second run names the holder (pid {pid}): {}",
        second.all()
    );
    assert!(
        first_out.contains("rollout"),
        "progress while waiting: {first_out}"
    );
    assert!(
        d.get(
            "coordination.k8s.io/v1",
            "Lease",
            "kube-system",
            "claw-lock-clawdbot"
        )
        .is_none(),
        "released"
    );
    ctx.ok(&["plan", "--detailed-exitcode"], 0);
}
