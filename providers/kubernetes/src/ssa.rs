//! Server-side apply with claw's field manager and conflict policy.

use crate::client::{ApiError, ApiRes};
use crate::manifest::{self, FieldPath, ObjRef, Seg};
use crate::provider::{api_diag, doc_of, KubeProvider, FIELD_MANAGER};
use claw_provider::*;
use http::Method;
use std::collections::BTreeSet;

impl KubeProvider {
    pub(crate) async fn ssa(
        &self,
        res: &ApiRes,
        r: &ObjRef,
        body: &serde_json::Value,
        dry_run: bool,
        force: bool,
    ) -> Result<serde_json::Value, ApiError> {
        let mut path = format!(
            "{}?fieldManager={FIELD_MANAGER}",
            res.item(&r.namespace, &r.name)
        );
        if force {
            path.push_str("&force=true");
        }
        if dry_run {
            path.push_str("&dryRun=All");
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.cluster
            .call(
                Method::PATCH,
                &path,
                Some(("application/apply-patch+yaml", bytes)),
                None,
            )
            .await
    }

    /// Server-side apply with claw's conflict policy: `force_conflicts`, or a
    /// forced retry when every conflicting field is one claw applied before
    /// (it was changed by hand: the plan showed that drift).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn apply_policy(
        &self,
        address: &str,
        res: &ApiRes,
        r: &ObjRef,
        body: &serde_json::Value,
        dry_run: bool,
        force: bool,
        prior: &BTreeSet<FieldPath>,
    ) -> Result<serde_json::Value, Diagnostic> {
        match self.ssa(res, r, body, dry_run, force).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let conflicts = conflicts_of(&e);
                if conflicts.is_empty() {
                    return Err(api_diag(
                        address,
                        &format!("server-side apply of {}", r.display()),
                        &e,
                    ));
                }
                let owned: BTreeSet<String> = prior.iter().map(render_path).collect();
                if conflicts.iter().all(|(_, f)| owned.contains(f)) {
                    return self.ssa(res, r, body, dry_run, true).await.map_err(|e| {
                        api_diag(
                            address,
                            &format!("server-side apply of {}", r.display()),
                            &e,
                        )
                    });
                }
                let mut managers: Vec<&str> = conflicts.iter().map(|(m, _)| m.as_str()).collect();
                managers.dedup();
                let fields: Vec<&str> = conflicts.iter().map(|(_, f)| f.as_str()).collect();
                let resource = address.split('[').next().unwrap_or(address);
                Err(Diagnostic::error(format!(
                    "{} has fields owned by another field manager: {} ({})",
                    r.display(),
                    managers.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", "),
                    fields.join(", ")
                ))
                .with_address(address)
                .with_detail(e.message())
                .with_hint(format!(
                    "set `force_conflicts = true` on {resource} to take these fields over, or stop setting them in the manifest"
                )))
            }
        }
    }
}

/// Conflicts reported by a server-side apply: (manager, field).
fn conflicts_of(e: &ApiError) -> Vec<(String, String)> {
    let ApiError::Status {
        code: 409,
        causes,
        message,
        ..
    } = e
    else {
        return Vec::new();
    };
    let from_causes: Vec<(String, String)> = causes
        .iter()
        .filter(|(r, _, _)| r == "FieldManagerConflict")
        .map(|(_, m, f)| {
            let manager = m
                .split('"')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| m.clone());
            (manager, f.clone())
        })
        .collect();
    if !from_causes.is_empty() {
        return from_causes;
    }
    conflicts_in_message(message)
}

/// Conflicts from the message alone (a server that sends no causes):
/// `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`, or
/// `Apply failed with 2 conflicts: conflicts with "m" using apps/v1:\n- .a\n- .b`.
fn conflicts_in_message(message: &str) -> Vec<(String, String)> {
    if !message.starts_with("Apply failed with") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut manager: Option<String> = None;
    for line in message.lines() {
        let line = line.trim();
        if let Some(i) = line
            .find("conflict with \"")
            .or_else(|| line.find("conflicts with \""))
        {
            let rest = &line[i..];
            manager = rest.split('"').nth(1).map(str::to_string);
            // Single conflict: the field follows the last ": ".
            if let (Some(m), Some((_, field))) = (&manager, rest.rsplit_once(": ")) {
                if field.starts_with('.') {
                    out.push((m.clone(), field.trim().to_string()));
                }
            }
        } else if let (Some(m), Some(field)) = (&manager, line.strip_prefix("- ")) {
            out.push((m.clone(), field.trim().to_string()));
        }
    }
    out
}

/// Renders a field path as the API server does in conflicts.
fn render_path(p: &FieldPath) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Item(n) => s.push_str(&format!("[name={}]", serde_json::Value::String(n.clone()))),
        }
    }
    s
}

pub(crate) fn prior_fields(prior: Option<&StateObject>) -> BTreeSet<FieldPath> {
    let Some(p) = prior else {
        return BTreeSet::new();
    };
    if let Some(list) = p.private.get("fields").and_then(Value::as_list) {
        return list.iter().filter_map(manifest::decode_path).collect();
    }
    manifest::field_set(&doc_of(&p.attrs))
}

#[cfg(test)]
mod tests {
    use super::conflicts_in_message;

    #[test]
    fn conflicts_are_read_from_the_message_when_causes_are_missing() {
        assert_eq!(
            conflicts_in_message(
                r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas"#
            ),
            vec![("kubectl-edit".to_string(), ".spec.replicas".to_string())]
        );
        assert_eq!(
            conflicts_in_message("Apply failed with 2 conflicts: conflicts with \"helm\" using v1:\n- .data.a\n- .data.b"),
            vec![
                ("helm".to_string(), ".data.a".to_string()),
                ("helm".to_string(), ".data.b".to_string())
            ]
        );
        assert!(conflicts_in_message("the object has been modified").is_empty());
    }
}
