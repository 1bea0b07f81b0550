//! `claw import ADDR ID`: adopt an existing object into the (locked) state.

use super::{Events, Workspace};
use crate::config::{template::ResRef, Config};
use crate::error::{closest, Error, Problem, Result};
use crate::registry::Registry;
use crate::state::{Entry, Store};
use claw_provider::{ImportRequest, Value};
use std::sync::Arc;

/// Asks the provider of `address` to adopt the object `id` (labelling it as
/// the stack's), records it in the state and saves; returns its id.
pub async fn import(
    cfg: Config,
    reg: Registry,
    events: Arc<dyn Events>,
    store: &Store,
    address: &str,
    id: &str,
    verbose: bool,
) -> Result<String> {
    let st = store.snapshot().await;
    if st.resources.contains_key(address) {
        return Err(Error::one(
            Problem::new(format!("{address} is already in the state")).hint(format!(
                "to adopt another object, first `claw state rm {address}`"
            )),
        ));
    }
    let ws = Workspace::build(cfg, reg, &st.salt, Some(&st), events, verbose)?;
    let Some(node) = ws.nodes.get(address) else {
        let p = Problem::new(format!("{address} is not declared in the configuration"));
        return Err(Error::one(
            match closest(address, ws.nodes.keys().map(String::as_str)) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint("declare the resource in claw.toml first, then import it"),
            },
        ));
    };
    let lookup = |r: &ResRef| {
        st.resources
            .get(&r.instance())
            .and_then(|e| Value::Map(e.attrs.clone()).get_path(&r.attr).cloned())
            .unwrap_or(Value::Unknown)
    };
    let desired = ws.desired(address, &lookup).ok();
    let obj = ws.providers[&node.inst.provider_key]
        .import(ImportRequest {
            ctx: ws.ctx(),
            address: address.to_string(),
            rtype: node.inst.rtype.clone(),
            id: id.to_string(),
            desired,
        })
        .await
        .into_state()
        .map_err(|d| Error::one(ws.diag_problem(&d, address)))?;
    store.state.lock().await.resources.insert(
        address.to_string(),
        Entry {
            rtype: node.inst.rtype.clone(),
            provider: node.inst.provider_key.clone(),
            object: std::sync::Arc::new(obj.clone()),
            deps: node.deps.iter().cloned().collect(),
            prevent_destroy: node.lifecycle.prevent_destroy,
        },
    );
    store.save().await?;
    Ok(obj.id)
}
