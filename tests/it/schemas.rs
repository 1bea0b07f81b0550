//! The checked-in JSON Schemas must match the types they are generated from.
//! Regenerate with `CLAW_UPDATE_SCHEMAS=1 cargo test schemas`.

use claw::registry::Registry;
use std::path::Path;

fn check(name: &str, v: serde_json::Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let fresh = serde_json::to_string_pretty(&v).unwrap() + "\n";
    if std::env::var_os("CLAW_UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "schemas/{name} is out of date: run `CLAW_UPDATE_SCHEMAS=1 cargo test schemas` and commit it"
    );
}

#[test]
fn config_schema_is_up_to_date() {
    let v = claw::schema::config_schema(&Registry::builtin());
    for t in Registry::builtin().type_names() {
        assert!(v["properties"].get(t).is_some(), "schema covers {t}");
    }
    check("claw.schema.json", v);
}

#[test]
fn plan_schema_is_up_to_date() {
    let v = claw::schema::plan_schema();
    assert!(v["properties"].get("format_version").is_some());
    check("plan.schema.json", v);
}
