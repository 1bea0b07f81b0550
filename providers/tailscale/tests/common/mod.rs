//! The Tailscale API double and a provider on it; plans and applies go
//! through the SDK's harness ([`claw_provider::testing`]: the engine's steps
//! and the real `decide`), one address (`tailscale_acl.fleet`) at a time.

#![allow(clippy::result_large_err, dead_code, unused_imports)]

pub use claw_provider::testing::{Harness, Plan, Recorded, Resource};
pub use claw_provider::{
    Attrs, ConfigureRequest, Ctx, Diagnostic, DiffResponse, ImportRequest, Input, InstanceRequest,
    LiveObject, Provider, RefreshItem, RefreshRequest, StateObject, Value,
};
use std::path::Path;
use std::sync::Arc;
pub use tailscale_api_double::{TailscaleDouble, TEST_API_KEY, TEST_OAUTH_ID, TEST_OAUTH_SECRET};

pub const ADDR: &str = "tailscale_acl.fleet";

pub fn example_policy() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/clawdbot-fleet/tailscale/policy.hujson");
    std::fs::read_to_string(p).expect("the example policy")
}

pub struct Fixture {
    pub double: TailscaleDouble,
    pub dir: tempfile::TempDir,
    pub ctx: Ctx,
    pub provider: Arc<dyn Provider>,
}

/// What one plan of one address produced.
pub struct Planned {
    pub plan: Plan,
    pub desired: Attrs,
    pub live: LiveObject,
    /// The address's changes, and every diagnostic of the plan.
    pub diff: DiffResponse,
}

pub fn errors(d: &[Diagnostic]) -> Vec<String> {
    d.iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

pub fn secret(ctx: &Ctx, s: &str) -> Value {
    ctx.secret(s)
}

impl Fixture {
    pub fn new() -> Fixture {
        let double = TailscaleDouble::spawn();
        let dir = tempfile::tempdir().unwrap();
        let ctx = Ctx::for_tests("clawdbot", dir.path());
        let mut attrs = Attrs::new();
        attrs.insert("tailnet".into(), Value::str("example.com"));
        attrs.insert("api_key".into(), secret(&ctx, TEST_API_KEY));
        attrs.insert("base_url".into(), Value::str(double.base_url()));
        let provider = Self::configure(&ctx, attrs).unwrap();
        Fixture {
            double,
            dir,
            ctx,
            provider,
        }
    }

    pub fn configure(ctx: &Ctx, attrs: Attrs) -> Result<Arc<dyn Provider>, Diagnostic> {
        claw_tailscale::factory().configure(ConfigureRequest {
            alias: "tailnet".into(),
            attrs,
            ctx: ctx.clone(),
        })
    }

    pub fn provider_with(&self, extra: &[(&str, Value)]) -> Arc<dyn Provider> {
        let mut attrs = Attrs::new();
        attrs.insert("tailnet".into(), Value::str("-"));
        attrs.insert("base_url".into(), Value::str(self.double.base_url()));
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        Self::configure(&self.ctx, attrs).unwrap()
    }

    pub fn write_policy(&self, text: &str) -> Attrs {
        std::fs::create_dir_all(self.dir.path().join("tailscale")).unwrap();
        std::fs::write(self.dir.path().join("tailscale/policy.hujson"), text).unwrap();
        let mut a = Attrs::new();
        a.insert("policy_file".into(), Value::str("tailscale/policy.hujson"));
        a
    }

    pub fn prepare(&self, p: &dyn Provider, config: &Attrs) -> Result<Attrs, Diagnostic> {
        let req = InstanceRequest {
            address: ADDR,
            rtype: "tailscale_acl",
            name: "fleet",
            key: None,
            attrs: config,
            ctx: &self.ctx,
        };
        // Validation errors stop an instance before prepare, as in the engine.
        p.validate(req).into_result()?;
        Ok(p.prepare(req).into_result()?.attrs)
    }

    pub async fn refresh(
        &self,
        p: &dyn Provider,
        desired: Option<&Attrs>,
        prior: Option<&StateObject>,
    ) -> Result<LiveObject, Vec<Diagnostic>> {
        let resp = p
            .refresh(RefreshRequest {
                ctx: self.ctx.clone(),
                items: vec![RefreshItem {
                    address: ADDR.into(),
                    rtype: "tailscale_acl".into(),
                    desired: desired.cloned().map(std::sync::Arc::new),
                    prior: prior.cloned().map(std::sync::Arc::new),
                    recheck: false,
                }],
                find_orphans: true,
            })
            .await;
        if !errors(&resp.diagnostics).is_empty() {
            return Err(resp.diagnostics);
        }
        assert!(resp.orphans.is_empty());
        Ok(resp.live[ADDR]
            .clone()
            .expect("the tailnet always has a policy"))
    }

    /// A harness planning `config` at [`ADDR`] through `p`, with `prior` recorded.
    pub fn harness(
        &self,
        p: &Arc<dyn Provider>,
        config: Option<&Attrs>,
        prior: Option<&StateObject>,
    ) -> Harness {
        let mut h = Harness::new(p.clone(), self.ctx.clone());
        if let Some(c) = config {
            h.set(vec![Resource::new("tailscale_acl", "fleet", c.clone())]);
        }
        if let Some(s) = prior {
            h.state.insert(
                ADDR.into(),
                Recorded {
                    rtype: "tailscale_acl".into(),
                    object: s.clone(),
                    deps: vec![],
                    prevent_destroy: false,
                },
            );
        }
        h
    }

    /// `claw plan` through the harness: prepare, one refresh, diff, decide.
    pub async fn plan_with(
        &self,
        p: &Arc<dyn Provider>,
        config: &Attrs,
        prior: Option<&StateObject>,
    ) -> Planned {
        let h = self.harness(p, Some(config), prior);
        let plan = h.plan().await;
        let desired = h.desired(ADDR).expect("prepare");
        let live = plan.live[ADDR]
            .clone()
            .expect("the tailnet always has a policy");
        let change = plan.get(ADDR);
        let diff = DiffResponse {
            changes: change.map(|c| c.diff.clone()).unwrap_or_default(),
            replace_note: change.and_then(|c| c.replace_note.clone()),
            diagnostics: plan.diagnostics.clone(),
        };
        Planned {
            plan,
            desired,
            live,
            diff,
        }
    }

    pub async fn plan(&self, config: &Attrs, prior: Option<&StateObject>) -> Planned {
        self.plan_with(&self.provider, config, prior).await
    }

    /// Applies a plan through the harness, whatever its diagnostics said (as
    /// an engine that went on anyway would), with `planned.live` as the live
    /// object seen at plan time.
    pub async fn apply(
        &self,
        planned: &Planned,
        prior: Option<&StateObject>,
    ) -> Result<StateObject, Diagnostic> {
        let changes = planned
            .plan
            .changes
            .iter()
            .cloned()
            .map(|mut c| {
                c.live = Some(planned.live.clone());
                c
            })
            .collect();
        let plan = Plan {
            changes,
            ..Default::default()
        };
        let mut h = self.harness(&self.provider, None, prior);
        h.apply_plan(&plan).await?;
        Ok(h.state[ADDR].object.clone())
    }

    /// `claw destroy` through the harness.
    pub async fn destroy(&self, state: &StateObject) -> Result<(), Diagnostic> {
        let mut h = self.harness(&self.provider, None, Some(state));
        let plan = h.plan_destroy().await;
        h.apply_plan(&plan).await?;
        assert!(h.state.is_empty());
        Ok(())
    }

    pub fn posts(&self) -> usize {
        self.double
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/acl"))
            .count()
    }

    /// Create from the example, returning the recorded state.
    pub async fn create_example(&self) -> (Attrs, StateObject) {
        let config = self.write_policy(&example_policy());
        let planned = self.plan(&config, None).await;
        assert!(
            errors(&planned.diff.diagnostics).is_empty(),
            "{:?}",
            planned.diff.diagnostics
        );
        let state = self.apply(&planned, None).await.expect("apply");
        (config, state)
    }
}

pub fn policy_change(d: &DiffResponse) -> (String, String) {
    let c = d
        .changes
        .iter()
        .find(|c| c.path == "policy")
        .expect("a policy change");
    let s = |v: &Option<Value>| {
        v.as_ref()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s(&c.before), s(&c.after))
}
