//! The Docker provider against the real Docker Engine: create, no-op re-plan,
//! drift by hand, replace, ownership (unmanaged, other stack), orphans,
//! delete, two stacks side by side, image builds, import and daemon errors.

mod common;

use claw_provider::*;
use common::*;
use serde_json::json;

macro_rules! need_docker {
    ($name:expr) => {
        if !docker_available($name) {
            return;
        }
    };
}

/// A network, a volume and a container using both, with a secret env value.
fn trio(image: &str, extra: serde_json::Value) -> Vec<Res> {
    let mut c = json!({
        "image": image,
        "env": { "MODE": "test", "TOKEN": "placeholder" },
        "networks": ["${net}"],
        "mounts": [{ "type": "volume", "source": "${vol}", "target": "/data" }],
        "ports": ["127.0.0.1::8080"],
        "restart": "unless-stopped",
        "init": true,
        "labels": { "app": "sandbox" },
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    vec![
        res("docker_network", "net", json!({})),
        res("docker_volume", "vol", json!({})),
        res("docker_container", "box", c),
    ]
}

/// Resolves the `${net}` / `${vol}` placeholders to the stack's default names
/// (as the engine resolves `${docker_network.net.name}`; the network and the
/// volume name themselves, so that the container is ordered after them by
/// name, as a reference would order it) and makes TOKEN a secret (as the
/// engine does for `{ env = ... }`).
fn resolve(stack: &Harness, rs: Vec<Res>, token: &str) -> Vec<Res> {
    let net = format!("{}-net", stack.ctx.stack);
    let vol = format!("{}-vol", stack.ctx.stack);
    rs.into_iter()
        .map(|mut r| {
            let own = match r.rtype.as_str() {
                "docker_network" => Some(&net),
                "docker_volume" => Some(&vol),
                _ => None,
            };
            if let Some(n) = own {
                r.attrs.entry("name".into()).or_insert(Value::str(n));
            }
            let j = serde_json::to_string(&Value::Map(r.attrs.clone())).unwrap();
            let j = j.replace("${net}", &net).replace("${vol}", &vol);
            r.attrs = match serde_json::from_str::<Value>(&j).unwrap() {
                Value::Map(m) => m,
                _ => unreachable!(),
            };
            if let Some(Value::Map(env)) = r.attrs.get_mut("env") {
                if env.contains_key("TOKEN") {
                    env.insert("TOKEN".into(), stack.ctx.secret(token));
                }
            }
            r
        })
        .collect()
}

fn inspect(name: &str, fmt: &str) -> String {
    docker_ok(&["inspect", "-f", fmt, name])
}

#[tokio::test]
async fn create_noop_drift_and_delete() {
    need_docker!("create_noop_drift_and_delete");
    let name = stack_name("lifecycle");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let cfg = resolve(&s, trio(&base_image(), json!({})), "s3cret-value");

    // Create: everything is new.
    let plan = s.set(cfg.clone()).converge().await;
    assert_eq!(plan.changes.len(), 3);
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    let cname = format!("{name}-box");
    assert_eq!(inspect(&cname, "{{.State.Running}}"), "true");
    assert_eq!(
        inspect(&cname, "{{index .Config.Labels \"claw.dev/managed-by\"}}"),
        "claw"
    );
    assert_eq!(
        inspect(&cname, "{{index .Config.Labels \"claw.dev/address\"}}"),
        "docker_container.box"
    );
    assert_eq!(
        inspect(&cname, "{{.HostConfig.RestartPolicy.Name}}"),
        "unless-stopped"
    );
    assert!(inspect(&cname, "{{json .Config.Env}}").contains("TOKEN=s3cret-value"));
    // The secret is stored as a salted hash only.
    let st = serde_json::to_string(&s.state["docker_container.box"].object).unwrap();
    assert!(!st.contains("s3cret-value"), "{st}");
    assert_eq!(labelled(&name).len(), 3);

    // No-op plan: constant, small number of API calls and no inspect.
    let again = s.set(cfg.clone()).plan().await;
    assert!(again.is_empty(), "{:?}", again.changes);
    assert!(
        again.calls <= 5,
        "a no-change plan made {} API calls",
        again.calls
    );

    // Drift: stopped by hand → in-place start.
    docker_ok(&["stop", "-t", "1", &cname]);
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.box").expect("drift seen");
    assert_eq!(c.action, Action::Update, "{c:?}");
    assert_eq!(c.diff[0].path, "state");
    assert_eq!(c.diff[0].before, Some(Value::str("stopped")));
    let id_before = s.state["docker_container.box"].object.id.clone();
    s.apply_plan(&plan).await.unwrap();
    assert_eq!(inspect(&cname, "{{.State.Running}}"), "true");
    assert_eq!(
        s.state["docker_container.box"].object.id, id_before,
        "started, not replaced"
    );

    // Drift: removed by hand → create.
    docker_ok(&["rm", "-f", &cname]);
    let plan = s.set(cfg.clone()).plan().await;
    assert_eq!(
        plan.get("docker_container.box").unwrap().action,
        Action::Create
    );
    s.apply_plan(&plan).await.unwrap();
    assert!(s.set(cfg.clone()).plan().await.is_empty());

    // Drift: re-created by hand with the stack's labels but another env value
    // (a new id → inspected → env differs → replace). The secret stays hidden.
    docker_ok(&["rm", "-f", &cname]);
    let net = format!("{name}-net");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &cname,
        "--network",
        &net,
        "--label",
        "claw.dev/managed-by=claw",
        "--label",
        &format!("claw.dev/stack={name}"),
        "--label",
        "claw.dev/address=docker_container.box",
        "--label",
        "app=sandbox",
        "-e",
        "MODE=test",
        "-e",
        "TOKEN=changed-by-hand",
        &base_image(),
    ]);
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.box").unwrap();
    assert_eq!(c.action, Action::DeleteCreate, "{c:?}");
    let tok = c
        .diff
        .iter()
        .find(|x| x.path == "env.TOKEN")
        .expect("env.TOKEN changed");
    assert!(
        matches!(tok.before, Some(Value::Secret(_))),
        "live secret is hashed: {tok:?}"
    );
    assert!(!format!("{plan:?}").contains("changed-by-hand"));
    assert!(!format!("{plan:?}").contains("s3cret-value"));
    s.apply_plan(&plan).await.unwrap();
    assert!(s.set(cfg.clone()).plan().await.is_empty());
    assert!(inspect(&cname, "{{json .Config.Env}}").contains("TOKEN=s3cret-value"));

    // Destroy leaves nothing labelled for the stack.
    s.destroy().await;
    assert_eq!(labelled(&name), Vec::<String>::new());
}

#[tokio::test]
async fn changed_fields_replace_or_update_in_place() {
    need_docker!("changed_fields_replace_or_update_in_place");
    let name = stack_name("replace");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let img = base_image();
    let base = |extra: serde_json::Value| {
        let mut c = json!({ "image": img, "command": ["/bin/sleep", "1000"], "init": true });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        vec![res("docker_container", "app", c)]
    };
    s.set(base(json!({}))).converge().await;
    let id0 = s.state["docker_container.app"].object.id.clone();

    // A changed command replaces, naming the field.
    let cfg = base(json!({ "command": ["/bin/sleep", "2000"] }));
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.app").unwrap();
    assert_eq!(c.action, Action::DeleteCreate);
    assert!(
        c.diff
            .iter()
            .any(|x| x.path.starts_with("command") && x.replace),
        "{c:?}"
    );
    s.apply_plan(&plan).await.unwrap();
    let id1 = s.state["docker_container.app"].object.id.clone();
    assert_ne!(id0, id1);
    assert!(s.set(cfg.clone()).plan().await.is_empty());

    // Restart policy and state change in place (same id).
    let cfg = base(
        json!({ "command": ["/bin/sleep", "2000"], "restart": "on-failure:3", "state": "stopped" }),
    );
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.app").unwrap();
    assert_eq!(c.action, Action::Update, "{c:?}");
    s.apply_plan(&plan).await.unwrap();
    assert_eq!(s.state["docker_container.app"].object.id, id1);
    let cname = format!("{name}-app");
    assert_eq!(inspect(&cname, "{{.State.Running}}"), "false");
    assert_eq!(
        inspect(
            &cname,
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:3"
    );
    assert!(s.set(cfg.clone()).plan().await.is_empty());

    // A removed attribute (command no longer configured) is a change too.
    let cfg = base(json!({ "restart": "on-failure:3", "state": "stopped" }));
    let cfg: Vec<Res> = cfg
        .into_iter()
        .map(|mut r| {
            r.attrs.remove("command");
            r
        })
        .collect();
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.app").unwrap();
    assert!(
        c.diff
            .iter()
            .any(|x| x.path == "command" && x.after.is_none()),
        "{c:?}"
    );

    // A changed port or env replaces; env shows per key.
    let cfg = base(json!({ "env": { "A": "1" }, "ports": ["127.0.0.1::9000/udp"] }));
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.app").unwrap();
    assert_eq!(c.action, Action::DeleteCreate);
    assert!(c.diff.iter().any(|x| x.path == "env.A"));
    assert!(c.diff.iter().any(|x| x.path == "ports"));
    s.apply_plan(&plan).await.unwrap();
    assert!(s.set(cfg.clone()).plan().await.is_empty());
    s.destroy().await;
    assert!(labelled(&name).is_empty());
}

#[tokio::test]
async fn unmanaged_and_other_stack_objects_are_reported_and_untouched() {
    need_docker!("unmanaged_and_other_stack_objects_are_reported_and_untouched");
    let name = stack_name("unmanaged");
    let other = stack_name("otherstack");
    let _c = Cleanup(vec![name.clone(), other.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    // A container with the name claw would use, made by hand without labels.
    let cname = format!("{name}-web");
    docker_ok(&["run", "-d", "--init", "--name", &cname, &base_image()]);
    let _rm = scopeguard(cname.clone());
    let vname = format!("{name}-data");
    docker_ok(&["volume", "create", &vname]);
    let cfg = vec![
        res("docker_container", "web", json!({ "image": base_image() })),
        res("docker_volume", "data", json!({})),
    ];
    let plan = s.set(cfg.clone()).plan().await;
    assert!(
        foreign(&plan).contains(&("docker_container.web".to_string(), Owner::Unmanaged)),
        "{:?}",
        foreign(&plan)
    );
    assert!(
        foreign(&plan).contains(&("docker_volume.data".to_string(), Owner::Unmanaged)),
        "{:?}",
        foreign(&plan)
    );
    // Applying directly anyway (as a buggy engine would) is refused by the provider.
    let live = {
        let r = s
            .provider
            .refresh(RefreshRequest {
                ctx: s.ctx.clone(),
                items: vec![RefreshItem {
                    address: "docker_container.web".into(),
                    rtype: "docker_container".into(),
                    desired: Some(std::sync::Arc::new(s.desired(&cfg[0].address()).unwrap())),
                    prior: None,
                    recheck: false,
                }],
                find_orphans: false,
            })
            .await;
        r.live["docker_container.web"].clone().unwrap()
    };
    let err = s
        .provider
        .apply(ApplyRequest {
            ctx: s.ctx.clone(),
            address: "docker_container.web".into(),
            rtype: "docker_container".into(),
            op: Op::Delete,
            desired: None,
            prior: None,
            live: Some(std::sync::Arc::new(live)),
            changes: vec![],
        })
        .await
        .into_result()
        .unwrap_err();
    assert!(err
        .hint
        .unwrap()
        .starts_with("claw import docker_container.web"));
    // Creating the volume would silently reuse the unmanaged one: refused.
    let plan_create = s.forced_create("docker_volume.data");
    let err = s.apply_plan(&plan_create).await.unwrap_err();
    assert!(err.summary.contains("already exists"), "{err}");
    // Both are untouched.
    assert_eq!(inspect(&cname, "{{.State.Running}}"), "true");
    assert_eq!(inspect(&cname, "{{len .Config.Labels}}"), "0");
    assert_eq!(
        docker_ok(&["volume", "inspect", "-f", "{{len .Labels}}", &vname]),
        "0"
    );
    docker_ok(&["volume", "rm", &vname]);

    // Another stack's container with the same name is OtherStack.
    let mut o = stack(&other, dir.path());
    let ocfg = vec![res(
        "docker_container",
        "web",
        json!({ "image": base_image(), "name": format!("{other}-shared"), "init": true }),
    )];
    o.set(ocfg.clone()).converge().await;
    let mine = vec![res(
        "docker_container",
        "web2",
        json!({ "image": base_image(), "name": format!("{other}-shared") }),
    )];
    let plan = s.set(mine.clone()).plan().await;
    assert_eq!(
        foreign(&plan),
        vec![(
            "docker_container.web2".to_string(),
            Owner::OtherStack(other.clone())
        )]
    );
    // Other stack's objects are never orphans of this one.
    assert!(orphans(&plan).is_empty());
    o.destroy().await;
    assert!(labelled(&other).is_empty());
}

/// Removes a container by name when dropped.
struct ContainerGuard(String);
impl Drop for ContainerGuard {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.0]);
    }
}
fn scopeguard(name: String) -> ContainerGuard {
    ContainerGuard(name)
}

#[tokio::test]
async fn orphans_are_found_and_deleted() {
    need_docker!("orphans_are_found_and_deleted");
    let name = stack_name("orphans");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let img = base_image();
    let cfg = vec![
        keyed(
            "docker_container",
            "agent",
            Some("a"),
            json!({ "image": img, "init": true }),
        ),
        keyed(
            "docker_container",
            "agent",
            Some("b"),
            json!({ "image": img, "init": true }),
        ),
        res("docker_network", "n", json!({})),
        res("docker_volume", "v", json!({})),
    ];
    s.set(cfg.clone()).converge().await;
    assert!(docker(&["inspect", &format!("{name}-agent-a")]).0);
    // A crash lost the state of b, n and v, and the config no longer has them.
    for a in [
        "docker_container.agent[\"b\"]",
        "docker_network.n",
        "docker_volume.v",
    ] {
        s.state.remove(a);
    }
    let plan = s.set(cfg[..1].to_vec()).plan().await;
    assert_eq!(
        orphans(&plan),
        vec![
            ("docker_container.agent[\"b\"]", "docker_container"),
            ("docker_network.n", "docker_network"),
            ("docker_volume.v", "docker_volume"),
        ]
    );
    assert_eq!(plan.changes.len(), 3, "{:?}", plan.changes);
    s.apply_plan(&plan).await.unwrap();
    assert!(!docker(&["inspect", &format!("{name}-agent-b")]).0);
    assert_eq!(labelled(&name).len(), 1);
    // An orphan that the config declares again is adopted, not deleted.
    let cfg2 = vec![
        cfg[0].clone(),
        keyed(
            "docker_container",
            "agent",
            Some("c"),
            json!({ "image": img, "init": true }),
        ),
    ];
    s.set(cfg2.clone()).converge().await;
    s.state.remove("docker_container.agent[\"c\"]");
    let plan = s.set(cfg2.clone()).plan().await;
    assert_eq!(
        plan.with(Action::Adopt),
        vec!["docker_container.agent[\"c\"]"],
        "adopted by label: {:?}",
        plan.changes
    );
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    s.apply_plan(&plan).await.unwrap();
    s.assert_converged().await;
    // c is in neither state nor config once more: destroy finds it as an orphan too.
    s.state.remove("docker_container.agent[\"c\"]");
    let plan = s.set(vec![]).plan().await;
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    assert_eq!(orphans(&plan).len(), 1);
    s.apply_plan(&plan).await.unwrap();
    assert!(labelled(&name).is_empty());
}

#[tokio::test]
async fn two_stacks_never_touch_each_other() {
    need_docker!("two_stacks_never_touch_each_other");
    let a = stack_name("stack-a");
    let b = stack_name("stack-b");
    let _c = Cleanup(vec![a.clone(), b.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let img = base_image();
    let cfg = |s: &Harness| resolve(s, trio(&img, json!({ "ports": [] })), "t");
    let mut sa = stack(&a, dir.path());
    let mut sb = stack(&b, dir.path());
    let (ca, cb) = (cfg(&sa), cfg(&sb));
    sa.set(ca.clone()).converge().await;
    sb.set(cb.clone()).converge().await;
    assert_eq!(labelled(&a).len(), 3);
    assert_eq!(labelled(&b).len(), 3);
    // Same addresses in both stacks; neither sees the other's as orphans.
    assert!(sa.set(ca.clone()).plan().await.is_empty());
    sa.destroy().await;
    assert!(labelled(&a).is_empty());
    assert_eq!(labelled(&b).len(), 3);
    assert!(sb.set(cb.clone()).plan().await.is_empty());
    sb.destroy().await;
    assert!(labelled(&b).is_empty());
}

#[tokio::test]
async fn images_build_rebuild_and_tag_drift() {
    need_docker!("images_build_rebuild_and_tag_drift");
    let name = stack_name("images");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    busybox_context(&dir.path().join("ctx"), "");
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut s = stack(&name, dir.path());
    let pr = progress.clone();
    s.ctx.progress = Progress(std::sync::Arc::new(move |a, m| {
        pr.lock().unwrap().push(format!("{a}: {m}"))
    }));
    let tag = format!("claw-test/{name}:1");
    let cfg = vec![
        res(
            "docker_image",
            "agent",
            json!({ "name": tag, "build": { "context": "ctx", "args": { "X": "1" } } }),
        ),
        res(
            "docker_container",
            "agent",
            json!({ "image": tag, "init": true }),
        ),
    ];
    s.set(cfg.clone()).converge().await;
    assert!(
        progress
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("docker_image.agent: Step")),
        "{:?}",
        progress.lock().unwrap()
    );
    let img_id = s.state["docker_image.agent"].object.id.clone();
    assert!(img_id.starts_with("sha256:"));
    assert_eq!(
        s.state["docker_image.agent"].object.attrs.get("id"),
        Some(&Value::String(img_id.clone()))
    );

    // A container run by hand from the image inherits its claw.dev labels: it
    // is neither this stack's container nor an orphan, and is left alone.
    let hand_run = format!("{name}-by-hand");
    docker_ok(&["run", "-d", "--init", "--name", &hand_run, &tag]);
    let plan = s.set(cfg.clone()).plan().await;
    assert!(plan.is_empty(), "{:?}", plan.changes);
    docker_ok(&["rm", "-f", &hand_run]);

    // Changing the context rebuilds the image (the plan says why) and the container follows.
    std::fs::write(dir.path().join("ctx/extra.txt"), "v2").unwrap();
    let plan = s.set(cfg.clone()).plan().await;
    let i = plan.get("docker_image.agent").expect("image changes");
    assert_eq!(i.action, Action::Update);
    assert_eq!(i.diff[0].path, "context_hash");
    let c = plan
        .get("docker_container.agent")
        .expect("container follows");
    assert_eq!(c.action, Action::DeleteCreate);
    assert!(
        c.diff
            .iter()
            .any(|x| x.path == "image_id" && x.after == Some(Value::Unknown)),
        "{c:?}"
    );
    s.apply_plan(&plan).await.unwrap();
    assert_ne!(s.state["docker_image.agent"].object.id, img_id);
    assert!(s.set(cfg.clone()).plan().await.is_empty());

    // The tag rebuilt by hand (another image id behind the same tag): the
    // container running the old id is replaced, the image rebuilt.
    let hand = dir.path().join("hand");
    busybox_context(&hand, "ENV BY_HAND=1\n");
    docker_ok(&["build", "-q", "-t", &tag, hand.to_str().unwrap()]);
    let plan = s.set(cfg.clone()).plan().await;
    let c = plan.get("docker_container.agent").expect("tag drift seen");
    assert!(
        c.diff.iter().any(|x| x.path == "image_id" && x.replace),
        "{c:?}"
    );
    s.apply_plan(&plan).await.unwrap();
    assert!(s.set(cfg.clone()).plan().await.is_empty());

    // Build errors are reported with the build output and a hint.
    std::fs::write(
        dir.path().join("ctx/Dockerfile"),
        "FROM scratch\nCOPY missing-file /x\n",
    )
    .unwrap();
    let plan = s.set(cfg.clone()).plan().await;
    let err = s.apply_plan(&plan).await.unwrap_err();
    assert!(err.summary.contains("building image"), "{err}");
    assert!(err.hint.is_some());
    s.destroy().await;
    assert!(labelled(&name).is_empty());
    docker(&["rmi", &tag]);
}

#[tokio::test]
async fn import_adopts_an_unlabelled_container() {
    need_docker!("import_adopts_an_unlabelled_container");
    let name = stack_name("import");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(&name, dir.path());
    let cname = format!("{name}-legacy");
    let _g = scopeguard(cname.clone());
    docker_ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        &cname,
        "-e",
        "A=1",
        &base_image(),
    ]);
    let cfg = vec![res(
        "docker_container",
        "legacy",
        json!({ "image": base_image(), "env": { "A": "1" }, "init": true }),
    )];
    let plan = s.set(cfg.clone()).plan().await;
    assert_eq!(foreign(&plan).len(), 1);
    let st = s
        .import("docker_container.legacy", &cname)
        .await
        .expect("import");
    assert_eq!(st.private.get("imported"), Some(&Value::Bool(true)));
    let plan = s.set(cfg.clone()).plan().await;
    assert!(plan.is_empty(), "{:?} {:?}", foreign(&plan), plan.changes);
    // Importing another stack's object is refused.
    s.destroy().await;
    assert!(
        !docker(&["inspect", &cname]).0,
        "an imported container is deleted by destroy"
    );
}

#[tokio::test]
async fn daemon_errors_are_actionable() {
    let dir = tempfile::tempdir().unwrap();
    // Unreachable: no socket.
    let sock = dir.path().join("none.sock");
    let mut s = with_host(
        "errs",
        dir.path(),
        Some(&format!("unix://{}", sock.display())),
    );
    let plan = s
        .set(vec![res("docker_volume", "v", json!({}))])
        .plan()
        .await;
    let d = plan.diagnostics.first().expect("an error");
    assert!(d.summary.contains("cannot reach the Docker daemon"), "{d}");
    assert!(d.hint.as_deref().unwrap().contains("start the daemon"));
    // configure did not connect; the failure is remembered (one attempt).
    assert!(s
        .set(vec![res("docker_volume", "v", json!({}))])
        .plan()
        .await
        .diagnostics[0]
        .summary
        .contains("cannot reach"));

    // Too old: a fake Engine answering API 1.24.
    let sock = dir.path().join("old.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let body = r#"{"Version":"1.12.0","ApiVersion":"1.24","MinAPIVersion":"1.12"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
    });
    let mut s = with_host(
        "errs",
        dir.path(),
        Some(&format!("unix://{}", sock.display())),
    );
    let plan = s
        .set(vec![res("docker_volume", "v", json!({}))])
        .plan()
        .await;
    let d = plan.diagnostics.first().expect("an error");
    assert!(
        d.summary.contains("API 1.24") && d.summary.contains("older"),
        "{d}"
    );
    assert!(d.hint.as_deref().unwrap().contains("upgrade"));

    // The same over plain tcp:// (a loopback listener).
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = tcp.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let body = r#"{"Version":"1.12.0","ApiVersion":"1.24","MinAPIVersion":"1.12"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
    });
    let mut s = with_host("errs", dir.path(), Some(&format!("tcp://127.0.0.1:{port}")));
    let plan = s
        .set(vec![res("docker_volume", "v", json!({}))])
        .plan()
        .await;
    assert!(
        plan.diagnostics[0].summary.contains("API 1.24"),
        "{}",
        plan.diagnostics[0]
    );

    // Unsupported schemes say how to get there.
    let mut s = with_host("errs", dir.path(), Some("ssh://user@host"));
    let plan = s
        .set(vec![res("docker_volume", "v", json!({}))])
        .plan()
        .await;
    assert!(
        plan.diagnostics[0]
            .summary
            .contains("unsupported Docker endpoint"),
        "{}",
        plan.diagnostics[0]
    );
    assert!(plan.diagnostics[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("ssh -L"));

    // Permission denied: a socket this user may not open (only meaningful
    // when not root; root bypasses file permissions).
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(true);
    if !is_root {
        let sock = dir.path().join("denied.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o000)).unwrap();
        let mut s = with_host(
            "errs",
            dir.path(),
            Some(&format!("unix://{}", sock.display())),
        );
        let plan = s
            .set(vec![res("docker_volume", "v", json!({}))])
            .plan()
            .await;
        assert!(
            plan.diagnostics[0].summary.contains("permission denied"),
            "{}",
            plan.diagnostics[0]
        );
    } else {
        eprintln!("daemon_errors_are_actionable: permission-denied case covered by the unit test (running as root)");
    }
}

#[tokio::test]
async fn image_builds_honour_dockerignore() {
    need_docker!("image_builds_honour_dockerignore");
    let name = stack_name("ignore");
    let _c = Cleanup(vec![name.clone()]);
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    busybox_context(&ctx, "COPY . /ctx/\n");
    std::fs::write(
        ctx.join(".dockerignore"),
        "secret.env\ncache/\n*.tmp\n!keep.tmp\n",
    )
    .unwrap();
    std::fs::write(ctx.join("secret.env"), "TOKEN=hunter2\n").unwrap();
    std::fs::create_dir_all(ctx.join("cache/deep")).unwrap();
    std::fs::write(ctx.join("cache/deep/blob"), "x".repeat(1 << 20)).unwrap();
    std::fs::write(ctx.join("a.tmp"), "a").unwrap();
    std::fs::write(ctx.join("keep.tmp"), "k").unwrap();
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut s = stack(&name, dir.path());
    let pr = progress.clone();
    s.ctx.progress = Progress(std::sync::Arc::new(move |_, m| {
        pr.lock().unwrap().push(m.to_string())
    }));
    let tag = format!("claw-test/{name}:1");
    let cfg = vec![
        res(
            "docker_image",
            "app",
            json!({ "name": tag, "build": { "context": "ctx" } }),
        ),
        res(
            "docker_container",
            "app",
            json!({ "image": tag, "init": true }),
        ),
    ];
    s.set(cfg.clone()).converge().await;
    // Only what .dockerignore leaves in was sent (the 1 MiB blob was not).
    let sent = progress
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| {
            l.strip_prefix("sending build context (")?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .expect("the context size is reported");
    let busybox = std::fs::metadata(ctx.join("busybox")).unwrap().len() / 1024;
    assert!(
        sent < busybox + 256,
        "{sent} KiB sent, busybox is {busybox} KiB"
    );
    let cname = format!("{name}-app");
    let listing = docker_ok(&["exec", &cname, "ls", "-a", "/ctx"]);
    let files: Vec<&str> = listing.split_whitespace().collect();
    assert!(
        files.contains(&"keep.tmp") && files.contains(&"Dockerfile"),
        "{listing}"
    );
    for gone in ["secret.env", "cache", "a.tmp"] {
        assert!(!files.contains(&gone), "{gone} was sent: {listing}");
    }
    // An excluded file is not part of the context hash: no rebuild.
    std::fs::write(ctx.join("cache/deep/blob"), "changed").unwrap();
    std::fs::write(ctx.join("secret.env"), "TOKEN=rotated\n").unwrap();
    assert!(s.set(cfg.clone()).plan().await.is_empty());
    // An included one is.
    std::fs::write(ctx.join("keep.tmp"), "k2").unwrap();
    let plan = s.set(cfg.clone()).plan().await;
    assert_eq!(plan.action("docker_image.app"), Some(Action::Update));
    s.apply_plan(&plan).await.unwrap();
    s.destroy().await;
    docker(&["rmi", &tag]);
}
