//! What object each Kubernetes address claims (SPEC §1.1a): API group,
//! kind, namespace and name (the version is left out: `apps/v1` and
//! `apps/v1beta1` of one Deployment are one object), per provider alias.
//! Two addresses naming one object are refused by the engine before
//! planning, naming both.

use crate::provider::ident;
use claw_provider::{IdentityItem, IdentityResponse};

/// The identities of `items` served by the provider `alias`.
pub fn identities(alias: &str, items: Vec<IdentityItem>) -> IdentityResponse {
    let mut out = IdentityResponse::default();
    for it in items {
        // `expand` and `prepare` fill the namespace; unknown names name nothing.
        let Some(r) = ident(it.rtype, it.attrs) else {
            continue;
        };
        let group = match r.group() {
            "" => String::new(),
            g => format!(".{g}"),
        };
        let at = match r.namespace.as_str() {
            "" => r.name.clone(),
            ns => format!("{ns}/{}", r.name),
        };
        out.identities.push((
            it.address.to_string(),
            format!("kubernetes:{}{group} {at} (provider {alias})", r.kind),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_provider::{Attrs, Value};

    fn doc(
        address: &'static str,
        rtype: &'static str,
        j: serde_json::Value,
    ) -> IdentityItem<'static> {
        let attrs: Attrs = match Value::from_json(&j) {
            Value::Map(m) => m,
            _ => unreachable!("an object"),
        };
        IdentityItem {
            address,
            rtype,
            attrs: Box::leak(Box::new(attrs)),
        }
    }

    #[test]
    fn group_kind_namespace_and_name_without_the_version() {
        let dep = |v: &str| {
            serde_json::json!({"apiVersion": v, "kind": "Deployment",
                "metadata": {"name": "gw", "namespace": "apps"}})
        };
        let r = identities(
            "k3s",
            vec![
                doc("k8s_manifest.a[\"x\"]", "k8s_manifest", dep("apps/v1")),
                doc("k8s_manifest.b[\"x\"]", "k8s_manifest", dep("apps/v1beta1")),
                doc(
                    "k8s_manifest.ns[\"x\"]",
                    "k8s_manifest",
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}),
                ),
                doc(
                    "k8s_secret.s",
                    "k8s_secret",
                    serde_json::json!({"name": "token", "namespace": "apps"}),
                ),
                doc(
                    "k8s_manifest.unknown[\"x\"]",
                    "k8s_manifest",
                    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
                ),
            ],
        );
        let ids: Vec<&str> = r.identities.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(
            ids,
            [
                "kubernetes:Deployment.apps apps/gw (provider k3s)",
                "kubernetes:Deployment.apps apps/gw (provider k3s)",
                "kubernetes:Namespace apps (provider k3s)",
                "kubernetes:Secret apps/token (provider k3s)",
            ]
        );
    }
}
