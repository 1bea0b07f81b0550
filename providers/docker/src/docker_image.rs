//! `docker_image`: build from a context folder (its keyed digest in a label;
//! `.dockerignore` applied, see [`crate::context`]) or pull; refresh from one
//! image list by reference.

use crate::apply::{labels, need, not_found_hint, refuse_unowned, state, target_id, Imported};
use crate::client::{api_error, is_not_found, status};
use crate::context;
use crate::diff::{address_change, cmp, prior_has, Rule};
use crate::refresh::{imported, item_name, label_filter, owner_of, Part, ATTR_ADDRESS};
use crate::util::{self, normalize_ref};
use crate::{DockerProvider, IMAGE, LABEL_CONTEXT_HASH};
use bollard::query_parameters::*;
use bollard::Docker;
use claw_provider::*;
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};

pub(crate) fn validate(a: &Attrs, err: &Rule<'_>, out: &mut Vec<Diagnostic>) {
    let build = a.get("build").is_some_and(|b| !matches!(b, Value::Null));
    let pull = a.get("pull").and_then(Value::as_bool) == Some(true);
    if build == pull {
        out.push(
            err(
                if build { "pull" } else { "build" },
                "a docker_image needs exactly one of `build = { context = ... }` or `pull = true`".into(),
            )
            .with_hint("build it from a folder with `build`, or fetch it from its registry with `pull = true`"),
        );
    }
    if let Some(n) = util::s(a, "name") {
        if n.is_empty() || n.contains(char::is_whitespace) {
            out.push(err(
                "name",
                format!("`{n}` is not an image reference (repo:tag)"),
            ));
        }
    }
}

/// Digests the build context (reported as an input) into `context_hash`.
pub(crate) fn prepare(
    req: &InstanceRequest<'_>,
    a: &mut Attrs,
    inputs: &mut Vec<Input>,
) -> Result<(), Diagnostic> {
    if let Some(ctxdir) = a
        .get("build")
        .and_then(|b| b.get_path("context"))
        .and_then(Value::as_str)
    {
        let dir = req.ctx.base_dir.join(ctxdir);
        let dockerfile = a
            .get("build")
            .and_then(|b| b.get_path("dockerfile"))
            .and_then(Value::as_str)
            .unwrap_or("Dockerfile");
        let hash = context::hash(&dir, dockerfile, req.ctx).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::InvalidData {
                "fix the pattern in .dockerignore (Docker's syntax: `*`, `**`, `?`, `[...]`, `!` for an exception)"
            } else {
                "`build.context` is a folder relative to claw.toml holding the Dockerfile"
            };
            Diagnostic::error(format!(
                "cannot read the build context {}: {e}",
                dir.display()
            ))
            .with_address(req.address)
            .with_attr("build.context")
            .with_hint(hint)
        })?;
        if !dir.join(dockerfile).is_file() {
            return Err(Diagnostic::error(format!(
                "no Dockerfile `{dockerfile}` in the build context {}",
                dir.display()
            ))
            .with_address(req.address)
            .with_attr("build.dockerfile")
            .with_hint("set `build.dockerfile` to the Dockerfile's path inside the context"));
        }
        inputs.push(Input {
            path: ctxdir.to_string(),
            digest: hash.clone(),
        });
        a.insert("context_hash".into(), Value::String(hash));
    }
    Ok(())
}

pub(crate) fn diff(req: &DiffRequest, out: &mut Vec<AttrChange>) -> Option<String> {
    let d = &req.desired;
    let l = &req.live.attrs;
    let prior = req.prior.as_ref().map(|p| &p.attrs);
    cmp(out, "name", d.get("name"), l.get("name"), false, true);
    for k in ["context_hash", "build", "pull"] {
        cmp(out, k, d.get(k), l.get(k), prior_has(prior, k), false);
    }
    address_change(out, l, &req.address);
    None
}

pub(crate) async fn refresh(
    p: &DockerProvider,
    docker: &Docker,
    ctx: &Ctx,
    items: &[&RefreshItem],
    containers: &[&RefreshItem],
    addresses: &BTreeSet<&str>,
    find_orphans: bool,
) -> Result<Part, Diagnostic> {
    let mut part = Part::default();
    // Every reference this run cares about: image names and container images.
    let mut refs: BTreeSet<String> = items.iter().filter_map(|i| item_name(i)).collect();
    for c in containers {
        if let Some(img) = c.desired.as_ref().and_then(|d| util::s(d, "image")) {
            if !img.starts_with("sha256:") {
                refs.insert(img.to_string());
            }
        }
    }
    let labelled = if find_orphans || !items.is_empty() {
        p.client.count(1);
        docker
            .list_images(Some(ListImagesOptions {
                // Tagged ones only: older builds left dangling are pruned by apply.
                filters: Some({
                    let mut f = label_filter(ctx);
                    f.insert("dangling".into(), vec!["false".into()]);
                    f
                }),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_error("list images", &e))?
    } else {
        Vec::new()
    };
    let by_ref = if refs.is_empty() {
        Vec::new()
    } else {
        p.client.count(1);
        docker
            .list_images(Some(ListImagesOptions {
                filters: Some(HashMap::from([(
                    "reference".to_string(),
                    refs.iter().cloned().collect(),
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_error("list images", &e))?
    };
    let mut tags: HashMap<String, bollard::models::ImageSummary> = HashMap::new();
    for img in labelled.iter().chain(by_ref.iter()) {
        for t in &img.repo_tags {
            tags.insert(normalize_ref(t), img.clone());
        }
    }
    let mut knowledge = crate::ImageKnowledge::default();
    for r in &refs {
        if let Some(img) = tags.get(&normalize_ref(r)) {
            knowledge.ids.insert(normalize_ref(r), img.id.clone());
        }
    }
    let mut claimed = BTreeSet::new();
    for item in items {
        let Some(name) = item_name(item) else {
            continue;
        };
        let key = normalize_ref(&name);
        let Some(img) = tags.get(&key) else {
            knowledge.pending.insert(key);
            part.live.insert(item.address.clone(), None);
            continue;
        };
        claimed.insert(img.id.clone());
        let built = item
            .desired
            .as_deref()
            .or(item.prior.as_ref().map(|p| &p.attrs))
            .is_some_and(|a| a.contains_key("build"));
        let owner = if imported(item, &img.id) {
            Owner::Stack
        } else {
            match owner_of(&img.labels, ctx, IMAGE) {
                // Pulled images cannot carry labels: the state owns them.
                Owner::Unmanaged if !built => Owner::NotApplicable,
                // The tag claw built was moved to an image made by hand: the
                // tag is this stack's (by state); the next apply builds it again.
                Owner::Unmanaged if item.prior.is_some() => Owner::NotApplicable,
                o => o,
            }
        };
        let mut attrs = Attrs::new();
        let prior_same = item.prior.as_ref().filter(|pr| pr.id == img.id);
        if let Some(pr) = prior_same {
            attrs = pr.attrs.clone();
        } else if let Some(d) = &item.desired {
            // Not built by this state: what claw can't read back is taken as configured.
            for k in ["build", "pull"] {
                if let Some(v) = d.get(k) {
                    attrs.insert(k.into(), v.clone());
                }
            }
        }
        attrs.insert("name".into(), Value::String(name.clone()));
        attrs.insert("id".into(), Value::String(img.id.clone()));
        match img.labels.get(LABEL_CONTEXT_HASH) {
            Some(h) => attrs.insert("context_hash".into(), Value::String(h.clone())),
            None => attrs.remove("context_hash"),
        };
        if owner == Owner::Stack && !imported(item, &img.id) {
            let addr = img.labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addr != item.address {
                attrs.insert(ATTR_ADDRESS.into(), Value::String(addr));
            }
        }
        // Will this run build it again? Then containers on it get a new image.
        if let Some(d) = &item.desired {
            let changed = ["context_hash", "build", "pull"]
                .iter()
                .any(|k| d.get(*k).is_some() && d.get(*k) != attrs.get(*k));
            if changed {
                knowledge.pending.insert(key.clone());
            }
        }
        part.live.insert(
            item.address.clone(),
            Some(LiveObject {
                id: img.id.clone(),
                attrs,
                fingerprint: img.id.clone(),
                owner,
            }),
        );
    }
    if find_orphans {
        for img in &labelled {
            let addr = img.labels.get(LABEL_ADDRESS).cloned().unwrap_or_default();
            if addresses.contains(addr.as_str()) || claimed.contains(&img.id) {
                continue;
            }
            let mut attrs = Attrs::new();
            attrs.insert("id".into(), Value::String(img.id.clone()));
            if let Some(t) = img.repo_tags.first() {
                attrs.insert("name".into(), Value::String(t.clone()));
            }
            part.orphans.push(Orphan {
                address: if addr.is_empty() {
                    format!("{IMAGE}.{}", img.id)
                } else {
                    addr
                },
                rtype: IMAGE.into(),
                live: LiveObject {
                    id: img.id.clone(),
                    attrs,
                    fingerprint: img.id.clone(),
                    owner: Owner::Stack,
                },
            });
        }
    }
    *p.images.lock().unwrap_or_else(|e| e.into_inner()) = knowledge;
    Ok(part)
}

pub(crate) async fn build_or_pull(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let d = need(&req.desired, "build")?;
    let name = util::s(d, "name").unwrap_or_default().to_string();
    let progress = |msg: &str| req.ctx.progress.report(&req.address, msg);
    if let Some(build) = d.get("build").filter(|b| !matches!(b, Value::Null)) {
        let ctxdir = build
            .get_path("context")
            .and_then(Value::as_str)
            .unwrap_or(".");
        let dir = req.ctx.base_dir.join(ctxdir);
        let dockerfile = build
            .get_path("dockerfile")
            .and_then(Value::as_str)
            .unwrap_or("Dockerfile")
            .to_string();
        let tar = tokio::task::spawn_blocking({
            let dir = dir.clone();
            let dockerfile = dockerfile.clone();
            move || context::tar(&dir, &dockerfile)
        })
        .await
        .map_err(|e| Diagnostic::error(format!("packing the build context failed: {e}")))?
        .map_err(|e| {
            Diagnostic::error(format!(
                "cannot pack the build context {}: {e}",
                dir.display()
            ))
            .with_attr("build.context")
        })?;
        progress(&format!("sending build context ({} KiB)", tar.len() / 1024));
        let mut lbls = labels(&req.ctx, &req.address, &Attrs::new())?;
        if let Some(h) = util::s(d, "context_hash") {
            lbls.insert(LABEL_CONTEXT_HASH.into(), h.to_string());
        }
        let args: HashMap<String, String> = util::str_map_exposed(build.get_path("args"))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let opts = BuildImageOptions {
            dockerfile,
            t: Some(name.clone()),
            rm: true,
            forcerm: true,
            buildargs: (!args.is_empty()).then_some(args),
            labels: Some(lbls),
            target: build
                .get_path("target")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            ..Default::default()
        };
        p.client.count(1);
        let mut stream = docker.build_image(opts, None, Some(bollard::body_full(tar.into())));
        let mut last_lines: Vec<String> = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(err) = info.error_detail.and_then(|e| e.message) {
                        return Err(build_failed(&name, &err, &last_lines));
                    }
                    if let Some(line) = info
                        .stream
                        .as_deref()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                    {
                        progress(line);
                        last_lines.push(line.to_string());
                        if last_lines.len() > 10 {
                            last_lines.remove(0);
                        }
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_failed(&name, &error, &last_lines))
                }
                Err(e) => return Err(api_error(&format!("build image {name}"), &e)),
            }
        }
    } else {
        let (repo, tag) = split_tag(&name);
        p.client.count(1);
        let mut stream = docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.status {
                        progress(&format!("{}{}", info.id.map(|i| format!("{i}: ")).unwrap_or_default(), s));
                    }
                }
                Err(e) => {
                    return Err(api_error(&format!("pull image {name}"), &e).with_hint(
                        "check the image name and that the registry is reachable (`docker pull` with the same name)",
                    ))
                }
            }
        }
    }
    p.client.count(1);
    let img = docker
        .inspect_image(&name)
        .await
        .map_err(|e| api_error(&format!("inspect image {name}"), &e))?;
    let id = img.id.unwrap_or_default();
    progress(&format!("image {name} is {}", short(&id)));
    prune_old_builds(p, docker, req).await;
    Ok(state(&id, d, Attrs::new()))
}

pub(crate) fn short(id: &str) -> &str {
    let s = id.strip_prefix("sha256:").unwrap_or(id);
    &s[..s.len().min(12)]
}

pub(crate) fn build_failed(name: &str, err: &str, last: &[String]) -> Diagnostic {
    let mut d = Diagnostic::error(format!("building image {name} failed: {}", err.trim()));
    if !last.is_empty() {
        d = d.with_detail(last.join("\n"));
    }
    d.with_hint("fix the Dockerfile or the build context; `docker build` on the context shows the same error")
}

/// `repo:tag` → (`repo`, `tag`), with `latest` by default (a registry port is not a tag).
pub(crate) fn split_tag(name: &str) -> (&str, &str) {
    if let Some((repo, digest)) = name.split_once('@') {
        return (repo, digest);
    }
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// Removes earlier builds of this address that no tag points to any more
/// (dangling, labelled for this stack and address), when nothing uses them.
pub(crate) async fn prune_old_builds(p: &DockerProvider, docker: &Docker, req: &ApplyRequest) {
    let filters = HashMap::from([
        (
            "label".to_string(),
            vec![
                format!("{}={}", claw_provider::LABEL_STACK, req.ctx.stack),
                format!("{}={}", claw_provider::LABEL_ADDRESS, req.address),
            ],
        ),
        ("dangling".to_string(), vec!["true".to_string()]),
    ]);
    p.client.count(1);
    let Ok(old) = docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        }))
        .await
    else {
        return;
    };
    for img in old {
        p.client.count(1);
        // In use by a container (replaced later in this run): left for the next build.
        let _ = docker
            .remove_image(&img.id, Some(RemoveImageOptions::default()), None)
            .await;
    }
}

pub(crate) async fn delete(
    p: &DockerProvider,
    docker: &Docker,
    req: &ApplyRequest,
) -> Result<ApplyResponse, Diagnostic> {
    refuse_unowned(req)?;
    let name = req
        .prior
        .as_ref()
        .and_then(|p| util::s(&p.attrs, "name").map(str::to_string))
        .or_else(|| {
            req.live
                .as_ref()
                .and_then(|l| util::s(&l.attrs, "name").map(str::to_string))
        })
        .or_else(|| target_id(req));
    let Some(mut name) = name else {
        return Ok(ApplyResponse::default());
    };
    // A built image whose tag now points to an image made by hand: remove
    // only claw's own image (by id), never the one behind the tag.
    let built = req.prior.as_ref().is_some_and(|p| {
        p.attrs
            .get("build")
            .is_some_and(|b| !matches!(b, Value::Null))
    });
    if built
        && req
            .live
            .as_ref()
            .is_some_and(|l| l.owner == Owner::NotApplicable)
    {
        match req
            .prior
            .as_ref()
            .map(|p| p.id.clone())
            .filter(|i| !i.is_empty())
        {
            Some(id) => name = id,
            None => return Ok(ApplyResponse::default()),
        }
    }
    p.client.count(1);
    let r = docker
        .remove_image(
            &name,
            Some(RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            }),
            None,
        )
        .await;
    if r.is_ok() || r.as_ref().is_err_and(is_not_found) {
        prune_old_builds(p, docker, req).await;
    }
    match r {
        Ok(_) => Ok(ApplyResponse::default()),
        Err(e) if is_not_found(&e) => Ok(ApplyResponse::default()),
        Err(e) if status(&e) == Some(409) && name.starts_with("sha256:") => Ok(ApplyResponse {
            state: None,
            diagnostics: vec![Diagnostic::warning(format!(
                "left image {name} in place: {}",
                api_error("remove it", &e).summary
            ))],
        }),
        Err(e) => Err(api_error(&format!("remove image {name}"), &e)),
    }
}

pub(crate) async fn import(
    p: &DockerProvider,
    docker: &Docker,
    req: &ImportRequest,
) -> Result<Imported, Diagnostic> {
    p.client.count(1);
    let i = docker
        .inspect_image(&req.id)
        .await
        .map_err(|e| not_found_hint(api_error(&format!("inspect image {}", req.id), &e), req))?;
    let labels = i
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let mut a = Attrs::new();
    let name = req
        .desired
        .as_ref()
        .and_then(|d| util::s(d, "name").map(str::to_string))
        .or_else(|| i.repo_tags.as_ref().and_then(|t| t.first().cloned()))
        .unwrap_or_else(|| req.id.clone());
    a.insert("name".into(), Value::String(name));
    if let Some(h) = labels.get(LABEL_CONTEXT_HASH) {
        a.insert("context_hash".into(), Value::String(h.clone()));
    }
    if let Some(d) = &req.desired {
        for k in ["build", "pull"] {
            if let Some(v) = d.get(k) {
                a.insert(k.into(), v.clone());
            }
        }
    }
    Ok((i.id.unwrap_or_default(), labels, a, Attrs::new()))
}
