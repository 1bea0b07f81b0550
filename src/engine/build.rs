//! Building the workspace: provider blocks configured, instances expanded
//! and validated, references and `depends_on` checked, the graph made.

use super::*;
impl Workspace {
    /// Evaluates `cfg` with `salt`: provider blocks, instances (for_each and
    /// expansion), prepared attributes, references and the graph.
    pub fn build(
        cfg: Config,
        reg: Registry,
        salt: &str,
        state: Option<&State>,
        events: Arc<dyn Events>,
        verbose: bool,
    ) -> Result<Workspace> {
        let ctx = ctx_for(&cfg, salt, &events, verbose);
        // Commands without a state (validate, graph) need no secret values.
        let eval = match state {
            Some(_) => config::Eval::Live,
            None => config::Eval::Validate,
        };
        let mut instances = cfg.instances(&reg, salt, eval)?;
        crate::util::timing::phase("build: instances");

        // Provider blocks in use (by config or by state).
        let mut keys: BTreeSet<String> = instances.iter().map(|i| i.provider_key.clone()).collect();
        // Hosts that run a check's command.
        keys.extend(
            cfg.checks
                .iter()
                .filter(|c| c.probe == config::checks::Probe::Command)
                .map(|c| c.host_key.clone()),
        );
        if let Some(st) = state {
            for (addr, e) in &st.resources {
                if !keys.contains(&e.provider)
                    && !cfg.blocks.contains_key(&e.provider)
                    && !is_implicit(&e.provider, &e.rtype, &reg)
                {
                    return Err(Error::one(
                        Problem::new(format!(
                            "{addr} in the state is managed by [{}], which is no longer in claw.toml",
                            e.provider
                        ))
                        .hint(format!("restore the [{}] block until it is destroyed, or drop it from the state with `claw state rm {addr}`", e.provider)),
                    ));
                }
                keys.insert(e.provider.clone());
            }
        }
        let mut providers = BTreeMap::new();
        let mut errs = Vec::new();
        for key in &keys {
            let (kind, alias) = match cfg.blocks.get(key) {
                Some(b) => (b.kind.clone(), b.alias.clone()),
                None => {
                    let alias = key
                        .split_once('.')
                        .map(|(_, a)| a)
                        .unwrap_or(key)
                        .to_string();
                    (alias.clone(), alias)
                }
            };
            let Some(f) = reg.factory(&kind) else {
                errs.push(Problem::new(format!(
                    "no provider of type `{kind}` is built into this claw"
                )));
                continue;
            };
            let attrs = match cfg.block_attrs(key, salt, eval) {
                Ok(a) => a,
                Err(e) => {
                    errs.extend(e.problems);
                    continue;
                }
            };
            match f.configure(ConfigureRequest {
                alias,
                attrs,
                ctx: ctx.clone(),
            }) {
                Ok(p) => {
                    providers.insert(key.clone(), p);
                }
                Err(d) => {
                    let span = cfg
                        .blocks
                        .get(key)
                        .and_then(|b| b.node.as_ref())
                        .map(|n| n.span.clone());
                    let loc = span.and_then(|s| cfg.loc(&s));
                    errs.push(Problem::from_diag(&d, loc));
                }
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }

        // Expansion (k8s_manifest documents) and validation. Each instance's
        // provisional attributes (references unknown) are computed once and
        // kept beside it: validate, expand, the attribute-name check of
        // references and implicit_deps all read them.
        // Files read by expansions (manifests), per expanded address.
        let mut expand_inputs: BTreeMap<String, Vec<Input>> = BTreeMap::new();
        let mut expanded: Vec<(Instance, Attrs)> = Vec::with_capacity(instances.len());
        for inst in instances.drain(..) {
            let p = &providers[&inst.provider_key];
            let provisional = provisional_attrs(&inst, salt);
            let req = instance_request(&inst, &provisional, &ctx);
            let node_span = || cfg.resource(&inst).node.span.clone();
            for d in p.validate(req).diagnostics {
                let span = d
                    .attr
                    .as_deref()
                    .map(|a| cfg.resource(&inst).node.locate(a))
                    .unwrap_or_else(node_span);
                let d = d.with_address(inst.addr.clone());
                errs.push(Problem::from_diag(&d, cfg.loc(&span)));
            }
            let req = instance_request(&inst, &provisional, &ctx);
            match p.expand(req).into_result() {
                Ok(docs) if docs.instances.is_empty() => expanded.push((inst, provisional)),
                Ok(docs) => {
                    for Expanded { key: k, attrs } in docs.instances {
                        let addr_of = |key: &str| {
                            template::instance_address(&inst.rtype, &inst.name, Some(key))
                        };
                        let key = match &inst.key {
                            Some(each) => format!("{each}/{k}"),
                            None => k,
                        };
                        let mut body = config::template::ExMap::new();
                        for (ak, av) in &attrs {
                            body.insert(
                                ak.clone(),
                                config::value_to_ex(av, &cfg, &inst, salt, eval, &mut errs),
                            );
                        }
                        expand_inputs.insert(addr_of(&key), docs.inputs.clone());
                        let doc = Instance {
                            addr: addr_of(&key),
                            key: Some(key),
                            body,
                            expanded: true,
                            ..inst.clone()
                        };
                        let provisional = provisional_attrs(&doc, salt);
                        expanded.push((doc, provisional));
                    }
                }
                Err(d) => {
                    let span = d
                        .attr
                        .as_deref()
                        .map(|a| cfg.resource(&inst).node.locate(a))
                        .unwrap_or_else(node_span);
                    errs.push(Problem::from_diag(
                        &d.with_address(inst.addr.clone()),
                        cfg.loc(&span),
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }

        crate::util::timing::phase("build: expand");
        // Nodes, references, depends_on.
        let mut nodes: BTreeMap<String, Box<Node>> = BTreeMap::new();
        let mut provisional: BTreeMap<String, Attrs> = BTreeMap::new();
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (inst, prov) in expanded {
            by_resource
                .entry(format!("{}.{}", inst.rtype, inst.name))
                .or_default()
                .push(inst.addr.clone());
            if nodes.contains_key(&inst.addr) {
                errs.push(
                    Problem::new(format!("duplicate address {}", inst.addr))
                        .at(cfg.loc(&cfg.resource(&inst).node.span))
                        .hint("two documents or for_each keys produce the same address"),
                );
            }
            provisional.insert(inst.addr.clone(), prov);
            nodes.insert(
                inst.addr.clone(),
                Box::new(Node {
                    lifecycle: cfg.resource(&inst).lifecycle.clone(),
                    deps: Default::default(),
                    inputs: expand_inputs.remove(&inst.addr).unwrap_or_default(),
                    inst,
                    triggers: Vec::new(),
                    reads: None,
                }),
            );
        }
        crate::util::timing::phase("build: nodes");
        let refs = Refs {
            cfg: &cfg,
            nodes: &nodes,
            by_resource: &by_resource,
            known: Known {
                reg: &reg,
                providers: &providers,
                provisional: &provisional,
                ctx: &ctx,
                names: Default::default(),
            },
            salt,
            eval,
        };
        let mut all_deps: Vec<(String, crate::util::SortedSet)> = Vec::new();
        for (addr, n) in &nodes {
            let res = cfg.resource(&n.inst);
            let mut deps = crate::util::SortedSet::new();
            for r in config::body_refs(&n.inst.body) {
                let target = match refs.target(r) {
                    Ok(t) => t,
                    Err(p) => {
                        errs.push(p);
                        continue;
                    }
                };
                if target == *addr {
                    errs.push(
                        Problem::new(format!("`${{{}}}`: {addr} refers to itself", r.text))
                            .at(cfg.loc(&r.span)),
                    );
                    continue;
                }
                deps.insert(target);
            }
            for (d, span) in &res.depends_on {
                match refs.depends(d, span) {
                    Ok(ds) => deps.extend(ds.into_iter().filter(|a| a != addr)),
                    Err(p) => errs.push(p),
                }
            }
            all_deps.push((addr.clone(), deps));
        }
        crate::util::timing::phase("build: references");
        let outputs = super::outputs::build(&refs, &mut errs);
        let checks = super::checks::build(&refs, &mut errs);
        let triggers = super::triggers::resolve(&refs, &mut errs);
        drop(refs);
        for (addr, deps) in all_deps {
            if let Some(n) = nodes.get_mut(&addr) {
                n.deps = deps;
            }
        }
        super::triggers::attach(&mut nodes, triggers);
        crate::util::timing::phase("build: outputs, checks, triggers");
        // Provider-declared ordering (namespaces before their objects, ...),
        // handed the provisional attributes (moved: nothing needs them after).
        let mut items_of: BTreeMap<&str, Vec<DepItem>> = BTreeMap::new();
        for (addr, attrs) in provisional {
            let n = &nodes[&addr];
            items_of
                .entry(n.inst.provider_key.as_str())
                .or_default()
                .push(DepItem {
                    rtype: n.inst.rtype.clone(),
                    address: addr,
                    attrs,
                });
        }
        let (mut implied, mut reads) = (Vec::new(), Vec::new());
        for (key, items) in items_of {
            let Some(p) = providers.get(key) else {
                continue;
            };
            let req = ImplicitDepsRequest { items };
            reads.push(p.reads(&req));
            implied.extend(p.implicit_deps(req).edges);
        }
        for Edge {
            dependent: from,
            dependency: to,
        } in implied
        {
            if from != to && nodes.contains_key(&to) {
                if let Some(n) = nodes.get_mut(&from) {
                    n.deps.insert(to);
                }
            }
        }
        for r in reads {
            super::triggers::add_reads(&mut nodes, r, &mut errs);
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        crate::util::timing::phase("build: implicit deps");
        let graph = Graph::new(
            nodes
                .iter()
                .map(|(a, n)| (a.clone(), n.deps.iter().cloned().collect()))
                .chain(
                    checks
                        .iter()
                        .map(|(a, c)| (a.clone(), c.deps.iter().cloned().collect())),
                )
                .collect(),
        );
        crate::util::timing::phase("build: graph");
        if let Some(cycle) = graph.find_cycle() {
            let span = match (nodes.get(&cycle[0]), checks.get(&cycle[0])) {
                (Some(first), _) => cfg.resource(&first.inst).node.span.clone(),
                (None, Some(c)) => c.span.clone(),
                (None, None) => 0..0,
            };
            let loc = cfg.loc(&span);
            let mut path = cycle.clone();
            path.push(cycle[0].clone());
            return Err(Error::one(
                Problem::new(format!("dependency cycle: {}", path.join(" -> ")))
                    .at(loc)
                    .hint("break the cycle: remove a reference or a depends_on entry between these resources"),
            ));
        }
        Ok(Workspace {
            cfg,
            reg,
            salt: salt.to_string(),
            providers,
            nodes,
            outputs,
            checks,
            graph,
            events,
            verbose,
            prepare_ctx: ctx,
        })
    }
}

/// What references and `depends_on` entries may name, for resources,
/// outputs and checks alike.
pub(super) struct Refs<'a> {
    pub cfg: &'a Config,
    pub nodes: &'a BTreeMap<String, Box<Node>>,
    pub by_resource: &'a BTreeMap<String, Vec<String>>,
    known: Known<'a>,
    salt: &'a str,
    eval: config::Eval,
}

/// The attribute names each instance has (prepared provisional attributes,
/// the type's computed ones, `id`), made when a reference first asks.
struct Known<'a> {
    reg: &'a Registry,
    providers: &'a BTreeMap<String, Arc<dyn Provider>>,
    provisional: &'a BTreeMap<String, Attrs>,
    ctx: &'a Ctx,
    names: std::cell::RefCell<BTreeMap<String, Arc<BTreeSet<String>>>>,
}

impl Known<'_> {
    /// Whether `name` is set in `n`'s configuration, computed by its type,
    /// or `id`: then it is among [`Known::of`]'s names.
    fn cheaply_known(&self, n: &Node, name: &str) -> bool {
        name == "id"
            || self
                .provisional
                .get(&n.inst.addr)
                .is_some_and(|p| p.contains_key(name))
            || self
                .reg
                .resource_type(&n.inst.rtype)
                .is_some_and(|(_, t)| t.computed.contains(&name))
    }

    fn of(&self, n: &Node) -> Arc<BTreeSet<String>> {
        if let Some(names) = self.names.borrow().get(&n.inst.addr) {
            return names.clone();
        }
        let empty = Attrs::new();
        let prov = self.provisional.get(&n.inst.addr).unwrap_or(&empty);
        let req = instance_request(&n.inst, prov, self.ctx);
        let mut names: BTreeSet<String> = match self.providers[&n.inst.provider_key]
            .prepare(req)
            .into_result()
        {
            Ok(r) => r.attrs.into_keys().collect(),
            Err(_) => prov.keys().cloned().collect(),
        };
        if let Some((_, t)) = self.reg.resource_type(&n.inst.rtype) {
            names.extend(t.computed.iter().map(|s| s.to_string()));
        }
        names.insert("id".into());
        let names = Arc::new(names);
        self.names
            .borrow_mut()
            .insert(n.inst.addr.clone(), names.clone());
        names
    }
}

impl Refs<'_> {
    /// The attribute names of the instance `addr` (see [`Known`]).
    pub fn attr_names(&self, addr: &str) -> Option<Arc<BTreeSet<String>>> {
        self.nodes.get(addr).map(|n| self.known.of(n))
    }

    /// The instance `r` refers to, or why it cannot (an unknown resource,
    /// instance or attribute), located at the reference.
    pub fn target(&self, r: &template::ResRef) -> std::result::Result<String, Problem> {
        let target = r.instance();
        // Located only on error: a location costs a scan of the text.
        let loc = || self.cfg.loc(&r.span);
        if !self.nodes.contains_key(&target) {
            let resource = r.resource();
            return Err(if let Some(insts) = self.by_resource.get(&resource) {
                if r.key.is_none() {
                    Problem::new(format!(
                        "`${{{}}}`: {resource} has several instances; say which",
                        r.text
                    ))
                    .at(loc())
                    .hint(format!("write {}[\"KEY\"].{}", resource, r.attr))
                } else {
                    let keys: Vec<&str> = insts.iter().map(String::as_str).collect();
                    Problem::new(format!("`${{{}}}`: no instance {target}", r.text))
                        .at(loc())
                        .hint(format!("instances are: {}", keys.join(", ")))
                }
            } else {
                let names: Vec<&str> = self.by_resource.keys().map(String::as_str).collect();
                let p = Problem::new(format!("`${{{}}}`: unknown resource {resource}", r.text))
                    .at(loc());
                match closest(&resource, names.iter().copied()) {
                    Some(c) => p.hint(format!("did you mean `{c}`?")),
                    None => p.hint("declare it as a [TYPE.NAME] table"),
                }
            });
        }
        // The first segment of the path (most references name it alone).
        let head = match claw_provider::value::is_plain_key(&r.attr) {
            true => r.attr.clone(),
            false => match claw_provider::value::split_path(&r.attr).first() {
                Some(claw_provider::value::PathSeg::Key(k)) => k.clone(),
                _ => r.attr.clone(),
            },
        };
        // An attribute the configuration sets, a computed one or `id` is
        // known without asking the provider (`prepare` only adds names).
        if self.known.cheaply_known(&self.nodes[&target], &head) {
            return Ok(target);
        }
        let known = self.known.of(&self.nodes[&target]);
        if !known.contains(&head) {
            let p = Problem::new(format!(
                "`${{{}}}`: {target} has no attribute `{head}`",
                r.text
            ))
            .at(loc());
            return Err(match closest(&head, known.iter().map(String::as_str)) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint(format!(
                    "attributes are: {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
            });
        }
        Ok(target)
    }

    /// Evaluates `value` of the table `table` of `label` (an output's value,
    /// a check's probe) and checks its references: the value and the
    /// instances it refers to, or `None` with the problems in `errs`.
    pub fn free_value(
        &self,
        label: &str,
        table: &config::node::Node,
        value: &config::node::Node,
        errs: &mut Vec<Problem>,
    ) -> Option<(template::Ex, BTreeSet<String>)> {
        let ex = match self
            .cfg
            .free_value(label, table, value, self.salt, self.eval)
        {
            Ok(ex) => ex,
            Err(e) => {
                errs.extend(e.problems);
                return None;
            }
        };
        let mut rs = Vec::new();
        ex.refs(&mut rs);
        let mut targets = BTreeSet::new();
        let before = errs.len();
        for r in rs {
            match self.target(r) {
                Ok(t) => {
                    targets.insert(t);
                }
                Err(p) => errs.push(p),
            }
        }
        (errs.len() == before).then_some((ex, targets))
    }

    /// The addresses a `depends_on` entry names: every instance of a
    /// resource, one instance, or a check (`check.NAME`).
    pub fn depends(
        &self,
        d: &str,
        span: &std::ops::Range<usize>,
    ) -> std::result::Result<Vec<String>, Problem> {
        if let Some(insts) = self.by_resource.get(d) {
            return Ok(insts.clone());
        }
        if self.nodes.contains_key(d) {
            return Ok(vec![d.to_string()]);
        }
        let checks: Vec<String> = self.cfg.checks.iter().map(|c| c.address()).collect();
        if checks.iter().any(|c| c == d) {
            return Ok(vec![d.to_string()]);
        }
        let names = self
            .by_resource
            .keys()
            .map(String::as_str)
            .chain(checks.iter().map(String::as_str));
        let p = Problem::new(format!("depends_on: unknown resource {d}")).at(self.cfg.loc(span));
        Err(match closest(d, names) {
            Some(c) => p.hint(format!("did you mean `{c}`?")),
            None => p.hint("depends_on takes addresses of resources and checks in this file"),
        })
    }
}
