//! `tailscale_acl`: the tailnet's policy file, from a HuJSON file or an
//! inline table; refreshed by one `GET …/acl`, applied under `If-Match`.

use crate::api::{self, ApiError, Validation};
use crate::{hujson, TailscaleProvider, ACL, DEFAULT_POLICY};
use claw_provider::{
    ApplyRequest, ApplyResponse, AttrChange, Attrs, Ctx, Diagnostic, DiffRequest, DiffResponse,
    ImportRequest, Input, InstanceRequest, LiveObject, Op, Owner, PrepareResponse, RefreshRequest,
    RefreshResponse, StateObject, ValidateResponse, Value,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[tailscale_acl.<name>]`: the tailnet policy file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// A HuJSON policy file (comments and trailing commas allowed), relative to claw.toml.
    pub policy_file: Option<String>,
    /// The policy as an inline table (instead of `policy_file`).
    pub policy: Option<BTreeMap<String, serde_json::Value>>,
    /// On destroy, restore the default policy (allow all). Default false:
    /// destroy only forgets the policy and leaves the tailnet as it is.
    pub reset_on_destroy: Option<bool>,
}

pub(crate) fn desired_policy(attrs: &Attrs, ctx: &Ctx) -> Result<Option<String>, Diagnostic> {
    desired_policy_read(attrs, ctx, &mut Vec::new())
}

/// [`desired_policy`], reporting the policy file read in `inputs`.
pub(crate) fn desired_policy_read(
    attrs: &Attrs,
    ctx: &Ctx,
    inputs: &mut Vec<Input>,
) -> Result<Option<String>, Diagnostic> {
    match attrs.get("policy") {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ Value::Map(_)) => {
            if v.contains_unknown() {
                return Ok(None);
            }
            Ok(Some(hujson::standardize(&v.to_json_exposed())))
        }
        Some(Value::Unknown) => Ok(None),
        Some(_) => Err(Diagnostic::error("policy must be a table").with_attr("policy")),
        None => match attrs.get("policy_file") {
            Some(Value::String(path)) => {
                let (text, value) = read_policy_file(path, ctx)?;
                inputs.push(Input::new(ctx, path, text.as_bytes()));
                Ok(Some(hujson::standardize(&value)))
            }
            Some(Value::Unknown) => Ok(None),
            _ => Err(Diagnostic::error("set policy_file or policy").with_attr("policy_file")),
        },
    }
}

/// Reads and parses a HuJSON policy file: `(text, value)`.
pub(crate) fn read_policy_file(
    path: &str,
    ctx: &Ctx,
) -> Result<(String, serde_json::Value), Diagnostic> {
    let full = ctx.base_dir.join(path);
    let text = std::fs::read_to_string(&full).map_err(|e| {
        Diagnostic::error(format!("cannot read the policy file {path}: {e}"))
            .with_attr("policy_file")
            .with_hint(format!(
                "policy_file is relative to claw.toml's folder ({})",
                ctx.base_dir.display()
            ))
    })?;
    let value = hujson::parse(&text).map_err(|e| {
        Diagnostic::error(format!(
            "{path}:{}:{}: {} in the HuJSON policy",
            e.line, e.column, e.message
        ))
        .with_attr("policy_file")
        .with_hint("HuJSON allows comments and trailing commas, nothing else: double-quoted strings and keys, decimal numbers")
    })?;
    if !value.is_object() {
        return Err(
            Diagnostic::error(format!("{path}: the policy must be a JSON object"))
                .with_attr("policy_file"),
        );
    }
    Ok((text, value))
}

pub(crate) fn reset_on_destroy(attrs: &Attrs) -> bool {
    attrs
        .get("reset_on_destroy")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

pub(crate) fn strs(v: Option<&serde_json::Value>) -> Option<Vec<&str>> {
    v?.as_array()?.iter().map(|x| x.as_str()).collect()
}

/// True when a policy is a new tailnet's default policy, or something as
/// unconfigured: every access rule allows everything (`acls` of
/// `{"action":"accept","src":["*"],"dst":["*:*"]}` or `grants` of
/// `{"src":["*"],"dst":["*"],"ip":["*"]}`), SSH is at most the members'
/// own-device rule, node attributes at most `funnel` for members, and nothing
/// else (groups, tags, hosts, tests...) is defined. Comments, formatting and
/// key order do not matter. Adopting such a policy overwrites nothing of value.
pub fn is_default_policy(standardized: &str) -> bool {
    use serde_json::Value as J;
    let Ok(J::Object(top)) = serde_json::from_str::<J>(standardized) else {
        return false;
    };
    let only = |rule: &J, keys: &[&str]| {
        rule.as_object()
            .is_some_and(|o| o.keys().all(|k| keys.contains(&k.as_str())))
    };
    let allow_all_acl = |r: &J| {
        only(r, &["action", "src", "dst"])
            && r.get("action").and_then(J::as_str) == Some("accept")
            && strs(r.get("src")) == Some(vec!["*"])
            && strs(r.get("dst")) == Some(vec!["*:*"])
    };
    let allow_all_grant = |r: &J| {
        only(r, &["src", "dst", "ip"])
            && strs(r.get("src")) == Some(vec!["*"])
            && strs(r.get("dst")) == Some(vec!["*"])
            && strs(r.get("ip")) == Some(vec!["*"])
    };
    let own_devices_ssh = |r: &J| {
        only(r, &["action", "src", "dst", "users", "checkPeriod"])
            && matches!(
                r.get("action").and_then(J::as_str),
                Some("check" | "accept")
            )
            && strs(r.get("src")) == Some(vec!["autogroup:member"])
            && strs(r.get("dst")) == Some(vec!["autogroup:self"])
            && strs(r.get("users"))
                .is_some_and(|u| u.iter().all(|x| *x == "autogroup:nonroot" || *x == "root"))
    };
    let funnel = |r: &J| {
        only(r, &["target", "attr"])
            && strs(r.get("target")) == Some(vec!["autogroup:member"])
            && strs(r.get("attr")) == Some(vec!["funnel"])
    };
    let nonempty_all = |v: &J, f: &dyn Fn(&J) -> bool| {
        v.as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(f))
    };
    top.iter().all(|(k, v)| match k.as_str() {
        "acls" => nonempty_all(v, &allow_all_acl),
        "grants" => nonempty_all(v, &allow_all_grant),
        "ssh" => v.as_array().is_some_and(|a| a.iter().all(own_devices_ssh)),
        "nodeAttrs" => v.as_array().is_some_and(|a| a.iter().all(funnel)),
        _ => match v {
            J::Null | J::Bool(false) => true,
            J::Array(a) => a.is_empty(),
            J::Object(o) => o.is_empty(),
            _ => false,
        },
    })
}

/// "  test {…}\n    error" lines quoting the failing tests of `policy`.
pub(crate) fn quote_failures(
    policy: Option<&serde_json::Value>,
    message: &str,
    data: Option<&serde_json::Value>,
) -> String {
    let mut out = String::from(message);
    let Some(serde_json::Value::Array(entries)) = data else {
        return out;
    };
    for e in entries {
        let user = e.get("user").and_then(|u| u.as_str()).unwrap_or("");
        let errors: Vec<&str> = e
            .get("errors")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let mut quoted = false;
        if let Some(p) = policy {
            for key in ["tests", "sshTests"] {
                if let Some(tests) = p.get(key).and_then(|t| t.as_array()) {
                    for t in tests {
                        let src = t.get("src").and_then(|s| s.as_str()).unwrap_or("");
                        let members_match = src.starts_with("group:")
                            && p.get("groups")
                                .and_then(|g| g.get(src))
                                .and_then(|m| m.as_array())
                                .is_some_and(|m| m.iter().any(|x| x.as_str() == Some(user)));
                        if src == user || members_match {
                            out.push_str(&format!(
                                "\n{} {}",
                                if key == "tests" { "test" } else { "sshTest" },
                                serde_json::to_string(&hujson::sorted(t)).unwrap_or_default()
                            ));
                            quoted = true;
                        }
                    }
                }
            }
        }
        if !quoted {
            out.push_str(&format!("\nsrc {user:?}"));
        }
        for err in errors {
            out.push_str(&format!("\n  {err}"));
        }
    }
    out
}

impl TailscaleProvider {
    /// The state recorded for a policy.
    fn state_for(&self, desired: &Attrs, policy: String, etag: &str) -> StateObject {
        let mut attrs = Attrs::new();
        attrs.insert("id".into(), Value::str(self.client.tailnet()));
        attrs.insert("policy".into(), Value::String(policy));
        if let Some(Value::String(f)) = desired.get("policy_file") {
            attrs.insert("policy_file".into(), Value::str(f.clone()));
        }
        attrs.insert(
            "reset_on_destroy".into(),
            Value::Bool(reset_on_destroy(desired)),
        );
        let mut private = Attrs::new();
        private.insert("etag".into(), Value::str(etag));
        StateObject {
            id: self.client.tailnet().to_string(),
            attrs,
            private,
        }
    }

    fn live_object(&self, p: api::Policy) -> LiveObject {
        let mut attrs = Attrs::new();
        attrs.insert("id".into(), Value::str(self.client.tailnet()));
        attrs.insert(
            "policy".into(),
            Value::String(hujson::standardize(&p.value)),
        );
        LiveObject {
            id: self.client.tailnet().to_string(),
            attrs,
            fingerprint: p.etag,
            // A tailnet always has exactly one policy: declaring `tailscale_acl`
            // claims it (the first apply replaces whatever policy is there).
            owner: Owner::Stack,
        }
    }

    /// Posts `body` under `If-Match: if_match`, mapping a 412 to "changed since plan".
    async fn post(
        &self,
        address: &str,
        body: String,
        content_type: &str,
        if_match: &str,
        policy_for_quotes: Option<&serde_json::Value>,
    ) -> Result<api::Policy, Diagnostic> {
        match self.client.set_policy(body, content_type, if_match).await {
            Ok(p) => Ok(p),
            Err(ApiError::Status { status: 412, .. }) => Err(Diagnostic::error(format!(
                "policy changed since plan: the tailnet {:?} policy was edited after this plan was made (it no longer has ETag {if_match}); nothing was overwritten",
                self.client.tailnet()
            ))
            .with_address(address)
            .with_hint("run `claw plan` again to review the current policy (or bring the edit into the policy file), then apply")),
            Err(ApiError::Status {
                status: 400,
                message,
                data,
                oauth: false,
            }) => Err(Diagnostic::error(format!(
                "the Tailscale API refused the policy for tailnet {:?}",
                self.client.tailnet()
            ))
            .with_detail(quote_failures(policy_for_quotes, &message, data.as_ref()))
            .with_address(address)
            .with_hint("fix the policy (or its tests); the tailnet's policy was not changed")),
            Err(e) => Err(self.api_diag(e, "update the tailnet policy").with_address(address)),
        }
    }

    pub(crate) fn validate_acl(&self, req: &InstanceRequest<'_>) -> ValidateResponse {
        let has_file = req.attrs.contains_key("policy_file");
        let has_inline = req.attrs.contains_key("policy");
        let mut out = Vec::new();
        if has_file == has_inline {
            out.push(
                Diagnostic::error(if has_file {
                    "set either policy_file or policy, not both"
                } else {
                    "a tailscale_acl needs policy_file (a HuJSON file) or policy (an inline table)"
                })
                .with_address(req.address)
                .with_attr(if has_file { "policy" } else { "policy_file" })
                .with_hint("policy_file = \"tailscale/policy.hujson\""),
            );
        }
        // A local file read (nothing live): lets `claw validate` report HuJSON
        // errors with their line and column.
        if let (Some(Value::String(path)), false) = (req.attrs.get("policy_file"), has_inline) {
            if let Err(d) = read_policy_file(path, req.ctx) {
                out.push(d.with_address(req.address));
            }
        }
        if let Some(Value::Map(m)) = req.attrs.get("policy") {
            if m.values().any(Value::contains_secret) {
                out.push(
                    Diagnostic::error("the policy may not contain sensitive values")
                        .with_address(req.address)
                        .with_attr("policy")
                        .with_hint(
                            "the policy file is visible to every tailnet admin; use plain values",
                        ),
                );
            }
        }
        ValidateResponse { diagnostics: out }
    }

    pub(crate) fn prepare_acl(&self, req: &InstanceRequest<'_>) -> PrepareResponse {
        let mut out = Attrs::new();
        if let Some(f) = req.attrs.get("policy_file") {
            out.insert("policy_file".into(), f.clone());
        }
        let mut inputs = Vec::new();
        let policy = match desired_policy_read(req.attrs, req.ctx, &mut inputs) {
            Ok(p) => p,
            Err(d) => return PrepareResponse::failed(d.with_address(req.address)),
        };
        out.insert(
            "policy".into(),
            policy.map(Value::String).unwrap_or(Value::Unknown),
        );
        out.insert(
            "reset_on_destroy".into(),
            Value::Bool(reset_on_destroy(req.attrs)),
        );
        PrepareResponse {
            attrs: out,
            inputs,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) async fn refresh_acl(&self, req: RefreshRequest) -> RefreshResponse {
        let mut resp = RefreshResponse::default();
        let items: Vec<_> = req.items.iter().filter(|i| i.rtype == ACL).collect();
        if items.is_empty() {
            return resp;
        }
        let declared: Vec<&str> = items
            .iter()
            .filter(|i| i.desired.is_some())
            .map(|i| i.address.as_str())
            .collect();
        if declared.len() > 1 {
            resp.diagnostics.push(
                Diagnostic::error(format!(
                    "{} tailscale_acl resources use provider {} ({}), but a tailnet has one policy file",
                    declared.len(),
                    self.alias,
                    declared.join(", ")
                ))
                .with_address(declared[1])
                .with_hint("keep one tailscale_acl per tailnet"),
            );
            return resp;
        }
        match self.client.get_policy().await {
            Ok(p) => {
                let live = self.live_object(p);
                for i in items {
                    resp.live.insert(i.address.clone(), Some(live.clone()));
                }
            }
            Err(e) => resp.diagnostics.push(
                self.api_diag(e, "read the tailnet policy")
                    .with_address(items[0].address.clone()),
            ),
        }
        resp
    }

    pub(crate) async fn diff_acl(&self, req: DiffRequest) -> DiffResponse {
        let mut resp = DiffResponse::default();
        let desired = match desired_policy(&req.desired, &req.ctx) {
            Ok(d) => d,
            Err(d) => {
                resp.diagnostics.push(d.with_address(&req.address));
                return resp;
            }
        };
        let live = req
            .live
            .attrs
            .get("policy")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if desired.as_deref() != Some(live.as_str()) {
            resp.changes.push(AttrChange::new(
                "policy",
                Some(Value::String(live.clone())),
                Some(desired.clone().map(Value::String).unwrap_or(Value::Unknown)),
            ));
            if req.prior.is_none() && !is_default_policy(&live) {
                resp.diagnostics.push(
                    Diagnostic::error(format!(
                        "tailnet {:?} already has a policy that claw did not write (it is not the default policy); claw will not overwrite it without adopting it first",
                        self.client.tailnet()
                    ))
                    .with_address(&req.address)
                    .with_detail("import records the current policy in the state; the next plan then shows exactly what would change")
                    .with_hint(self.import_hint(&req.address)),
                );
            }
            if let Some(text) = &desired {
                if let Ok(candidate) = serde_json::from_str::<serde_json::Value>(text) {
                    match self.client.validate(&candidate).await {
                        Ok(Validation::Ok) => {}
                        Ok(Validation::Failed { message, data }) => {
                            let what = if message.contains("test") {
                                "the policy's tests fail"
                            } else {
                                "the policy is invalid"
                            };
                            let (file, attr) = match req.desired.get("policy_file") {
                                Some(Value::String(f)) => (f.clone(), "policy_file"),
                                _ => ("the policy".into(), "policy"),
                            };
                            resp.diagnostics.push(
                                Diagnostic::error(format!(
                                    "{what} (Tailscale's validation of the candidate for tailnet {:?})",
                                    self.client.tailnet()
                                ))
                                .with_address(&req.address)
                                .with_attr(attr)
                                .with_detail(quote_failures(Some(&candidate), &message, data.as_ref()))
                                .with_hint(format!(
                                    "fix the acls or the tests in {file}; nothing was changed"
                                )),
                            );
                        }
                        Err(e) => resp.diagnostics.push(
                            self.api_diag(e, "validate the policy")
                                .with_address(&req.address),
                        ),
                    }
                }
            }
        }
        let was = req
            .prior
            .as_ref()
            .map(|p| reset_on_destroy(&p.attrs))
            .unwrap_or(false);
        let now = reset_on_destroy(&req.desired);
        if was != now {
            resp.changes.push(AttrChange::new(
                "reset_on_destroy",
                Some(Value::Bool(was)),
                Some(Value::Bool(now)),
            ));
        }
        resp
    }

    pub(crate) async fn apply_policy(
        &self,
        req: ApplyRequest,
    ) -> Result<ApplyResponse, Diagnostic> {
        let address = req.address.as_str();
        let precondition = match &req.live {
            Some(l) => l.fingerprint.clone(),
            // No live object seen at plan time: only a tailnet still on the
            // default policy may be written.
            None => "\"ts-default\"".to_string(),
        };
        if precondition.is_empty() {
            req.ctx.progress.report(
                address,
                "warning: the API sent no ETag; writing without an If-Match precondition",
            );
        }
        match req.op {
            Op::Delete => {
                let prior = req.prior.clone().unwrap_or_default();
                if !reset_on_destroy(&prior.attrs) {
                    req.ctx.progress.report(
                        address,
                        "forgotten: the tailnet policy is left as it is (reset_on_destroy = false)",
                    );
                    return Ok(ApplyResponse::default());
                }
                req.ctx
                    .progress
                    .report(address, "restoring the default tailnet policy");
                self.post(
                    address,
                    DEFAULT_POLICY.to_string(),
                    "application/hujson",
                    &precondition,
                    None,
                )
                .await?;
                Ok(ApplyResponse::default())
            }
            Op::Create | Op::Update => {
                let desired = req.desired.clone().unwrap_or_default();
                let Some(planned) =
                    desired_policy(&desired, &req.ctx).map_err(|d| d.with_address(address))?
                else {
                    return Err(Diagnostic::error("the policy is not known yet")
                        .with_address(address)
                        .with_hint("the policy references a value known only after apply; apply its dependencies first"));
                };
                let planned_value: serde_json::Value =
                    serde_json::from_str(&planned).unwrap_or(serde_json::Value::Null);
                // Send the file itself (comments kept for the admin console)
                // when it still says what was planned.
                let (body, ctype) = match desired.get("policy_file") {
                    Some(Value::String(path)) => {
                        let (text, value) = read_policy_file(path, &req.ctx)
                            .map_err(|d| d.with_address(address))?;
                        if hujson::standardize(&value) != planned {
                            return Err(Diagnostic::error(format!(
                                "the policy file {path} changed since the plan was made"
                            ))
                            .with_address(address)
                            .with_hint("run `claw plan` again to review the new policy"));
                        }
                        (text, "application/hujson")
                    }
                    _ => (
                        serde_json::to_string_pretty(&planned_value).unwrap_or_default(),
                        "application/json",
                    ),
                };
                req.ctx.progress.report(
                    address,
                    "updating the tailnet policy (If-Match the planned ETag)",
                );
                let p = self
                    .post(address, body, ctype, &precondition, Some(&planned_value))
                    .await?;
                let applied = hujson::standardize(&p.value);
                let mut state = self.state_for(&desired, planned.clone(), &p.etag);
                if !p.value.is_null() && applied != planned {
                    // The server normalised something: record what it holds so
                    // the next plan compares like with like.
                    state.attrs.insert("policy".into(), Value::String(applied));
                }
                Ok(ApplyResponse {
                    state: Some(state),
                    diagnostics: Vec::new(),
                })
            }
        }
    }

    pub(crate) async fn import_policy(
        &self,
        req: ImportRequest,
    ) -> Result<StateObject, Diagnostic> {
        let configured = self.client.tailnet();
        if req.id != configured && req.id != "-" && configured != "-" {
            return Err(Diagnostic::error(format!(
                "cannot import tailnet {:?}: provider {} manages tailnet {configured:?}",
                req.id, self.alias
            ))
            .with_address(&req.address)
            .with_hint(self.import_hint(&req.address)));
        }
        let p = self.client.get_policy().await.map_err(|e| {
            self.api_diag(e, "read the tailnet policy")
                .with_address(&req.address)
        })?;
        let desired = req.desired.unwrap_or_default();
        let etag = p.etag.clone();
        Ok(self.state_for(&desired, hujson::standardize(&p.value), &etag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_is_recognised() {
        let v = hujson::parse(DEFAULT_POLICY).unwrap();
        assert!(is_default_policy(&hujson::standardize(&v)));
        let std = |v: serde_json::Value| hujson::standardize(&v);
        let all = serde_json::json!([{"action": "accept", "src": ["*"], "dst": ["*:*"]}]);
        let ssh = serde_json::json!([{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot", "root"]}]);
        let funnel = serde_json::json!([{"target": ["autogroup:member"], "attr": ["funnel"]}]);
        let grants = serde_json::json!([{"src": ["*"], "dst": ["*"], "ip": ["*"]}]);
        for d in [
            serde_json::json!({}),
            serde_json::json!({"acls": all}),
            serde_json::json!({"acls": all, "ssh": ssh, "nodeAttrs": funnel, "groups": {}, "tagOwners": {}, "tests": []}),
            serde_json::json!({"grants": grants, "ssh": ssh}),
        ] {
            assert!(is_default_policy(&std(d.clone())), "{d}");
        }
        for edited in [
            serde_json::json!({"acls": []}),
            serde_json::json!({"acls": all, "groups": {"group:a": ["a@example.com"]}}),
            serde_json::json!({"acls": [{"action": "accept", "src": ["*"], "dst": ["*:22"]}]}),
            serde_json::json!({"acls": all, "tests": [{"src": "a@example.com", "accept": ["b@example.com:22"]}]}),
            serde_json::json!({"grants": [{"src": ["*"], "dst": ["tag:x"], "ip": ["*"]}]}),
        ] {
            assert!(!is_default_policy(&std(edited.clone())), "{edited}");
        }
    }

    #[test]
    fn failures_quote_the_failing_test() {
        let policy = serde_json::json!({
            "groups": {"group:dev": ["alice@example.com"]},
            "tests": [
                {"src": "tag:dev", "accept": ["tag:clawdbot:8080"]},
                {"src": "group:dev", "deny": ["tag:clawdbot:22"]},
                {"src": "other@example.com", "deny": ["tag:clawdbot:8080"]},
            ]
        });
        let data = serde_json::json!([
            {"user": "tag:dev", "errors": ["address \"tag:clawdbot:8080\": want: Accept, got: Drop"]},
            {"user": "alice@example.com", "errors": ["address \"tag:clawdbot:22\": want: Drop, got: Accept"]},
        ]);
        let s = quote_failures(Some(&policy), "test(s) failed", Some(&data));
        assert!(s.starts_with("test(s) failed\n"), "{s}");
        assert!(s.contains("test {\"accept\":[\"tag:clawdbot:8080\"],\"src\":\"tag:dev\"}\n  address \"tag:clawdbot:8080\": want: Accept, got: Drop"), "{s}");
        assert!(
            s.contains("test {\"deny\":[\"tag:clawdbot:22\"],\"src\":\"group:dev\"}"),
            "{s}"
        );
        assert!(!s.contains("other@example.com"), "{s}");
    }
}
