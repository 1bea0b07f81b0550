//! The configuration end to end: state backends on a provider alias,
//! validation without secrets, one line per missing variable, optional
//! entries.

use crate::common::Ctx;
use crate::errors::fails;
use kube_api_double::KubeApiDouble;

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
