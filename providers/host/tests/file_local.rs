//! The `file` resource through the provider API on the local runner.
#![allow(clippy::result_large_err)]

use claw_host::factory;
use claw_provider::*;
use std::sync::Arc;

fn provider() -> Arc<dyn Provider> {
    factory()
        .configure(ConfigureRequest {
            alias: "local".into(),
            attrs: Attrs::new(),
            ctx: Ctx::for_tests("t", "/"),
        })
        .unwrap()
}

fn attrs(pairs: &[(&str, Value)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn prepare(p: &dyn Provider, ctx: &Ctx, a: &Attrs) -> Attrs {
    let diags = p.validate(InstanceRequest {
        address: "file.x",
        rtype: "file",
        name: "x",
        key: None,
        attrs: a,
        ctx,
    });
    assert!(diags.diagnostics.is_empty(), "{diags:?}");
    p.prepare(InstanceRequest {
        address: "file.x",
        rtype: "file",
        name: "x",
        key: None,
        attrs: a,
        ctx,
    })
    .into_result()
    .unwrap()
    .attrs
}

async fn refresh(
    p: &dyn Provider,
    ctx: &Ctx,
    desired: &Attrs,
    prior: Option<StateObject>,
) -> Option<LiveObject> {
    let resp = p
        .refresh(RefreshRequest {
            ctx: ctx.clone(),
            items: vec![RefreshItem {
                address: "file.x".into(),
                rtype: "file".into(),
                desired: Some(std::sync::Arc::new(desired.clone())),
                prior: prior.map(std::sync::Arc::new),
                recheck: false,
            }],
            find_orphans: true,
        })
        .await;
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    resp.live.get("file.x").cloned().flatten()
}

async fn diff(
    p: &dyn Provider,
    ctx: &Ctx,
    desired: &Attrs,
    live: &LiveObject,
    prior: Option<StateObject>,
) -> Vec<AttrChange> {
    p.diff(DiffRequest {
        ctx: ctx.clone(),
        address: "file.x".into(),
        rtype: "file".into(),
        desired: desired.clone(),
        live: std::sync::Arc::new(live.clone()),
        prior: prior.map(std::sync::Arc::new),
    })
    .await
    .changes
}

async fn apply(
    p: &dyn Provider,
    ctx: &Ctx,
    op: Op,
    desired: Option<&Attrs>,
    prior: Option<StateObject>,
) -> Result<Option<StateObject>, Diagnostic> {
    p.apply(ApplyRequest {
        ctx: ctx.clone(),
        address: "file.x".into(),
        rtype: "file".into(),
        op,
        desired: desired.cloned(),
        prior: prior.map(std::sync::Arc::new),
        live: None,
        changes: vec![],
    })
    .await
    .into_result()
    .map(|r| r.state)
}

#[tokio::test]
async fn create_noop_drift_converge_delete() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let raw = attrs(&[
        ("path", "sub/dir/config.json".into()),
        ("content", "{\n  \"a\": 1\n}\n".into()),
        ("mode", "640".into()),
    ]);
    let desired = prepare(p.as_ref(), &ctx, &raw);
    assert_eq!(desired["mode"], Value::from("0640"));
    let mut as_int = raw.clone();
    as_int.insert("mode".into(), Value::Int(0o640));
    assert_eq!(
        prepare(p.as_ref(), &ctx, &as_int)["mode"],
        Value::from("0640")
    );
    let shape = claw_host::file::resource_type().shape;
    assert!((shape.check)(&serde_json::json!({"path": "x", "content": "y", "mode": 416})).is_ok());
    assert!((shape.check)(&serde_json::json!({"path": "x", "content": {"env": "Y"}})).is_ok());
    assert!((shape.check)(&serde_json::json!({"path": "x", "contents": "y"})).is_err());
    assert!(refresh(p.as_ref(), &ctx, &desired, None).await.is_none());

    let state = apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
        .await
        .unwrap()
        .unwrap();
    let on_disk = dir.path().join("sub/dir/config.json");
    assert_eq!(
        std::fs::read_to_string(&on_disk).unwrap(),
        "{\n  \"a\": 1\n}\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o7777,
        0o640
    );

    let live = refresh(p.as_ref(), &ctx, &desired, Some(state.clone()))
        .await
        .unwrap();
    assert!(diff(p.as_ref(), &ctx, &desired, &live, Some(state.clone()))
        .await
        .is_empty());
    let fp1 = live.fingerprint.clone();

    // Drift: edited by hand and chmod'ed.
    std::fs::write(&on_disk, "{\n  \"a\": 2\n}\n").unwrap();
    std::fs::set_permissions(&on_disk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let live = refresh(p.as_ref(), &ctx, &desired, Some(state.clone()))
        .await
        .unwrap();
    assert_ne!(live.fingerprint, fp1);
    let changes = diff(p.as_ref(), &ctx, &desired, &live, Some(state.clone())).await;
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["content", "mode"]);
    assert_eq!(changes[0].before, Some(Value::from("{\n  \"a\": 2\n}\n")));
    assert_eq!(changes[0].after, Some(Value::from("{\n  \"a\": 1\n}\n")));
    assert!(!changes[0].replace);

    let state = apply(p.as_ref(), &ctx, Op::Update, Some(&desired), Some(state))
        .await
        .unwrap()
        .unwrap();
    let live = refresh(p.as_ref(), &ctx, &desired, Some(state.clone()))
        .await
        .unwrap();
    assert!(diff(p.as_ref(), &ctx, &desired, &live, Some(state.clone()))
        .await
        .is_empty());
    assert_eq!(live.fingerprint, fp1);

    apply(p.as_ref(), &ctx, Op::Delete, None, Some(state.clone()))
        .await
        .unwrap();
    assert!(!on_disk.exists());
    assert!(refresh(p.as_ref(), &ctx, &desired, Some(state))
        .await
        .is_none());
    // Create, update, delete and every refresh: no process at all.
    assert_eq!(p.counters(), vec![("local commands".to_string(), 0)]);
}

#[tokio::test]
async fn sensitive_content_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let raw = attrs(&[
        (
            "path",
            Value::from(dir.path().join("secret.env").to_string_lossy().into_owned()),
        ),
        ("content", "TOKEN=hunter2-very-secret\n".into()),
        ("sensitive", true.into()),
    ]);
    let desired = prepare(p.as_ref(), &ctx, &raw);
    assert!(desired["content"].as_secret().is_some());
    let state = apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
        .await
        .unwrap()
        .unwrap();
    let stored = serde_json::to_string(&state).unwrap();
    assert!(!stored.contains("hunter2"), "{stored}");
    std::fs::write(dir.path().join("secret.env"), "TOKEN=changed-by-hand\n").unwrap();
    let live = refresh(p.as_ref(), &ctx, &desired, Some(state.clone()))
        .await
        .unwrap();
    assert!(!format!("{live:?}").contains("changed-by-hand"));
    let changes = diff(p.as_ref(), &ctx, &desired, &live, Some(state)).await;
    assert_eq!(changes.len(), 1);
    assert!(changes[0].before.as_ref().unwrap().as_secret().is_some());
    assert!(changes[0].after.as_ref().unwrap().as_secret().is_some());
    assert!(!format!("{changes:?}").contains("hunter2"));
}

/// The `source` file is an input of the plan: its path as written and the
/// keyed digest of what was read (the engine compares it at apply).
#[test]
fn a_source_file_is_reported_as_an_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.txt"), "v2\n").unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let prepare = |pairs: &[(&str, Value)]| {
        let a = attrs(pairs);
        p.prepare(InstanceRequest {
            address: "file.x",
            rtype: "file",
            name: "x",
            key: None,
            attrs: &a,
            ctx: &ctx,
        })
    };
    let prepared = prepare(&[("path", "out.txt".into()), ("source", "src.txt".into())]);
    assert_eq!(
        prepared.inputs,
        vec![Input {
            path: "src.txt".into(),
            digest: ctx.digest(b"v2\n"),
        }]
    );
    assert!(prepared.inputs[0].digest.starts_with("hmac-sha256:"));
    // Inline content reads no file.
    let prepared = prepare(&[("path", "out.txt".into()), ("content", "x".into())]);
    assert!(prepared.inputs.is_empty());
    // A missing source is an error diagnostic naming the attribute.
    let prepared = prepare(&[("path", "out.txt".into()), ("source", "nope.txt".into())]);
    let err = prepared.error().expect("an error");
    assert_eq!(err.attr.as_deref(), Some("source"));
}

#[tokio::test]
async fn source_file_and_home_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.txt"), "from source\n").unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let raw = attrs(&[("path", "out.txt".into()), ("source", "src.txt".into())]);
    let desired = prepare(p.as_ref(), &ctx, &raw);
    assert_eq!(desired["content"], Value::from("from source\n"));
    apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "from source\n"
    );

    // `~/` is the user's home folder.
    if let Some(home) = std::env::var_os("HOME") {
        let name = format!("claw-host-test-{}.txt", std::process::id());
        let raw = attrs(&[
            ("path", Value::from(format!("~/{name}"))),
            ("content", "hi".into()),
        ]);
        let desired = prepare(p.as_ref(), &ctx, &raw);
        let st = apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
            .await
            .unwrap()
            .unwrap();
        let real = std::path::Path::new(&home).join(&name);
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "hi");
        assert_eq!(st.id, format!("~/{name}"));
        let live = refresh(p.as_ref(), &ctx, &desired, Some(st.clone()))
            .await
            .unwrap();
        assert_eq!(live.attrs["path"], Value::from(format!("~/{name}")));
        apply(p.as_ref(), &ctx, Op::Delete, None, Some(st))
            .await
            .unwrap();
        assert!(!real.exists());
    }
}

#[tokio::test]
async fn unwritable_target_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plainfile"), "x").unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    // A folder that would have to be created below a regular file: fails even as root.
    let raw = attrs(&[
        ("path", "plainfile/sub/x.txt".into()),
        ("content", "x".into()),
    ]);
    let desired = prepare(p.as_ref(), &ctx, &raw);
    let err = apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("file.x"), "{text}");
    assert!(text.contains("cannot write"), "{text}");
    assert!(text.contains("hint:"), "{text}");
}

#[tokio::test]
async fn validation_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let bad = attrs(&[
        ("path", "a".into()),
        ("content", "x".into()),
        ("source", "y".into()),
        ("mode", "0999".into()),
    ]);
    let diags = p
        .validate(InstanceRequest {
            address: "file.x",
            rtype: "file",
            name: "x",
            key: None,
            attrs: &bad,
            ctx: &ctx,
        })
        .diagnostics;
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert!(diags.iter().all(|d| d.hint.is_some()));

    let f = dir.path().join("existing.txt");
    std::fs::write(&f, "already here\n").unwrap();
    let id = f.to_string_lossy().into_owned();
    let st = p
        .import(ImportRequest {
            ctx: ctx.clone(),
            address: "file.x".into(),
            rtype: "file".into(),
            id: id.clone(),
            desired: None,
        })
        .await
        .into_state()
        .unwrap();
    assert_eq!(st.id, id);
    assert_eq!(st.attrs["content"], Value::from("already here\n"));
    let missing = p
        .import(ImportRequest {
            ctx,
            address: "file.x".into(),
            rtype: "file".into(),
            id: format!("{id}.nope"),
            desired: None,
        })
        .await
        .into_state()
        .unwrap_err();
    assert!(missing.hint.is_some());
}

#[test]
fn sessions_and_files_in_a_worktree_depend_on_it() {
    let p = provider();
    let item = |a: &str, t: &str, pairs: &[(&str, Value)]| DepItem {
        address: a.into(),
        rtype: t.into(),
        attrs: attrs(pairs),
    };
    let items = vec![
        item(
            "git_worktree.w",
            "git_worktree",
            &[("path", "~/s/agent-dev/".into())],
        ),
        item(
            "tmux_session.a",
            "tmux_session",
            &[("cwd", "~/s/agent-dev".into())],
        ),
        item(
            "tmux_session.b",
            "tmux_session",
            &[("cwd", "~/s/agent-dev-2".into())],
        ),
        item("file.in", "file", &[("path", "~/s/agent-dev/.env".into())]),
        item("file.out", "file", &[("path", "~/s/agent-dev".into())]),
    ];
    let mut deps = p.implicit_deps(ImplicitDepsRequest { items }).edges;
    deps.sort();
    assert_eq!(
        deps,
        vec![
            Edge::new("file.in", "git_worktree.w"),
            Edge::new("tmux_session.a", "git_worktree.w"),
        ]
    );
}

#[test]
fn host_configuration_is_checked() {
    let f = factory();
    let shape = f.config_shape();
    assert!((shape.check)(
        &serde_json::json!({"address": "mac:22", "host_key_policy": "accept-new"})
    )
    .is_ok());
    assert!((shape.check)(&serde_json::json!({"host_key_policy": "trust-me"})).is_err());
    assert!((shape.check)(&serde_json::json!({"adress": "x"})).is_err());
    let configure = |pairs: &[(&str, Value)]| {
        f.configure(ConfigureRequest {
            alias: "mac".into(),
            attrs: attrs(pairs),
            ctx: Ctx::for_tests("t", "/"),
        })
    };
    // Empty strings mean "not set": this machine.
    assert!(configure(&[("address", "".into()), ("user", "".into())]).is_ok());
    // configure does not connect, even to an address nothing listens on.
    assert!(configure(&[("address", "127.0.0.1:1".into())]).is_ok());
    let err = configure(&[("address", "mac:notaport".into())])
        .err()
        .unwrap();
    assert!(err.hint.is_some(), "{err}");
    let err = configure(&[("user", "dev".into())]).err().unwrap();
    assert!(err.to_string().contains("without an `address`"), "{err}");
}

#[test]
fn modes_are_validated_at_the_attribute() {
    let shape = claw_host::file::resource_type().shape;
    let with = |m: serde_json::Value| serde_json::json!({"path": "a", "content": "x", "mode": m});
    // `mode = 99999999999999999999` reaches the shape check as a (large)
    // number; the engine adds file:line:column to the attribute's path.
    for bad in [
        serde_json::json!(1e20),
        serde_json::json!(-1),
        serde_json::json!(0o10000),
        serde_json::json!(6.5),
        serde_json::json!("0999"),
        serde_json::json!("rw-r--r--"),
        serde_json::json!(true),
    ] {
        let e = (shape.check)(&with(bad.clone())).unwrap_err();
        assert_eq!(e.path, "mode", "{bad}");
        assert!(e.message.contains("file mode"), "{}", e.message);
        assert!(e.message.contains("0o7777"), "{}", e.message);
    }
    for good in [
        serde_json::json!("0644"),
        serde_json::json!(0o600),
        serde_json::json!("0o755"),
    ] {
        assert!((shape.check)(&with(good)).is_ok());
    }
    // Values that only exist after interpolation are checked by validate.
    let p = provider();
    let ctx = Ctx::for_tests("t", "/");
    for bad in [Value::Float(1e20), Value::Int(0o10000), Value::from("8")] {
        let a = attrs(&[("path", "a".into()), ("content", "x".into()), ("mode", bad)]);
        let d = p.validate(InstanceRequest {
            address: "file.x",
            rtype: "file",
            name: "x",
            key: None,
            attrs: &a,
            ctx: &ctx,
        });
        let d = d.diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].attr.as_deref(), Some("mode"));
        assert!(d[0].hint.is_some());
    }
}

#[tokio::test]
async fn digests_are_keyed_and_an_older_state_is_recorded_again() {
    use claw_provider::digest::{rehash_change, KEYED_PREFIX};
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::for_tests("t", dir.path());
    let p = provider();
    let raw = attrs(&[("path", "token".into()), ("content", ctx.secret("Zq7pXwK"))]);
    let desired = prepare(p.as_ref(), &ctx, &raw);
    assert_eq!(desired["mode"], Value::from("0600"), "private by default");
    let state = apply(p.as_ref(), &ctx, Op::Create, Some(&desired), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.private["digest"], Value::from(ctx.digest(b"Zq7pXwK")));
    let live = refresh(p.as_ref(), &ctx, &desired, Some(state.clone()))
        .await
        .unwrap();
    assert_eq!(live.fingerprint, format!("{}:0600", ctx.digest(b"Zq7pXwK")));
    assert!(live.fingerprint.starts_with(KEYED_PREFIX));
    // A state written by an older claw: a plain SHA-256 of the content.
    let mut old = state.clone();
    old.private.clear();
    old.private.insert(
        "sha256".into(),
        Value::from("aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44ee55ff66aa11bb22cc33dd44"),
    );
    let changes = diff(p.as_ref(), &ctx, &desired, &live, Some(old.clone())).await;
    assert_eq!(changes, vec![rehash_change()]);
    // The update records the entry again and leaves the file alone.
    let on_disk = dir.path().join("token");
    let before = std::fs::metadata(&on_disk).unwrap();
    let new = p
        .apply(ApplyRequest {
            ctx: ctx.clone(),
            address: "file.x".into(),
            rtype: "file".into(),
            op: Op::Update,
            desired: Some(desired.clone()),
            prior: Some(std::sync::Arc::new(old)),
            live: Some(std::sync::Arc::new(live.clone())),
            changes,
        })
        .await
        .into_result()
        .unwrap()
        .state
        .unwrap();
    let after = std::fs::metadata(&on_disk).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );
    assert!(!new.private.contains_key("sha256"));
    assert_eq!(new.private["digest"], state.private["digest"]);
    assert!(diff(p.as_ref(), &ctx, &desired, &live, Some(new))
        .await
        .is_empty());
}
