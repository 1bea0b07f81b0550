//! The state for people and scripts: `claw show` (no plan file),
//! `claw state list` and `claw state show ADDR`.

use super::Format;
use crate::state::{Entry, State};
use std::collections::BTreeMap;

/// `claw show`: the whole state; JSON is the stored document itself.
pub fn show(st: &State, format: Format) -> String {
    if format == Format::Json {
        let mut s = String::from_utf8(st.to_bytes()).unwrap_or_default();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        return s;
    }
    let mut s = format!(
        "Stack {} (state serial {}, {} objects)\n",
        st.stack,
        st.serial,
        st.resources.len()
    );
    for (a, e) in &st.resources {
        s.push_str(&format!(
            "\n{a}\n    id = {}\n",
            serde_json::to_string(&e.id).unwrap_or_default()
        ));
        for (k, v) in &e.attrs {
            s.push_str(&format!(
                "    {} = {}\n",
                claw_provider::value::render_key(k),
                v.render_inline()
            ));
        }
    }
    s
}

/// `claw state list`: one `address<TAB>id` line per object.
pub fn list(st: &State) -> String {
    st.resources
        .iter()
        .map(|(a, e)| format!("{a}\t{}\n", e.id))
        .collect()
}

/// `claw state show ADDR`: the entry as a one-key JSON object.
pub fn entry(address: &str, e: &Entry) -> String {
    let one = BTreeMap::from([(address, e)]);
    let mut s = serde_json::to_string_pretty(&one).unwrap_or_default();
    s.push('\n');
    s
}
