//! `--replace ADDR`: which configured addresses the plan replaces even
//! when they have not changed (SPEC §2).

use super::*;

impl Workspace {
    /// The instance addresses `replace` names: each an address in the
    /// configuration, or a resource name (all its instances). An object
    /// that does not exist yet is simply created (`decide` sees no live
    /// object).
    pub fn replace_set(&self, replace: &[String], destroy: bool) -> Result<BTreeSet<String>> {
        let mut sel = BTreeSet::new();
        if replace.is_empty() {
            return Ok(sel);
        }
        if destroy {
            return Err(Error::one(
                Problem::new("--replace cannot be combined with --destroy")
                    .hint("a destroy plan deletes everything; drop --replace"),
            ));
        }
        let mut errs = Vec::new();
        for r in replace {
            let matched: Vec<&String> = self
                .nodes
                .keys()
                .filter(|a| *a == r || a.starts_with(&format!("{r}[")))
                .collect();
            if matched.is_empty() {
                let p = Problem::new(format!(
                    "--replace {r}: no such resource in the configuration"
                ));
                errs.push(match closest(r, self.nodes.keys().map(String::as_str)) {
                    Some(c) => p.hint(format!("did you mean `{c}`?")),
                    None => p.hint("--replace takes an address declared in claw.toml"),
                });
            }
            sel.extend(matched.into_iter().cloned());
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        Ok(sel)
    }
}
