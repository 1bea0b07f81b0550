//! The sandbox attributes of `docker_container` against the real Docker
//! Engine: what `docker inspect` shows, an apply that waits for healthy, a
//! memory change made in place (same id), a capability change that replaces,
//! a refresh by inspect that finds nothing to change, and the failures of
//! `wait = "healthy"` (unhealthy, timeout).

mod common;

use common::*;
use serde_json::json;

fn inspect(name: &str, fmt: &str) -> String {
    docker_ok(&["inspect", "-f", fmt, name])
}

fn sandboxed(extra: serde_json::Value) -> Vec<Res> {
    let mut c = json!({
        "image": base_image(),
        "command": ["/bin/sleep", "3600"],
        "init": true,
        "memory": "64m",
        "memory_swap": "128m",
        "cpus": "0.5",
        "pids_limit": 50,
        "shm_size": "32m",
        "cap_drop": ["ALL"],
        "cap_add": ["NET_ADMIN"],
        "read_only": true,
        "security_opt": ["no-new-privileges"],
        "tmpfs": { "/scratch": "rw,size=16m" },
        "healthcheck": { "test": ["CMD", "true"], "interval": "1s", "timeout": "5s", "retries": 2, "start_period": "0s" },
        "wait": "healthy",
        "wait_timeout": "60s",
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    vec![res("docker_container", "cell", c)]
}

#[tokio::test]
async fn sandbox_attributes_apply_wait_for_healthy_and_update_limits_in_place() {
    if !docker_available("sandbox_attributes_apply_wait_for_healthy_and_update_limits_in_place") {
        return;
    }
    let name = stack_name("sandbox");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let cname = format!("{name}-cell");

    let cfg = sandboxed(json!({}));
    s.set(cfg.clone()).apply().await;
    // Apply returned only once Docker reported the container healthy.
    assert_eq!(inspect(&cname, "{{.State.Health.Status}}"), "healthy");
    let hc = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.ShmSize}}";
    assert_eq!(
        inspect(&cname, hc),
        format!("{} {} 500000000 50 {}", 64 << 20, 128 << 20, 32 << 20)
    );
    let caps = inspect(
        &cname,
        "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}",
    );
    assert!(
        caps.contains("NET_ADMIN") && caps.contains("\"ALL\""),
        "{caps}"
    );
    assert_eq!(
        inspect(
            &cname,
            "{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.SecurityOpt}} {{json .HostConfig.Tmpfs}}"
        ),
        r#"true ["no-new-privileges"] {"/scratch":"rw,size=16m"}"#
    );
    assert_eq!(
        inspect(&cname, "{{json .Config.Healthcheck}}"),
        r#"{"Test":["CMD","true"],"Interval":1000000000,"Timeout":5000000000,"Retries":2}"#
    );
    // The tmpfs and the shm size are what the container sees.
    let (ok, df) = docker(&["exec", &cname, "df", "-k", "/scratch", "/dev/shm"]);
    assert!(ok && df.contains("16384") && df.contains("32768"), "{df}");
    // A second plan is clean.
    s.assert_converged().await;

    // Refreshed from a full inspect (the state entry lost): Docker's units,
    // NanoCpus, CAP_ names and durations compare equal, so it is adopted
    // with no change.
    s.state.remove("docker_container.cell");
    let plan = s.set(cfg.clone()).plan().await;
    assert_eq!(
        plan.with(Action::Adopt),
        vec!["docker_container.cell"],
        "{:?}",
        plan.changes
            .iter()
            .map(|c| (&c.address, c.action, &c.diff))
            .collect::<Vec<_>>()
    );
    s.apply_plan(&plan).await.unwrap();
    s.assert_converged().await;

    // A memory and pids change is an update in place: same container id.
    let id = inspect(&cname, "{{.Id}}");
    let cfg = sandboxed(json!({ "memory": "96m", "memory_swap": "192m", "pids_limit": 60 }));
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.cell").expect("a change");
    assert_eq!(c.action, Action::Update, "{:?}", c.diff);
    let paths: Vec<&str> = c.diff.iter().map(|x| x.path.as_str()).collect();
    assert_eq!(paths, vec!["memory", "memory_swap", "pids_limit"]);
    s.apply_plan(&plan).await.unwrap();
    assert_eq!(inspect(&cname, "{{.Id}}"), id, "updated, not replaced");
    assert_eq!(
        inspect(&cname, hc),
        format!("{} {} 500000000 60 {}", 96 << 20, 192 << 20, 32 << 20)
    );
    s.assert_converged().await;

    // A capability change replaces, naming the field.
    let cfg = sandboxed(
        json!({ "memory": "96m", "memory_swap": "192m", "pids_limit": 60, "cap_add": ["NET_ADMIN", "NET_RAW"] }),
    );
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.cell").unwrap();
    assert_eq!(c.action, Action::DeleteCreate);
    assert!(
        c.diff.iter().any(|x| x.path == "cap_add" && x.replace),
        "{:?}",
        c.diff
    );
    assert!(c.reason.to_string().contains("cap_add"), "{}", c.reason);
    s.apply_plan(&plan).await.unwrap();
    assert_ne!(inspect(&cname, "{{.Id}}"), id);
    s.assert_converged().await;
    s.destroy().await;
    assert!(labelled(&name).is_empty());
}

#[tokio::test]
async fn waiting_for_healthy_fails_with_the_last_health_check() {
    if !docker_available("waiting_for_healthy_fails_with_the_last_health_check") {
        return;
    }
    let name = stack_name("unhealthy");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let cname = format!("{name}-cell");

    // Unhealthy: the failure carries the check's last output; the container
    // is removed, so the next apply tries again.
    let sick = vec![res(
        "docker_container",
        "cell",
        json!({
            "image": base_image(), "init": true,
            "healthcheck": { "test": ["CMD-SHELL", "echo disk on fire; exit 1"], "interval": "1s", "retries": 1 },
            "wait": "healthy",
        }),
    )];
    let err = s.set(sick.clone()).try_apply().await.unwrap_err();
    assert!(
        err.summary.contains("is unhealthy") && err.summary.contains("exit 1: disk on fire"),
        "{err}"
    );
    assert!(!docker(&["inspect", &cname]).0, "removed after the failure");
    assert_eq!(
        s.set(sick).plan().await.action("docker_container.cell"),
        Some(Action::Create)
    );

    // Not healthy in time: the timeout is named.
    let slow = vec![res(
        "docker_container",
        "cell",
        json!({
            "image": base_image(), "init": true,
            "healthcheck": { "test": ["CMD", "sleep", "30"], "interval": "1s", "timeout": "60s" },
            "wait": "healthy", "wait_timeout": "2s",
        }),
    )];
    let t0 = std::time::Instant::now();
    let err = s.set(slow).try_apply().await.unwrap_err();
    assert!(err.summary.contains("not healthy within 2s"), "{err}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));
    assert!(labelled(&name).is_empty());
}

#[test]
fn bad_sizes_and_waits_are_errors_at_validate() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack("validate", dir.path());
    let plan_errors = |s: &Harness| {
        s.check()
            .into_iter()
            .map(|d| (d.attr.unwrap_or_default(), d.summary))
            .collect::<Vec<_>>()
    };
    s.set(vec![res(
        "docker_container",
        "c",
        json!({
            "image": "x:1", "memory": "12 parsecs", "shm_size": "2g", "cpus": "half",
            "cap_add": ["NET ADMIN"], "tmpfs": { "tmp": "" },
            "healthcheck": { "test": ["true"], "interval": "often" },
            "wait": "ready", "wait_timeout": "soon",
        }),
    )]);
    let errs = plan_errors(&s);
    let attrs: Vec<&str> = errs.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        attrs,
        vec![
            "memory",
            "cpus",
            "cap_add[0]",
            "tmpfs.tmp",
            "healthcheck.test",
            "healthcheck.interval",
            "wait",
            "wait_timeout"
        ],
        "{errs:?}"
    );
    assert!(errs[0].1.contains("`12 parsecs` is not a size"), "{errs:?}");
}
