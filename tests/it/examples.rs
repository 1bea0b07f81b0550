//! Every example validates, the host-only file of clawdbot-fleet stays
//! identical to the host part of its claw.toml, and the whole clawdbot-fleet
//! applies with its checks gating the E2E Job. (Each example's provider
//! parts also round-trip in kubernetes.rs, tailscale.rs, host.rs, docker.rs.)

use crate::checks::Server;
use crate::common::{require, says, which, Ctx};
use kube_api_double::KubeApiDouble;
use std::path::Path;
use std::process::Command;
use tailscale_api_double::{TailscaleDouble, TEST_API_KEY};

const SECRETS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "BRAVE_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "GITHUB_TOKEN",
    "OPENAI_API_KEY",
    "TAILSCALE_API_KEY",
];

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_validates() {
    let mut t = Ctx::new();
    for s in SECRETS {
        t = t.env(s, "dummy-value-for-validate");
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let dir = entry.unwrap().path();
        for file in ["claw.toml", "host.toml"] {
            if !dir.join(file).exists() {
                continue;
            }
            let o = t.ok(&["-C", dir.to_str().unwrap(), "-f", file, "validate"], 0);
            assert!(
                o.stdout.contains("The configuration is valid"),
                "{}",
                o.stdout
            );
            seen += 1;
        }
    }
    assert!(seen >= 7, "examples found: {seen}");
}

fn section(text: &str, start: &str, end: &str) -> String {
    let s = text.find(start).unwrap_or_else(|| panic!("no {start:?}"));
    let e = text[s..]
        .find(end)
        .map(|e| s + e)
        .unwrap_or_else(|| panic!("no {end:?}"));
    text[s..e].to_string()
}

#[test]
fn host_toml_matches_the_host_part_of_claw_toml() {
    let dir = examples().join("clawdbot-fleet");
    let full = std::fs::read_to_string(dir.join("claw.toml")).unwrap();
    let host = std::fs::read_to_string(dir.join("host.toml")).unwrap();
    for (start, end) in [
        (
            "# ─── host part: variables",
            "# ─── end of host part: variables",
        ),
        ("# ═══ host part", "# ═══ end of host part"),
    ] {
        assert_eq!(
            section(&full, start, end),
            section(&host, start, end),
            "host.toml and claw.toml differ in {start:?}: copy the section over"
        );
    }
}

#[test]
fn fleet_graph_shows_the_e2e_gateway_and_the_checks() {
    let t = Ctx::new();
    let dir = examples().join("clawdbot-fleet");
    let o = t.ok(&["-C", dir.to_str().unwrap(), "graph"], 0);
    for node in [
        r#""k8s_manifest.e2e_gateway[\"apps/v1/Deployment/clawdbot/clawdbot-e2e\"]";"#,
        r#""k8s_manifest.e2e_gateway[\"v1/Service/clawdbot/clawdbot-e2e\"]";"#,
        r#""check.mac_mini_gateway";"#,
        r#""check.k3s_gateway";"#,
        r#""tmux_session.gateway";"#,
    ] {
        says(&o.stdout, node);
    }
    // Both checks gate the E2E Job; each waits for its gateway.
    let job = r#""k8s_manifest.e2e[\"batch/v1/Job/clawdbot/e2e-tests\"]""#;
    says(&o.stdout, &format!(r#"{job} -> "check.mac_mini_gateway";"#));
    says(&o.stdout, &format!(r#"{job} -> "check.k3s_gateway";"#));
    says(
        &o.stdout,
        r#""check.mac_mini_gateway" -> "tmux_session.gateway";"#,
    );
    says(
        &o.stdout,
        r#""check.k3s_gateway" -> "k8s_manifest.gateway[\"apps/v1/Deployment/clawdbot/clawdbot-gateway\"]";"#,
    );
    says(
        &o.stdout,
        r#""tmux_session.gateway" -> "file.clawdbot_config";"#,
    );
}

/// The whole clawdbot-fleet claw.toml applied at once: the host part on this
/// machine (git, tmux), the k3s part against the Kubernetes API double, the
/// tailnet against the Tailscale API double, and both gateways' health
/// endpoints served by local HTTP listeners. A `pnpm` stand-in on PATH
/// records how the gateway session started it and stays running.
#[test]
fn the_whole_fleet_applies_with_its_checks_gating_the_e2e_job() {
    if !require("git", which("git"), "git is not installed")
        || !require("tmux", which("tmux"), "tmux is not installed")
    {
        return;
    }
    let src = examples().join("clawdbot-fleet");
    let t = Ctx::new();
    let root = t.dir.path().to_path_buf();
    let cp = Command::new("cp")
        .arg("-R")
        .arg(src.join("."))
        .arg(&root)
        .status()
        .unwrap();
    assert!(cp.success());
    let _ = std::fs::remove_dir_all(root.join(".claw"));
    // The default `repo` (~/src/clawdbot, HOME being the test folder).
    let repo = root.join("src/clawdbot");
    let git = |args: &[&str]| {
        let o = Command::new("git").args(args).output().unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    };
    git(&["init", "-q", "-b", "main", repo.to_str().unwrap()]);
    git(&[
        "-C",
        repo.to_str().unwrap(),
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
    ]);
    let record = root.join("gateway-started.txt");
    t.write(
        "bin/pnpm",
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" \"$CLAWDBOT_CONFIG_PATH\" \"$PWD\" > '{}'\nexec sleep 3600\n",
            record.display()
        ),
    );
    std::fs::set_permissions(
        t.path("bin/pnpm"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sock = root.join("sock/clawdbot.sock");
    let _tmux = crate::host::TmuxGuard(sock.clone());

    let mac_mini = Server::start();
    let mut k3s = Server::start();
    let kube = KubeApiDouble::start().expect("start the Kubernetes API double");
    let tailnet = TailscaleDouble::spawn();
    t.write("kubeconfig", &kube.kubeconfig("default"));
    let kubeconfig = t.path("kubeconfig").display().to_string();
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let vars = [
        ("tmux_socket_dir", root.join("sock").display().to_string()),
        ("gateway_port", mac_mini.port.to_string()),
        ("mac_mini_gateway_host", "127.0.0.1".into()),
        ("k3s_gateway_address", format!("127.0.0.1:{}", k3s.port)),
        ("tailscale_api_url", tailnet.base_url()),
    ];
    let mut t = t
        .env("PATH", &path)
        .env("KUBECONFIG", &kubeconfig)
        .env("ANTHROPIC_API_KEY", "test-value-of-ANTHROPIC_API_KEY")
        .env("TAILSCALE_API_KEY", TEST_API_KEY);
    for (k, v) in &vars {
        t = t.env(&format!("CLAW_VAR_{k}"), v);
    }

    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &o.stdout,
        "Checks that apply will run: check.k3s_gateway, check.mac_mini_gateway (plan does not run them).",
    );
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stderr, "check.mac_mini_gateway: healthy (HTTP 200 OK)");
    says(&o.stderr, "check.k3s_gateway: healthy (HTTP 200 OK)");
    let at = |what: &str| o.stderr.find(what).unwrap_or_else(|| panic!("{what}"));
    let created = at(r#"k8s_manifest.e2e["batch/v1/Job/clawdbot/e2e-tests"]: creating"#);
    assert!(
        at("check.mac_mini_gateway: healthy") < created
            && at("check.k3s_gateway: healthy") < created,
        "the Job waits for both checks:\n{}",
        o.stderr
    );
    let job = || kube.get("batch/v1", "Job", "clawdbot", "e2e-tests");
    let uid = job().expect("the E2E Job, after both checks")["metadata"]["uid"].clone();
    let e2e = kube
        .get("apps/v1", "Deployment", "clawdbot", "clawdbot-e2e")
        .expect("the clawdbot-e2e Deployment");
    assert_eq!(
        e2e["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"],
        serde_json::json!({"memory": "512Mi", "cpu": "500m"})
    );
    assert!(kube
        .get("v1", "Service", "clawdbot", "clawdbot-e2e")
        .is_some());
    assert!(tailnet.policy().contains("tag:clawdbot:8080"));

    // The gateway session runs the guide's command, in the clone, with
    // CLAWDBOT_CONFIG_PATH naming the config file as written.
    let started = std::fs::read_to_string(&record).expect("the gateway session started pnpm");
    assert_eq!(
        started,
        format!(
            "clawdbot gateway --port {} --bind tailnet\n~/.clawdbot/clawdbot.json\n{}\n",
            mac_mini.port,
            std::fs::canonicalize(&repo).unwrap().display()
        )
    );
    assert!(root.join(".clawdbot/clawdbot.json").exists());

    // Outputs: printed by apply, `claw output NAME` is the bare value.
    let attach = format!("tmux -S {} attach -t agent-dev", sock.display());
    says(&o.stdout, &format!("attach_dev = \"{attach}\""));
    assert_eq!(
        t.ok(&["output", "attach_dev"], 0).stdout,
        format!("{attach}\n")
    );
    assert_eq!(
        t.ok(&["output", "k3s_gateway_url"], 0).stdout,
        format!("ws://127.0.0.1:{}\n", k3s.port)
    );
    says(&t.ok(&["output"], 0).stdout, "attach_gateway = \"tmux -S ");
    t.ok(&["check"], 0);
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // The README's way to run the E2E suite again: a new Job object.
    let o = t.ok(
        &["apply", "--auto-approve", "--replace", "k8s_manifest.e2e"],
        0,
    );
    says(&o.stdout, "replacement requested with --replace");
    assert_ne!(job().expect("the Job again")["metadata"]["uid"], uid);

    // replace_triggered_by (issue 15): a new gateway image runs the E2E
    // Job again; a changed clawdbot.json restarts the gateway session.
    let t = t.env("CLAW_VAR_gateway_image", "ghcr.io/anthropics/clawdbot:2");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &o.stdout,
        r#"replace (replace_triggered_by: k8s_manifest.gateway["apps/v1/Deployment/clawdbot/clawdbot-gateway"].spec.template.spec.containers[0].image changes)"#,
    );
    let uid = job().unwrap()["metadata"]["uid"].clone();
    t.ok(&["apply", "--auto-approve"], 0);
    assert_ne!(job().expect("the Job again")["metadata"]["uid"], uid);
    let pane = || {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(["list-panes", "-t", "=gateway:", "-F", "#{pane_pid}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let before = pane();
    let t = t.env("CLAW_VAR_agent_model", "anthropic/claude-opus-4");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(
        &o.stdout,
        "replace (replace_triggered_by: file.clawdbot_config changes)",
    );
    t.ok(&["apply", "--auto-approve"], 0);
    assert_ne!(pane(), before, "the gateway session was restarted");
    t.ok(&["plan", "--detailed-exitcode"], 0);

    // A gateway that stops answering: `claw check` exits 1 naming it.
    k3s.stop();
    let o = t.ok(&["check"], 1);
    says(&o.stdout, "1 of 2 healthy; unhealthy: check.k3s_gateway.");

    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(job().is_none());
    assert_eq!(t.ok(&["state", "list"], 0).stdout.trim(), "");
}

#[test]
fn claworc_graph_shows_one_ssh_key_per_bot() {
    let t = Ctx::new();
    let dir = examples().join("claworc");
    let o = t.ok(&["-C", dir.to_str().unwrap(), "graph"], 0);
    let keys: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("\"ssh_key.") && l.trim_end().ends_with("\";"))
        .collect();
    assert_eq!(keys.len(), 3, "{}", o.stdout);
    for bot in ["alpha", "bravo", "charlie"] {
        says(
            &o.stdout,
            &format!(r#""k8s_secret.bot_keys[\"{bot}\"]" -> "ssh_key.bot[\"{bot}\"]";"#),
        );
    }
}

/// claworc against the Kubernetes API double: each bot's Secret carries its
/// own key's public half, the private keys stay in their 0600 files (never
/// in the state), and the outputs are the NodePort pairs.
#[test]
fn claworc_applies_a_key_per_bot_and_prints_the_node_ports() {
    let src = examples().join("claworc");
    let t = Ctx::new();
    for f in ["claw.toml", "bot.yaml", "rbac.yaml"] {
        t.write(f, &std::fs::read_to_string(src.join(f)).unwrap());
    }
    let kube = KubeApiDouble::start().expect("start the Kubernetes API double");
    t.write("kubeconfig", &kube.kubeconfig("default"));
    let kc = t.path("kubeconfig").display().to_string();
    let mut t = t.env("KUBECONFIG", &kc);
    for s in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "BRAVE_API_KEY"] {
        t = t.env(s, &format!("test-value-of-{s}"));
    }
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stdout, "alpha_ports = \"chrome 30100, terminal 30101\"");
    says(
        &o.stdout,
        "charlie_ports = \"chrome 30104, terminal 30105\"",
    );
    let o = t.ok(&["output", "bravo_ports"], 0);
    assert_eq!(o.stdout.trim_end(), "chrome 30102, terminal 30103");
    let state = t.read(".claw/state.json");
    let mut publics = Vec::new();
    for bot in ["alpha", "bravo", "charlie"] {
        let key = format!("ssh-keys/bot-{bot}");
        let mode = std::fs::metadata(t.path(&key)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        let public = t.read(&format!("{key}.pub"));
        assert!(
            public.ends_with(&format!(" claworc-bot-{bot}\n")),
            "{public}"
        );
        let secret = kube
            .get("v1", "Secret", "claworc", &format!("bot-{bot}-keys"))
            .expect("the bot's Secret");
        let b64 = secret["data"]["SSH_AUTHORIZED_KEYS"].as_str().unwrap();
        let mut dec = Command::new("base64")
            .arg("-d")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        dec.stdin.take().unwrap().write_all(b64.as_bytes()).unwrap();
        let out = dec.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), public.trim_end());
        // No private key material in the state.
        let pem = t.read(&key);
        for l in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!state.contains(l), "private key of {bot} in the state");
        }
        publics.push(public);
    }
    publics.dedup();
    assert_eq!(publics.len(), 3, "one key per bot");
    t.ok(&["plan", "--detailed-exitcode"], 0);
    t.ok(&["destroy", "--auto-approve"], 0);
    assert!(!t.exists("ssh-keys/bot-alpha"));
}
