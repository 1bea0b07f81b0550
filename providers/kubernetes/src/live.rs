//! Live objects in the shape of the configuration: identity, ownership and
//! the fingerprint a saved plan is checked against.

use crate::client::ApiRes;
use crate::manifest::ObjRef;
use crate::provider::{B64, SECRET};
use base64::Engine;
use claw_provider::*;
use serde_json::json;

pub(crate) fn owner_of(obj: &serde_json::Value, stack: &str) -> Owner {
    let labels = obj.pointer("/metadata/labels");
    let l = |k: &str| labels.and_then(|m| m.get(k)).and_then(|v| v.as_str());
    match (l(LABEL_MANAGED_BY), l(LABEL_STACK)) {
        (Some("claw"), Some(s)) if s == stack => Owner::Stack,
        (Some("claw"), Some(s)) => Owner::OtherStack(s.to_string()),
        _ => Owner::Unmanaged,
    }
}

pub(crate) fn address_of(obj: &serde_json::Value) -> Option<String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(LABEL_ADDRESS))
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

pub(crate) fn ref_of_obj(obj: &serde_json::Value, res: &ApiRes) -> ObjRef {
    ObjRef {
        api_version: res.api_version.clone(),
        kind: res.kind.clone(),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
        name: obj
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string(),
    }
}

pub(crate) fn secret_hash(plain: &str, salt: &str) -> Value {
    Value::Secret(Secret::hash_only(plain, salt))
}

/// The annotation `kubectl apply` writes with the whole applied object.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A live object in the shape of the configuration.
pub(crate) fn to_live(rtype: &str, obj: &serde_json::Value, res: &ApiRes, ctx: &Ctx) -> LiveObject {
    let r = ref_of_obj(obj, res);
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let rv = obj
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("managedFields");
        // `kubectl apply` (client-side) keeps the whole object it applied in
        // this annotation: for a Secret, its data in base64. It never
        // reaches a plan or the state.
        if let Some(a) = m.get_mut("annotations").and_then(|a| a.as_object_mut()) {
            a.remove(LAST_APPLIED);
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    let attrs = match rtype {
        SECRET => {
            let mut a = Attrs::new();
            a.insert("namespace".into(), Value::str(&r.namespace));
            a.insert("name".into(), Value::str(&r.name));
            a.insert("uid".into(), Value::str(uid));
            a.insert(
                "type".into(),
                Value::str(o.get("type").and_then(|v| v.as_str()).unwrap_or("Opaque")),
            );
            let mut data = Map::new();
            if let Some(d) = o.get("data").and_then(|d| d.as_object()) {
                for (k, v) in d {
                    let plain = B64
                        .decode(v.as_str().unwrap_or_default())
                        .unwrap_or_default();
                    data.insert(
                        k.clone(),
                        secret_hash(&String::from_utf8_lossy(&plain), &ctx.salt),
                    );
                }
            }
            a.insert("data".into(), Value::Map(data));
            for k in ["labels", "annotations"] {
                if let Some(v) = o.pointer(&format!("/metadata/{k}")) {
                    a.insert(k.into(), Value::from_json(v));
                }
            }
            a
        }
        _ => {
            if r.kind == "Secret" && r.api_version == "v1" {
                if let Some(d) = o.get_mut("data").and_then(|d| d.as_object_mut()) {
                    for v in d.values_mut() {
                        let h = Secret::hash_only(v.as_str().unwrap_or_default(), &ctx.salt);
                        *v = json!({ "$sensitive": h.hash() });
                    }
                }
            }
            // Lists of built-in kinds carry no apiVersion/kind per item.
            if let Some(m) = o.as_object_mut() {
                m.insert("apiVersion".into(), json!(res.api_version));
                m.insert("kind".into(), json!(res.kind));
            }
            match Value::from_json(&o) {
                Value::Map(m) => m,
                _ => Attrs::new(),
            }
        }
    };
    LiveObject {
        id: r.key(),
        attrs,
        fingerprint: fingerprint(obj, uid, rv),
        owner: owner_of(obj, &ctx.stack),
    }
}

/// Changes whenever the object changes in a way a plan depends on: objects
/// with a `metadata.generation` (a spec) use it plus a hash of their labels
/// and annotations, so controllers writing `status` do not make saved plans
/// stale; the others (ConfigMaps, Secrets, ...) use the resourceVersion.
pub(crate) fn fingerprint(obj: &serde_json::Value, uid: &str, rv: &str) -> String {
    match obj.pointer("/metadata/generation").and_then(|g| g.as_i64()) {
        Some(g) => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for k in ["labels", "annotations"] {
                if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
                    h.update(serde_json::to_vec(v).unwrap_or_default());
                }
                h.update([0u8]);
            }
            format!("{uid}/g{g}/{}", &hex::encode(h.finalize())[..16])
        }
        None => format!("{uid}/{rv}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_applied_annotation_never_reaches_the_live_object() {
        let res = ApiRes {
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
            namespaced: true,
        };
        // aHVudGVyMg== is base64 of the secret.
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "gw", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "annotations": {(LAST_APPLIED): "{\"data\":{\"k\":\"aHVudGVyMg==\"}}", "team": "a"}},
            "data": {"k": "aHVudGVyMg=="}
        });
        let ctx = Ctx::for_tests("s", "/base");
        for rtype in ["k8s_manifest", SECRET] {
            let live = to_live(rtype, &obj, &res, &ctx);
            let text = serde_json::to_string(&Value::Map(live.attrs.clone())).unwrap();
            assert!(!text.contains("aHVudGVyMg=="), "{rtype}: {text}");
            assert!(!text.contains("last-applied"), "{rtype}: {text}");
            assert!(
                text.contains("\"team\""),
                "{rtype}: other annotations stay: {text}"
            );
        }
    }
}
