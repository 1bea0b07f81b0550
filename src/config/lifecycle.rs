//! `lifecycle = { ... }` of a resource, and the syntax of its
//! `replace_triggered_by` entries.

use super::node::{Kind, Node};
use super::parse::unknown_key;
use super::template::{self, Piece, RefKind};
use super::types::{Lifecycle, Source};
use crate::error::Problem;

const KEYS: &[&str] = &[
    "prevent_destroy",
    "create_before_destroy",
    "ignore_changes",
    "replace_triggered_by",
];

/// The `lifecycle` table of the resource table `n`.
pub(super) fn parse(n: &Node, source: &Source<'_>, errs: &mut Vec<Problem>) -> Lifecycle {
    let mut lifecycle = Lifecycle::default();
    let Some(l) = n.get("lifecycle") else {
        return lifecycle;
    };
    let Some(t) = l.as_table() else {
        errs.push(
            source
                .err(&l.span, "`lifecycle` must be a table")
                .hint("lifecycle = { prevent_destroy = true }"),
        );
        return lifecycle;
    };
    for e in t {
        match (e.key.as_str(), &e.value.kind) {
            ("prevent_destroy", Kind::Bool(b)) => lifecycle.prevent_destroy = *b,
            ("create_before_destroy", Kind::Bool(b)) => lifecycle.create_before_destroy = *b,
            ("ignore_changes", Kind::Array(a)) => {
                for it in a {
                    match it.as_str() {
                        Some(s) => lifecycle.ignore_changes.push(s.to_string()),
                        None => errs.push(source.err(
                            &it.span,
                            "ignore_changes items must be attribute paths (strings)",
                        )),
                    }
                }
            }
            ("replace_triggered_by", Kind::Array(a)) => {
                for it in a {
                    match it.as_str() {
                        Some(s) => match check_trigger(s) {
                            Ok(()) => lifecycle
                                .replace_triggered_by
                                .push((s.to_string(), it.span.clone())),
                            Err(why) => errs.push(source.err(&it.span, why).hint(
                                "write \"TYPE.NAME\", \"TYPE.NAME[\\\"KEY\\\"]\" or \"TYPE.NAME[\\\"KEY\\\"].ATTRIBUTE\"",
                            )),
                        },
                        None => errs.push(source.err(
                            &it.span,
                            "replace_triggered_by items must be addresses (strings)",
                        )),
                    }
                }
            }
            ("prevent_destroy" | "create_before_destroy", _) => {
                errs.push(source.err(&e.value.span, format!("`{}` must be true or false", e.key)))
            }
            ("ignore_changes", _) => errs.push(source.err(
                &e.value.span,
                "`ignore_changes` must be a list of attribute paths",
            )),
            ("replace_triggered_by", _) => errs.push(
                source
                    .err(
                        &e.value.span,
                        "`replace_triggered_by` must be a list of addresses",
                    )
                    .hint("replace_triggered_by = [\"file.config\"]"),
            ),
            (k, _) => errs.push(unknown_key(source, &e.key_span, k, KEYS, "lifecycle")),
        }
    }
    lifecycle
}

/// A trigger as written: substitutions allowed, and the rest an address.
fn check_trigger(s: &str) -> Result<(), String> {
    let pieces = template::parse_template(s, &(0..0))?;
    let mut plain = String::new();
    for p in pieces {
        match p {
            Piece::Lit(l) => plain.push_str(&l),
            Piece::Ref(RefKind::EachKey | RefKind::Var(..), _) => plain.push('x'),
            Piece::Ref(_, text) => {
                return Err(format!(
                    "`${{{text}}}`: replace_triggered_by substitutes only ${{each.key}} and ${{vars.NAME}}"
                ))
            }
        }
    }
    match split_trigger(&plain) {
        Some(_) => Ok(()),
        None => Err(format!("`{s}` is not a resource address")),
    }
}

/// A trigger with its substitutions made: the address (a resource
/// `type.name` or an instance `type.name["key"]`) and the attribute path
/// after it, if any.
pub fn split_trigger(s: &str) -> Option<(String, Option<String>)> {
    let dot = s.find('.')?;
    let rest = &s[dot + 1..];
    let name_end = rest.find(['.', '[']).unwrap_or(rest.len());
    let mut end = dot + 1 + name_end;
    if s[end..].starts_with('[') {
        end += s[end..].find("\"]")? + 2;
    }
    let addr = &s[..end];
    template::parse_address(addr)?;
    match &s[end..] {
        "" => Some((addr.to_string(), None)),
        r => {
            let attr = r.strip_prefix('.')?;
            (!attr.is_empty()).then(|| (addr.to_string(), Some(attr.to_string())))
        }
    }
}

/// `s` with `${each.key}` and `${vars.NAME}` replaced (`each`: the
/// instance's `for_each` key; `var`: a variable's text).
pub fn substitute(
    s: &str,
    each: Option<&str>,
    var: &dyn Fn(&str, &str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    for p in template::parse_template(s, &(0..0))? {
        match p {
            Piece::Lit(l) => out.push_str(&l),
            Piece::Ref(RefKind::EachKey, _) => match each {
                Some(k) => out.push_str(k),
                None => {
                    return Err("`${each.key}` is used, but the resource has no for_each".into())
                }
            },
            Piece::Ref(RefKind::Var(name, path), text) => match var(&name, &path) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("`${{{text}}}`: no such variable")),
            },
            Piece::Ref(_, text) => return Err(format!("`${{{text}}}` is not allowed here")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_split_into_address_and_attribute() {
        let s = |t: &str| split_trigger(t);
        assert_eq!(s("file.cfg"), Some(("file.cfg".into(), None)));
        assert_eq!(
            s("file.cfg[\"a.b\"]"),
            Some(("file.cfg[\"a.b\"]".into(), None))
        );
        assert_eq!(
            s("k8s_manifest.gw[\"apps/v1/Deployment/ns/gw\"].spec.template.spec.containers[0].image"),
            Some((
                "k8s_manifest.gw[\"apps/v1/Deployment/ns/gw\"]".into(),
                Some("spec.template.spec.containers[0].image".into())
            ))
        );
        assert_eq!(
            s("file.cfg.content"),
            Some(("file.cfg".into(), Some("content".into())))
        );
        for bad in [
            "file",
            "file.",
            ".cfg",
            "file.cfg.",
            "file.cfg[x]",
            "file.cfg[\"a\"]x",
            "a b.c",
        ] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }

    #[test]
    fn triggers_substitute_each_key_and_vars() {
        let var = |n: &str, _: &str| (n == "ns").then(|| "prod".to_string());
        assert_eq!(
            substitute("file.cfg[\"${each.key}\"]", Some("dev"), &var).unwrap(),
            "file.cfg[\"dev\"]"
        );
        assert_eq!(
            substitute("k8s_manifest.x[\"v1/ConfigMap/${vars.ns}/c\"]", None, &var).unwrap(),
            "k8s_manifest.x[\"v1/ConfigMap/prod/c\"]"
        );
        assert!(substitute("file.cfg[\"${each.key}\"]", None, &var).is_err());
        assert!(substitute("file.${vars.nope}", None, &var).is_err());
        assert!(check_trigger("file.cfg[\"${env.HOME}\"]").is_err());
        assert!(check_trigger("file.cfg[\"${each.key}\"]").is_ok());
        assert!(check_trigger("nonsense").is_err());
    }
}
