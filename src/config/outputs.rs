//! `[output.NAME]` (SPEC §1.1a): `value` (any value; strings interpolate
//! vars, env, secrets and resource references), `description`,
//! `sensitive`. Parsed here; `engine::outputs` evaluates them.

use super::node::{Kind, Node};
use super::parse::{check_name, table_of, unknown_key};
use super::types::Source;
use crate::error::Problem;

const KEYS: &[&str] = &["value", "description", "sensitive"];

/// One `[output.NAME]` table.
#[derive(Debug, Clone)]
pub struct OutputCfg {
    pub name: String,
    /// The whole table (to locate errors).
    pub node: Node,
    /// The `value` node, evaluated later.
    pub value: Node,
    pub description: Option<String>,
    /// Shown as `(sensitive)`, stored only as a keyed hash.
    pub sensitive: bool,
}

/// The `[output.*]` tables, in file order.
pub(super) fn parse(
    n: Option<&Node>,
    source: &Source<'_>,
    errs: &mut Vec<Problem>,
) -> Vec<OutputCfg> {
    let Some(n) = n else { return Vec::new() };
    let mut out = Vec::new();
    for e in table_of(n, "output", source, errs) {
        if !check_name(source, e, "output name", errs) {
            continue;
        }
        let label = format!("[output.{}]", e.key);
        let Some(t) = e.value.as_table() else {
            errs.push(
                source
                    .err(&e.value.span, format!("{label} must be a table"))
                    .hint(format!("[output.{}]\nvalue = \"...\"", e.key)),
            );
            continue;
        };
        let mut value = None;
        let mut description = None;
        let mut sensitive = false;
        for f in t {
            match (f.key.as_str(), &f.value.kind) {
                ("value", _) => value = Some(f.value.clone()),
                ("description", Kind::Str(s)) => description = Some(s.clone()),
                ("description", _) => {
                    errs.push(source.err(&f.value.span, "`description` must be a string"))
                }
                ("sensitive", Kind::Bool(b)) => sensitive = *b,
                ("sensitive", _) => errs.push(
                    source
                        .err(&f.value.span, "`sensitive` must be true or false")
                        .hint("sensitive = true"),
                ),
                (k, _) => errs.push(unknown_key(source, &f.key_span, k, KEYS, &label)),
            }
        }
        let Some(value) = value else {
            errs.push(
                source
                    .err(&e.key_span, format!("{label} has no `value`"))
                    .hint("add e.g. value = \"${file.config.path}\""),
            );
            continue;
        };
        out.push(OutputCfg {
            name: e.key.clone(),
            node: e.value.clone(),
            value,
            description,
            sensitive,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::registry::Registry;
    use std::path::Path;

    fn errors(src: &str) -> String {
        match Config::parse(
            Path::new("claw.toml"),
            src.into(),
            &[],
            &Registry::builtin(),
        ) {
            Ok(_) => panic!("expected errors for:\n{src}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn outputs_parse_and_bad_ones_are_located() {
        let c = Config::parse(
            Path::new("claw.toml"),
            "[stack]\nname = \"s\"\n[output.url]\nvalue = \"http://x\"\ndescription = \"d\"\nsensitive = true\n".into(),
            &[],
            &Registry::builtin(),
        )
        .unwrap();
        assert_eq!(c.outputs.len(), 1);
        assert_eq!(c.outputs[0].name, "url");
        assert!(c.outputs[0].sensitive);
        assert_eq!(c.outputs[0].description.as_deref(), Some("d"));
        let e = errors("[stack]\nname = \"s\"\n[output.url]\nvalu = \"x\"\n");
        assert!(
            e.contains("unknown key `valu` in [output.url]") && e.contains("claw.toml:4:1"),
            "{e}"
        );
        assert!(e.contains("did you mean `value`?"), "{e}");
        assert!(e.contains("[output.url] has no `value`"), "{e}");
        let e = errors("[stack]\nname = \"s\"\n[output.url]\nvalue = \"x\"\nsensitive = \"yes\"\n");
        assert!(
            e.contains("`sensitive` must be true or false") && e.contains("claw.toml:5:13"),
            "{e}"
        );
    }
}
