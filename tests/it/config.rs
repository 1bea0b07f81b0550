//! The configuration end to end: state backends on a provider alias,
//! validation without secrets, one line per missing variable, optional
//! entries.

use crate::common::{Ctx, Out};
use crate::errors::fails;
use kube_api_double::KubeApiDouble;

/// The `error:` lines of a run's stderr.
fn error_lines(o: &Out) -> Vec<&str> {
    o.stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect()
}

const K8S: &str = "[stack]\nname = \"s\"\nSTATE\n\n[provider.k3s]\ntype = \"kubernetes\"\n\n[provider.docker]\n\n[file.a]\npath = \"out/a\"\ncontent = \"x\"\n";

fn with_state(state: &str) -> Ctx {
    let t = Ctx::new();
    t.write("claw.toml", &K8S.replace("STATE", state));
    t
}

#[test]
fn a_provider_backend_needs_a_declared_alias_of_its_type() {
    let t = with_state("state = { backend = \"kubernetes\", namespace = \"claw-system\" }");
    fails(
        &t,
        &["validate"],
        &[
            "the kubernetes state backend needs `provider`",
            "claw.toml:3:9",
            "hint: name the [provider.ALIAS]",
        ],
    );
    let t = with_state("state = { backend = \"kubernetes\", provider = \"k3\" }");
    fails(
        &t,
        &["validate"],
        &[
            "names provider `k3`, which is not declared",
            "claw.toml:3:46",
            "hint: did you mean `k3s`?",
        ],
    );
    let t = with_state("state = { backend = \"kubernetes\", provider = \"docker\" }");
    fails(
        &t,
        &["plan"],
        &[
            "needs a kubernetes provider; `docker` is of type docker",
            "claw.toml:3:",
        ],
    );
    let t = with_state("state = { backend = \"kubernets\", provider = \"k3s\" }");
    fails(
        &t,
        &["validate"],
        &[
            "unknown state backend \"kubernets\"",
            "claw.toml:3:21",
            "did you mean \"kubernetes\"?",
        ],
    );
    let t = with_state("state = { backend = \"local\", provider = \"k3s\" }");
    fails(
        &t,
        &["validate"],
        &["unknown key `provider` in state", "claw.toml:3:30"],
    );
}

#[test]
fn the_backends_keys_are_checked_by_its_provider_and_located() {
    let t = with_state(
        "state = { backend = \"kubernetes\", provider = \"k3s\", namspace = \"claw-system\" }",
    );
    fails(
        &t,
        &["plan"],
        &[
            "unknown key `namspace` in the kubernetes state backend",
            "claw.toml:3:53",
            "hint: did you mean `namespace`?",
        ],
    );
    let t = with_state("state = { backend = \"docker\", provider = \"docker\" }");
    fails(
        &t,
        &["plan"],
        &["the docker provider cannot hold state", "claw.toml:3:9"],
    );
}

#[test]
fn the_kubernetes_backend_takes_its_own_secret_and_lease_names() {
    let d = KubeApiDouble::start().expect("start the Kubernetes API double");
    let t = with_state("state = { backend = \"kubernetes\", provider = \"k3s\", namespace = \"kube-system\", secret = \"my-state\", lease = \"my-lock\" }");
    t.write("kubeconfig", &d.kubeconfig("default"));
    let kc = t.path("kubeconfig").to_str().unwrap().to_string();
    let t = t.env("KUBECONFIG", &kc);
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(
        !t.exists(".claw/state.json"),
        "no local state with the kubernetes backend"
    );
    let s = d
        .get("v1", "Secret", "kube-system", "my-state")
        .expect("the named state Secret");
    assert!(s["data"]["state.json.gz"].is_string());
    assert!(d
        .get("v1", "Secret", "kube-system", "claw-state-s")
        .is_none());
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

/// Three variables, each used four times: in whole attributes, table
/// entries, strings, a host block and both instances of a for_each resource.
const MISSING: &str = r#"[stack]
name = "s"

[host.h]
address = "${env.CLAW_T_V2}"

[provider.tailnet]
type = "tailscale"
api_key = { env = "CLAW_T_TS_KEY" }

[file.a]
path = "out/a"
content = { env = "CLAW_T_V1" }

[file.b]
path = "out/b"
content = "${env.CLAW_T_V2}-${env.CLAW_T_V3}"

[tmux_session.t]
socket = "out/tmux.sock"
command = "sleep 1"
env = { A = { env = "CLAW_T_V1" }, B = { env = "CLAW_T_V2" }, C = { env = "CLAW_T_V3" } }

[file.c]
for_each = ["x", "y"]
path = "out/${each.key}-${env.CLAW_T_V1}"
content = { env = "CLAW_T_V3" }

[file.d]
host = "h"
path = "out/d"
content = { env = "CLAW_T_V2" }

[file.e]
path = "out/e"
content = { file = "secrets/missing.txt" }
"#;

#[test]
fn validate_needs_no_secret_values() {
    let t = Ctx::new();
    t.write("claw.toml", MISSING);
    let o = t.ok(&["validate"], 0);
    assert!(
        o.stdout.contains("The configuration is valid"),
        "{}",
        o.all()
    );
    assert!(!o.stderr.contains("not set"), "{}", o.stderr);
}

#[test]
fn plan_reports_each_missing_variable_once_with_its_uses() {
    let t = Ctx::new();
    // Without the tailnet block's key and the secret file, so that exactly
    // the three variables are missing.
    let cfg = MISSING
        .replace("api_key = { env = \"CLAW_T_TS_KEY\" }\n", "")
        .replace(
            "content = { file = \"secrets/missing.txt\" }",
            "content = \"e\"",
        );
    t.write("claw.toml", &cfg);
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let o = fails(&t, args, &[]);
        let errors = error_lines(&o);
        assert_eq!(errors.len(), 3, "one line per variable:\n{}", o.stderr);
        assert_eq!(
            errors[0],
            "error: environment variable `CLAW_T_V2` is not set; used by [host.h] address (claw.toml:5:11), \
             file.b content (claw.toml:16:11), tmux_session.t env.B (claw.toml:21:48), file.d content (claw.toml:31:19)"
        );
        assert_eq!(
            errors[1],
            "error: environment variable `CLAW_T_V1` is not set; used by file.a content (claw.toml:12:19), \
             tmux_session.t env.A (claw.toml:21:21), file.c path (claw.toml:25:8)"
        );
        assert_eq!(
            errors[2],
            "error: environment variable `CLAW_T_V3` is not set; used by file.b content (claw.toml:16:11), \
             tmux_session.t env.C (claw.toml:21:75), file.c content (claw.toml:26:19)"
        );
        assert!(o
            .stderr
            .contains("hint: export CLAW_T_V1=... before running claw; nothing was changed"));
        assert!(!o.stderr.contains("untagged enum"), "{}", o.stderr);
        assert!(!t.exists("out"), "nothing is created");
    }
    // A missing secret file is one line too.
    t.write("claw.toml", MISSING);
    let t = t
        .env("CLAW_T_V1", "1")
        .env("CLAW_T_V2", "127.0.0.1")
        .env("CLAW_T_V3", "3")
        .env("CLAW_T_TS_KEY", "k");
    let o = fails(
        &t,
        &["plan"],
        &[
            "cannot read secret file secrets/missing.txt",
            "used by file.e content (claw.toml:36:20)",
        ],
    );
    assert_eq!(error_lines(&o).len(), 1, "{}", o.stderr);
}

#[test]
fn an_optional_entry_whose_variable_is_unset_is_left_out() {
    if !crate::common::require(
        "tmux",
        crate::common::which("tmux"),
        "tmux is not installed",
    ) {
        return;
    }
    let t = Ctx::new().env("CLAW_T_SET", "here");
    t.write(
        "claw.toml",
        "[stack]\nname = \"s\"\n\n[tmux_session.t]\nsocket = \"tmux.sock\"\ncommand = \"sleep 1\"\n\
         env = { A = { env = \"CLAW_T_UNSET\", optional = true }, B = { env = \"CLAW_T_SET\", optional = true }, C = \"c\" }\n",
    );
    t.ok(&["validate"], 0);
    let o = t.ok(&["plan", "--format", "json"], 0);
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).expect("plan json");
    let change = &plan["changes"][0];
    let env = change["after"]["env"]
        .as_object()
        .unwrap_or_else(|| panic!("env in {change}"));
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(keys, ["B", "C"], "A is left out: {change}");
    assert!(
        env["B"].get("$sensitive").is_some(),
        "B stays sensitive: {change}"
    );
    assert!(!o.stdout.contains("here"), "the secret is not in the plan");
}

#[test]
fn claworc_without_its_keys_validates_and_plan_names_each_key_once() {
    let t = Ctx::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/claworc");
    for f in ["claw.toml", "bot.yaml", "rbac.yaml"] {
        // Variables that are surely unset, whatever this environment holds.
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        t.write(f, &text.replace("env = \"", "env = \"CLAW_T_"));
    }
    let t = t.env("KUBECONFIG", "/nonexistent");
    t.ok(&["validate"], 0);
    let o = fails(&t, &["plan"], &[]);
    let errors = error_lines(&o);
    assert_eq!(errors.len(), 3, "{}", o.stderr);
    for (e, key) in errors
        .iter()
        .zip(["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "BRAVE_API_KEY"])
    {
        assert!(
            e.contains(&format!(
                "`CLAW_T_{key}` is not set; used by k8s_secret.bot_keys data.{key} (claw.toml:"
            )),
            "{e}"
        );
    }
}
