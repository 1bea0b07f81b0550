//! The plan is the contract (SPEC §3, issue 9): a saved plan whose inputs
//! changed is refused before anything changes, naming the object and the
//! input; `ignore_changes` paths keep their live value through apply; a
//! lifecycle change alone updates the state; plans are byte-identical for
//! the same inputs, including a stack without state; markdown stays short.

use crate::common::{require, Ctx};
use kube_api_double::KubeApiDouble;
use std::os::unix::fs::PermissionsExt;
use tailscale_api_double::TailscaleDouble;

const SOURCE: &str = r#"[stack]
name = "contract"

[file.a]
path = "out/a.txt"
source = "src.txt"
"#;

#[test]
fn a_source_file_edited_after_the_plan_is_refused_by_name() {
    let t = Ctx::new();
    t.write("claw.toml", SOURCE);
    t.write("src.txt", "v1\n");
    t.ok(&["apply", "--auto-approve"], 0);
    t.write("src.txt", "v2\n");
    let plan = t.ok(&["plan", "--out", "p.json", "--detailed-exitcode"], 2);
    assert!(plan.stdout.contains("+v2"), "{}", plan.stdout);
    t.write("src.txt", "v3\n");
    let o = t.ok(&["apply", "p.json"], 1);
    assert!(
        o.stderr
            .contains("error: file.a: src.txt changed since the plan"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("nothing was changed"), "{}", o.stderr);
    assert!(o.stderr.contains("hint: make a new plan"), "{}", o.stderr);
    assert_eq!(
        t.read("out/a.txt"),
        "v1\n",
        "the file keeps its old content"
    );
    // Back to what was planned: the plan applies exactly.
    t.write("src.txt", "v2\n");
    t.ok(&["apply", "p.json"], 0);
    assert_eq!(t.read("out/a.txt"), "v2\n");
}

#[test]
fn a_plan_file_records_inputs_as_keyed_digests() {
    let t = Ctx::new();
    t.write("claw.toml", SOURCE);
    t.write("src.txt", "v1\n");
    t.ok(&["plan", "--out", "p.json"], 0);
    let plan: serde_json::Value = serde_json::from_str(&t.read("p.json")).unwrap();
    let inputs = plan["inputs"].as_object().unwrap();
    assert!(inputs.contains_key("claw.toml"), "{inputs:?}");
    let src = inputs["file:src.txt"].as_str().unwrap();
    assert!(src.starts_with("hmac-sha256:"), "{src}");
    assert_eq!(plan["changes"][0]["inputs"][0], "file:src.txt");
    assert!(
        plan.get("new_state_salt").is_none(),
        "no salt in a plan file"
    );
}

#[test]
fn a_policy_file_edited_after_the_plan_is_refused_by_name() {
    let double = TailscaleDouble::spawn();
    let t = Ctx::new()
        .env("TAILSCALE_API_KEY", tailscale_api_double::TEST_API_KEY)
        .env("TS_URL", &double.base_url());
    t.write(
        "claw.toml",
        r#"[stack]
name = "contract"

[provider.tailnet]
type = "tailscale"
tailnet = "-"
api_key = { env = "TAILSCALE_API_KEY" }
base_url = "${env.TS_URL}"

[tailscale_acl.fleet]
policy_file = "policy.hujson"
"#,
    );
    let policy = r#"{
  // who reaches what
  "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["*:22"]}],
}
"#;
    t.write("policy.hujson", policy);
    t.ok(&["plan", "--out", "p.json", "--detailed-exitcode"], 2);
    t.write("policy.hujson", &policy.replace(":22", ":2222"));
    let o = t.ok(&["apply", "p.json"], 1);
    assert!(
        o.stderr
            .contains("tailscale_acl.fleet: policy.hujson changed since the plan"),
        "{}",
        o.stderr
    );
    assert!(double.is_default(), "the tailnet's policy is untouched");
}

#[test]
fn a_manifest_file_edited_after_the_plan_is_refused_by_name() {
    let double = KubeApiDouble::start().expect("start the Kubernetes API double");
    let t = Ctx::new();
    t.write("kubeconfig", &double.kubeconfig("default"));
    let kc = t.path("kubeconfig").to_str().unwrap().to_string();
    let t = t.env("KUBECONFIG", &kc);
    t.write(
        "claw.toml",
        r#"[stack]
name = "contract"

[provider.k3s]
type = "kubernetes"

[k8s_manifest.cfg]
file = "cm.yaml"
"#,
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gw\n  namespace: default\ndata:\n  port: \"8080\"\n";
    t.write("cm.yaml", cm);
    t.ok(&["plan", "--out", "p.json", "--detailed-exitcode"], 2);
    t.write("cm.yaml", &cm.replace("8080", "9090"));
    let o = t.ok(&["apply", "p.json"], 1);
    assert!(
        o.stderr.contains("cm.yaml changed since the plan"),
        "{}",
        o.stderr
    );
    assert!(
        double.get("v1", "ConfigMap", "default", "gw").is_none(),
        "nothing was created"
    );
}

#[test]
fn a_docker_build_context_edited_after_the_plan_is_refused_by_name() {
    let (ok, why) = match std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
    {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ),
        Err(e) => (false, e.to_string()),
    };
    if !require("a Docker Engine", ok, &why) {
        return;
    }
    let t = Ctx::new();
    let stack = format!(
        "contract-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    t.write(
        "claw.toml",
        &format!(
            "[stack]\nname = \"{stack}\"\n\n[docker_image.img]\nname = \"{stack}:latest\"\nbuild = {{ context = \"img\" }}\n"
        ),
    );
    t.write("img/Dockerfile", "FROM scratch\nCOPY greeting /greeting\n");
    t.write("img/greeting", "v1\n");
    t.ok(&["plan", "--out", "p.json", "--detailed-exitcode"], 2);
    t.write("img/greeting", "v2\n");
    let o = t.ok(&["apply", "p.json"], 1);
    assert!(
        o.stderr
            .contains("docker_image.img: img changed since the plan"),
        "{}",
        o.stderr
    );
    let inspect = std::process::Command::new("docker")
        .args(["image", "inspect", &format!("{stack}:latest")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "nothing was built");
}

#[test]
fn ignored_mode_survives_an_apply_that_fixes_the_content() {
    let t = Ctx::new();
    let cfg = r#"[stack]
name = "contract"

[file.a]
path = "out/a.txt"
content = "CONTENT"
mode = "0644"
lifecycle = { ignore_changes = ["mode"] }
"#;
    t.write("claw.toml", &cfg.replace("CONTENT", "one"));
    t.ok(&["apply", "--auto-approve"], 0);
    let p = t.path("out/a.txt");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.write("claw.toml", &cfg.replace("CONTENT", "two"));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(!plan.stdout.contains("mode"), "{}", plan.stdout);
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.read("out/a.txt"), "two");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the hand-set mode survives");
    t.ok(&["plan", "--detailed-exitcode"], 0);
}

#[test]
fn prevent_destroy_turned_off_is_recorded_and_destroy_works() {
    let t = Ctx::new();
    let cfg = r#"[stack]
name = "contract"

[file.a]
path = "out/a.txt"
content = "x"
lifecycle = { prevent_destroy = true }
"#;
    t.write("claw.toml", cfg);
    t.ok(&["apply", "--auto-approve"], 0);
    let o = t.ok(&["destroy", "--auto-approve"], 1);
    assert!(o.stderr.contains("prevent_destroy"), "{}", o.stderr);
    t.write("claw.toml", &cfg.replace("true", "false"));
    let plan = t.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains(
            "update state only (lifecycle prevent_destroy changed; the object is not touched)"
        ),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("1 state-only"), "{}", plan.stdout);
    t.ok(&["apply", "--auto-approve"], 0);
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("out/a.txt"));
}

#[test]
fn json_plans_and_plan_files_are_byte_identical_on_a_fresh_stack() {
    let t = Ctx::new().env("TOK", "hunter2");
    t.write(
        "claw.toml",
        r#"[stack]
name = "contract"

[file.a]
path = "out/a.txt"
content = { env = "TOK" }

[file.b]
path = "out/b.txt"
source = "src.txt"
"#,
    );
    t.write("src.txt", "b\n");
    let one = t.ok(&["plan", "--format", "json"], 0).stdout;
    let two = t.ok(&["plan", "--format", "json"], 0).stdout;
    assert_eq!(one, two);
    t.ok(&["plan", "--out", "p1.json"], 0);
    t.ok(&["plan", "--out", "p2.json"], 0);
    assert_eq!(t.read("p1.json"), t.read("p2.json"));
    assert!(!one.contains("hunter2"));
}

#[test]
fn a_markdown_plan_of_2000_changes_fits_a_comment() {
    let t = Ctx::new();
    let mut cfg = String::from("[stack]\nname = \"contract\"\n");
    for i in 0..2000 {
        cfg.push_str(&format!(
            "\n[file.f{i:04}]\npath = \"out/f{i:04}.txt\"\ncontent = \"file {i}\"\n"
        ));
    }
    t.write("claw.toml", &cfg);
    let md = t.ok(&["plan", "--format", "markdown"], 0).stdout;
    assert!(md.chars().count() < 65_000, "{} characters", md.len());
    assert!(md.contains("Plan: 2000 to create, 0 to update, 0 to replace, 0 to delete."));
    assert!(md.contains("**Truncated:**"), "a truncation note");
    assert!(md.contains("more_ |"), "the summary table is cut too");
}
