//! Planning: each address's desired value against its live object and state,
//! through `decide`, into the plan document.

use super::*;
use crate::plan::Reason;

impl Workspace {
    /// Makes the plan from refreshed live state.
    pub async fn plan(
        &self,
        state: &State,
        observed: &BTreeMap<String, Observed>,
        opts: &Options,
    ) -> Result<Plan> {
        self.plan_reusing(state, observed, opts, Refreshed::default())
            .await
    }

    /// [`Workspace::plan`], reusing what the refresh of `state` made (see
    /// [`Refreshed`]).
    pub async fn plan_reusing(
        &self,
        state: &State,
        observed: &BTreeMap<String, Observed>,
        opts: &Options,
        mut refreshed: Refreshed<'_>,
    ) -> Result<Plan> {
        // `[[moved]]` renames state entries before anything is compared.
        let moved = self.with_moves(state)?;
        let state = &moved.state;
        let selected = self.select_targets(&opts.targets, state, opts.destroy)?;
        let replace = self.replace_set(&opts.replace, opts.destroy)?;
        let in_sel = |a: &str| selected.as_ref().is_none_or(|s| s.contains(a));
        let ctx = self.ctx();
        let mut changes: Vec<Change> = Vec::new();
        let mut unchanged = 0usize;
        let mut errs = Vec::new();
        // Planned "after" attributes and actions, for resolving references.
        let mut after: BTreeMap<String, (Action, Attrs)> = BTreeMap::new();
        // Every file read while planning, by input name, with its keyed digest.
        let mut files: BTreeMap<String, String> = BTreeMap::new();

        if !opts.destroy {
            for addr in self.graph.order() {
                // Checks are graph nodes too; they are not planned.
                let Some(n) = self.nodes.get(addr) else {
                    continue;
                };
                let addr = addr.to_string();
                let computed: &[&str] = self
                    .reg
                    .resource_type(&n.inst.rtype)
                    .map(|(_, t)| t.computed)
                    .unwrap_or(&[]);
                let sources = resolve::Sources {
                    after: Some(&after),
                    state: Some(state),
                    observed: Some(observed),
                };
                let lookup = |r: &template::ResRef| -> Value { sources.value(r) };
                let kept = refreshed
                    .desired
                    .remove(addr.as_str())
                    .filter(|_| self.resolves_alike(n, state, &sources));
                let made = match kept {
                    Some((d, inputs)) => Ok((Arc::unwrap_or_clone(d), inputs)),
                    None => self.desired_with_inputs(&addr, &lookup),
                };
                let (desired, read) = match made {
                    Ok(d) => d,
                    Err(d) => {
                        errs.push(self.diag_problem(&d, &addr));
                        continue;
                    }
                };
                for i in &read {
                    files.insert(format!("file:{}", i.path), i.digest.clone());
                }
                let prior = state.resources.get(&addr);
                let live = observed.get(&addr).and_then(|o| o.live.as_ref());
                // ignore_changes: those paths keep their live value, in the
                // plan's `after` and therefore in what apply sends.
                let mut desired = desired;
                if let Some(l) = live {
                    contract::merge_ignored(&mut desired, &l.attrs, &n.lifecycle.ignore_changes);
                }
                let mut diff = Vec::new();
                let mut note = None;
                if let Some(l) = live {
                    if matches!(l.owner, Owner::Stack | Owner::NotApplicable) {
                        let resp = self.providers[&n.inst.provider_key]
                            .diff(DiffRequest {
                                ctx: ctx.clone(),
                                address: addr.clone(),
                                rtype: n.inst.rtype.clone(),
                                desired: desired.clone(),
                                live: l.clone(),
                                prior: prior.map(|e| e.object()),
                            })
                            .await;
                        for d in &resp.diagnostics {
                            if d.is_error() {
                                errs.push(self.diag_problem(d, &addr));
                            } else {
                                self.events.note(&Problem::from_diag(d, None).to_string());
                            }
                        }
                        diff = plan::apply_ignore(resp.changes, &n.lifecycle.ignore_changes);
                        note = resp.replace_note;
                    }
                }
                let drifted: Vec<String> = diff
                    .iter()
                    .filter(|c| {
                        let want = resolve::get_in(&desired, &c.path);
                        let was = prior.and_then(|p| resolve::get_in(&p.attrs, &c.path));
                        want.is_some() && want == was
                    })
                    .map(|c| c.path.clone())
                    .collect();
                let mut lifecycle_changed = Vec::new();
                if prior.is_some_and(|p| p.prevent_destroy != n.lifecycle.prevent_destroy) {
                    lifecycle_changed.push("prevent_destroy".to_string());
                }
                let decided = plan::decide(&DecideInput {
                    in_config: true,
                    destroy_mode: false,
                    // In flight when a run died: this stack's (apply records it first).
                    in_state: prior.is_some() || state.in_flight.contains_key(&addr),
                    live: live.map(|l| &l.owner),
                    changes: &diff,
                    drifted: &drifted,
                    prevent_destroy: n.lifecycle.prevent_destroy,
                    create_before_destroy: n.lifecycle.create_before_destroy,
                    replace_note: note.as_deref(),
                    lifecycle_changed: &lifecycle_changed,
                    force_replace: match replace.contains(&addr) {
                        true => Some(plan::Reason::Requested),
                        false => self.triggered(n, &after, state, observed),
                    },
                });
                let (action, reason) = match decided {
                    Ok((action, reason)) => (action, self.rollout(n, &after, &diff, reason)),
                    Err(r) => {
                        errs.push(self.refusal(&addr, r, live.map(|l| &**l)));
                        continue;
                    }
                };
                let moved_from = moved.from.get(&addr).cloned();
                let (action, reason) = match (&moved_from, action) {
                    (Some(f), Action::NoOp) => (Action::Move, Reason::Moved { from: f.clone() }),
                    _ => (action, reason),
                };
                // The after-value for references: desired, with computed attrs from live when kept
                // (desired itself moved when no change shows it).
                let shown = in_sel(&addr) && action != Action::NoOp;
                let mut aft = match shown {
                    true => desired.clone(),
                    false => std::mem::take(&mut desired),
                };
                match action {
                    Action::NoOp
                    | Action::Update
                    | Action::Adopt
                    | Action::StateOnly
                    | Action::Move => {
                        if let Some(l) = live {
                            for (k, v) in &l.attrs {
                                aft.entry(k.clone()).or_insert(v.clone());
                            }
                        }
                    }
                    _ => {
                        for c in computed {
                            aft.insert(c.to_string(), Value::Unknown);
                        }
                        aft.insert("id".into(), Value::Unknown);
                    }
                }
                after.insert(addr.clone(), (action, aft));
                if !in_sel(&addr) {
                    continue;
                }
                if action == Action::NoOp {
                    unchanged += 1;
                    continue;
                }
                let shown = if action == Action::Create {
                    desired
                        .iter()
                        .filter(|(_, v)| !matches!(v, Value::Null))
                        .map(|(k, v)| {
                            AttrChange::new(
                                claw_provider::value::join_key("", k),
                                None,
                                Some(v.clone()),
                            )
                        })
                        .collect()
                } else {
                    diff.clone()
                };
                let mut sensitive = Vec::new();
                collect_sensitive("", &Value::Map(desired.clone()), &mut sensitive);
                changes.push(Change {
                    address: addr.clone(),
                    rtype: n.inst.rtype.clone(),
                    provider: n.inst.provider_key.clone(),
                    action,
                    reason,
                    id: live.map(|l| l.id.clone()),
                    before: live.map(|l| {
                        Value::Map(
                            l.attrs
                                .iter()
                                .filter(|(k, _)| desired.contains_key(*k))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        )
                    }),
                    after: Some(Value::Map(desired)),
                    diff: shown,
                    sensitive_paths: sensitive,
                    fingerprint: live.map(|l| fingerprint(l)).unwrap_or_default(),
                    moved_from,
                    inputs: read.iter().map(|i| format!("file:{}", i.path)).collect(),
                    after_addresses: n.deps.iter().cloned().collect(),
                });
            }
        }

        crate::util::timing::phase("plan: changes");
        if !opts.destroy {
            let dups = self.duplicate_objects(&after, state);
            if !dups.is_empty() {
                return Err(Error::many(dups));
            }
        }
        crate::util::timing::phase("plan: one object, one address");
        // Deletes: state entries not in config (all of them in destroy mode), and orphans.
        let mut gone: BTreeSet<String> = state.resources.keys().cloned().collect();
        gone.extend(
            observed
                .iter()
                .filter(|(_, o)| o.orphan_type.is_some())
                .map(|(a, _)| a.clone()),
        );
        for addr in gone {
            if (!opts.destroy && self.nodes.contains_key(&addr)) || !in_sel(&addr) {
                continue;
            }
            let entry = state.resources.get(&addr);
            let obs = observed.get(&addr).cloned().unwrap_or_default();
            // The configuration's lifecycle wins over the state's record.
            let prevent_destroy = match self.nodes.get(&addr) {
                Some(n) => n.lifecycle.prevent_destroy,
                None => entry.map(|e| e.prevent_destroy).unwrap_or(false),
            };
            let decided = plan::decide(&DecideInput {
                in_config: false,
                destroy_mode: opts.destroy,
                in_state: entry.is_some(),
                live: obs.live.as_ref().map(|l| &l.owner),
                prevent_destroy,
                ..Default::default()
            });
            let (action, reason) = match decided {
                Ok(x) => x,
                Err(r) => {
                    errs.push(self.refusal(&addr, r, obs.live.as_deref()));
                    continue;
                }
            };
            if action == Action::NoOp {
                continue;
            }
            let (rtype, provider) = match entry {
                Some(e) => (e.rtype.clone(), e.provider.clone()),
                None => {
                    let t = obs.orphan_type.clone().unwrap_or_default();
                    let p = self.orphan_provider(&t);
                    (t, p)
                }
            };
            changes.push(Change {
                address: addr.clone(),
                rtype,
                provider,
                action,
                reason,
                id: obs
                    .live
                    .as_ref()
                    .map(|l| l.id.clone())
                    .or(entry.map(|e| e.id.clone())),
                before: None,
                after: None,
                diff: vec![],
                sensitive_paths: vec![],
                fingerprint: obs.live.as_deref().map(fingerprint).unwrap_or_default(),
                moved_from: moved.from.get(&addr).cloned(),
                inputs: vec![],
                after_addresses: entry.map(|e| e.deps.clone()).unwrap_or_default(),
            });
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        changes.sort_by(|a, b| a.address.cmp(&b.address));
        let sources = resolve::Sources {
            after: Some(&after),
            state: Some(state),
            observed: Some(observed),
        };
        let outputs =
            self.plan_outputs(state, &sources, opts.destroy && opts.targets.is_empty())?;
        let summary = Plan::summarize(&changes, unchanged);
        Ok(Plan {
            format_version: plan::FORMAT_VERSION,
            stack: self.cfg.stack.clone(),
            config_hash: self.config_hash(),
            state_lineage: state.lineage.clone(),
            state_serial: state.serial,
            inputs: {
                let mut m = self.inputs();
                m.extend(files);
                m
            },
            destroy: opts.destroy,
            targets: opts.targets.clone(),
            replace: opts.replace.clone(),
            changes,
            outputs,
            checks: self.planned_checks(selected.as_ref(), opts.destroy),
            summary,
        })
    }

    /// Whether every reference of `n` resolves the same against the state
    /// alone (as refresh resolved it) and against `planned`, with no secret
    /// on either side.
    fn resolves_alike(&self, n: &Node, state: &State, planned: &resolve::Sources) -> bool {
        let at_refresh = resolve::Sources {
            state: Some(state),
            ..Default::default()
        };
        config::body_refs(&n.inst.body).into_iter().all(|r| {
            let was = at_refresh.value(r);
            !was.contains_secret() && planned.value(r) == was
        })
    }

    fn orphan_provider(&self, rtype: &str) -> String {
        let kind = self.reg.resource_type(rtype).map(|(k, _)| k).unwrap_or("");
        self.providers
            .keys()
            .find(|k| {
                self.cfg.blocks.get(*k).is_some_and(|b| b.kind == kind)
                    || k.as_str() == format!("provider.{kind}")
            })
            .cloned()
            .unwrap_or_default()
    }

    fn refusal(&self, addr: &str, r: Refusal, live: Option<&LiveObject>) -> Problem {
        let id = live.map(|l| l.id.clone()).unwrap_or_default();
        let base = match r {
            Refusal::Unmanaged { other_stack: None } => Diagnostic::error(format!(
                "{addr}: an object `{id}` already exists and is not managed by this stack (it lacks this stack's ownership labels or markers); claw will not touch it"
            ))
            .with_hint(format!("adopt it with `claw import {addr} {id}`, or rename the resource")),
            Refusal::Unmanaged { other_stack: Some(s) } => Diagnostic::error(format!(
                "{addr}: the object `{id}` belongs to stack `{s}`; claw will not touch it"
            ))
            .with_hint("give this resource another name, or manage it from that stack"),
            Refusal::NotOwned => Diagnostic::error(format!(
                "{addr}: `{id}` already exists with other content, and claw does not own it (it is not in the state)"
            ))
            .with_hint(format!("adopt it with `claw import {addr} {id}`, move it away, or point the resource elsewhere")),
            Refusal::PreventDestroy { action } => Diagnostic::error(format!(
                "{addr}: lifecycle.prevent_destroy forbids this {} ",
                if action == Action::Delete { "delete" } else { "replace" }
            ).trim_end().to_string())
            .with_hint("set prevent_destroy = false in the resource's lifecycle to allow it"),
        };
        self.diag_problem(&base, addr)
    }

    /// The inputs that shape the plan, by name, each with its keyed digest
    /// (HMAC with the state's salt): the configuration text and each var.
    pub fn inputs(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let file = self
            .cfg
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "claw.toml".into());
        m.insert(file, self.digest(self.cfg.src.as_bytes()));
        for (k, v) in &self.cfg.vars {
            let j = serde_json::to_string(&v.to_json()).unwrap_or_default();
            m.insert(format!("var.{k}"), self.digest(j.as_bytes()));
        }
        m
    }

    /// The keyed digest (HMAC with the state's salt) of `data`.
    pub fn digest(&self, data: &[u8]) -> String {
        claw_provider::digest::keyed_digest(&self.salt, data)
    }

    /// A keyed hash of the configuration and every resolved input (vars,
    /// secret hashes).
    pub fn config_hash(&self) -> String {
        // The text hashed: the source, NUL, the vars as JSON, then per
        // node NUL, its address and its provisional attributes as JSON.
        // Those are made over the cores, a part per chunk of nodes, and
        // fed to the digest in order (the same bytes as one string).
        let vars = serde_json::to_string(
            &self
                .cfg
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap_or_default();
        let nodes: Vec<(&String, &Node)> = self.nodes.iter().map(|(a, n)| (a, &**n)).collect();
        let parts = claw_provider::par::in_chunks(&nodes, claw_provider::par::cores(), 2048, |c| {
            let mut part = Vec::new();
            for (a, n) in c {
                part.push(0u8);
                part.extend_from_slice(a.as_bytes());
                // Value serializes as its to_json() document, without building it.
                let _ = serde_json::to_writer(&mut part, &provisional_attrs(&n.inst, &self.salt));
            }
            vec![part]
        });
        claw_provider::digest::keyed_digest_of_parts(
            &self.salt,
            [self.cfg.src.as_bytes(), b"\0", vars.as_bytes()]
                .into_iter()
                .chain(parts.iter().map(Vec::as_slice)),
        )
    }
}
