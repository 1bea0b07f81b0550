//! The Docker provider end to end through the CLI, against the real Docker
//! Engine: `examples/clawker` (its image built FROM scratch with Debian's
//! busybox-static) applies, plans clean, heals a `docker stop` made by hand,
//! and destroys; an unmanaged same-name container stops the plan with the
//! `claw import` hint and is left alone.

use crate::common::{require, which, Ctx};
use std::path::{Path, PathBuf};
use std::process::Command;

fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.success(), s.trim().to_string())
        }
        Err(e) => (false, e.to_string()),
    }
}

/// A Docker Engine answers (else skip, or fail under CI=true).
fn engine() -> bool {
    let (ok, out) = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    require("a Docker Engine", which("docker") && ok, &out)
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Removes everything labelled for the stack, and the image, when dropped.
struct Cleanup {
    stack: String,
    image: String,
    extra: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let f = format!("label=claw.dev/stack={}", self.stack);
        for (ls, rm) in [
            (vec!["ps", "-aq", "--filter", &f], vec!["rm", "-f"]),
            (
                vec!["volume", "ls", "-q", "--filter", &f],
                vec!["volume", "rm", "-f"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &f],
                vec!["network", "rm"],
            ),
            (vec!["images", "-q", "--filter", &f], vec!["rmi", "-f"]),
        ] {
            let (_, ids) = docker(&ls);
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let mut a = rm.clone();
                a.push(id);
                docker(&a);
            }
        }
        docker(&["rmi", &self.image]);
        for c in &self.extra {
            docker(&["rm", "-f", c]);
        }
    }
}

/// The clawker example in a temp folder, with a unique stack and project.
fn clawker() -> Option<(Ctx, String, String, Cleanup)> {
    if !engine() {
        return None;
    }
    let bb = busybox();
    if !require(
        "busybox-static",
        bb.is_some(),
        "apt-get install busybox-static",
    ) {
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/clawker");
    let stack = unique("it-clawker-");
    let project = unique("p");
    let key = unique("sk-it-");
    let ctx = Ctx::new().env("ANTHROPIC_API_KEY", &key);
    let toml = std::fs::read_to_string(root.join("claw.toml")).unwrap();
    assert!(toml.contains("name = \"clawker\""));
    ctx.write(
        "claw.toml",
        &toml.replacen("name = \"clawker\"", &format!("name = \"{stack}\""), 1),
    );
    for f in ["Dockerfile", "agent.sh"] {
        ctx.write(
            &format!("image/{f}"),
            &std::fs::read_to_string(root.join("image").join(f)).unwrap(),
        );
    }
    std::fs::copy(bb.unwrap(), ctx.path("image/busybox")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            ctx.path("image/agent.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    let cleanup = Cleanup {
        stack: stack.clone(),
        image: format!("clawker-{project}:latest"),
        extra: vec![],
    };
    Some((ctx, project, key, cleanup))
}

#[test]
fn clawker_example_applies_plans_clean_and_heals_a_stop() {
    let Some((ctx, project, key, _cleanup)) = clawker() else {
        return;
    };
    let var = format!("project={project}");
    let plan = ctx.ok(&["plan", "--var", &var, "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("docker_container.agent[\"dev\"]"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("(sensitive)"));
    assert!(!plan.all().contains(&key), "the API key never shows");

    ctx.ok(&["apply", "--var", &var, "--auto-approve"], 0);
    let dev = format!("clawker.{project}.dev");
    let worker = format!("clawker.{project}.worker");
    for c in [&dev, &worker] {
        let (ok, running) = docker(&["inspect", "-f", "{{.State.Running}}", c]);
        assert!(ok && running == "true", "{c}: {running}");
    }
    // The padded cell: apply returned once Docker reported the agents
    // healthy; limits and capabilities are what `docker inspect` shows.
    for c in [&dev, &worker] {
        let (_, cell) = docker(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} {{json .HostConfig.CapDrop}} {{json .HostConfig.CapAdd}} {{json .HostConfig.SecurityOpt}}",
            c,
        ]);
        let mut f = cell.split(' ');
        assert_eq!(f.next(), Some("healthy"), "{c}: {cell}");
        assert_eq!(f.next(), Some("2147483648"), "{c}: {cell}");
        assert_eq!(f.next(), Some("2147483648"), "{c}: {cell}");
        assert_eq!(f.next(), Some("512"), "{c}: {cell}");
        assert_eq!(f.next(), Some(r#"["ALL"]"#), "{c}: {cell}");
        assert!(
            f.next().is_some_and(|a| a.contains("NET_ADMIN")),
            "{c}: {cell}"
        );
        assert_eq!(f.next(), Some(r#"["no-new-privileges"]"#), "{c}: {cell}");
    }
    // The optional ANTHROPIC_AUTH_TOKEN is unset here: the entry is absent.
    let (_, env) = docker(&["inspect", "-f", "{{json .Config.Env}}", &dev]);
    assert!(
        env.contains(&format!("\"ANTHROPIC_API_KEY={key}\""))
            && !env.contains("ANTHROPIC_AUTH_TOKEN"),
        "{}",
        env.replace(&key, "***")
    );
    let (_, labels) = docker(&["inspect", "-f", "{{json .Config.Labels}}", &dev]);
    assert!(
        labels.contains("\"claw.dev/managed-by\":\"claw\"")
            && labels.contains("\"dev.clawker.agent\":\"dev\""),
        "{labels}"
    );
    let (_, vols) = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=dev.clawker.project={project}"),
    ]);
    assert_eq!(
        vols.lines().count(),
        4,
        "config and history volumes per agent: {vols}"
    );
    let (_, logs) = docker(&["logs", &dev]);
    assert!(
        logs.contains(&format!("clawker agent dev of project {project}")),
        "{logs}"
    );
    assert!(
        !ctx.read(".claw/state.json").contains(&key),
        "no clear-text secret in state"
    );

    // Converged: a second plan has no changes, with a constant, small number of API calls.
    let clean = ctx.ok(&["plan", "--var", &var, "--detailed-exitcode", "-v"], 0);
    let calls: u64 = clean
        .all()
        .lines()
        .find_map(|l| {
            l.split(": ")
                .nth(1)?
                .strip_suffix(" docker api calls")?
                .parse()
                .ok()
        })
        .expect("claw -v prints the docker api call count");
    assert!(calls <= 8, "a no-change plan made {calls} Docker API calls");

    // Stopped by hand: the plan shows it (exit 2), apply starts it again.
    assert!(docker(&["stop", &dev]).0);
    let drift = ctx.ok(&["plan", "--var", &var, "--detailed-exitcode"], 2);
    assert!(
        drift.stdout.contains("state") && drift.stdout.contains("\"stopped\" -> \"running\""),
        "{}",
        drift.stdout
    );
    ctx.ok(&["apply", "--var", &var, "--auto-approve"], 0);
    let (_, running) = docker(&["inspect", "-f", "{{.State.Running}}", &dev]);
    assert_eq!(running, "true");
    ctx.ok(&["plan", "--var", &var, "--detailed-exitcode"], 0);

    ctx.ok(&["destroy", "--var", &var, "--auto-approve"], 0);
    for c in [&dev, &worker] {
        assert!(!docker(&["inspect", c]).0, "{c} removed");
    }
    let (_, left) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.clawker.project={project}"),
    ]);
    assert!(left.is_empty(), "{left}");
}

#[test]
fn unmanaged_same_name_container_stops_the_plan_untouched() {
    let Some((ctx, project, _key, mut cleanup)) = clawker() else {
        return;
    };
    let var = format!("project={project}");
    // Build the image through claw only (targeted), then squat the dev name by hand.
    ctx.ok(
        &[
            "apply",
            "--var",
            &var,
            "--auto-approve",
            "--target",
            "docker_image.agent",
        ],
        0,
    );
    let dev = format!("clawker.{project}.dev");
    cleanup.extra.push(dev.clone());
    let image = format!("clawker-{project}:latest");
    let (ok, out) = docker(&["run", "-d", "--init", "--name", &dev, &image]);
    assert!(ok, "{out}");
    let id = out.lines().last().unwrap_or_default().to_string();

    let plan = ctx.ok(&["plan", "--var", &var], 1);
    let all = plan.all();
    assert!(
        all.contains("claw import docker_container.agent[\"dev\"]")
            || all.contains("claw import 'docker_container.agent[\"dev\"]'"),
        "{all}"
    );
    // Untouched: still running, still unlabelled, same id.
    // (It inherits the labels of the image claw built, address docker_image.agent:
    // that does not make it claw's container.)
    let (_, state) = docker(&[
        "inspect",
        "-f",
        "{{.Id}} {{.State.Running}} {{index .Config.Labels \"claw.dev/address\"}}",
        &dev,
    ]);
    assert_eq!(state, format!("{id} true docker_image.agent"));
    let apply = ctx.claw(&["apply", "--var", &var, "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    let (_, after) = docker(&["inspect", "-f", "{{.Id}} {{.State.Running}}", &dev]);
    assert_eq!(after, format!("{id} true"));
}
