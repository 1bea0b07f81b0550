//! The harness against the in-memory provider: the engine's plan and apply
//! order, `decide`'s actions, failures that skip their dependents.

use claw_provider::decide::{Action, Reason};
use claw_provider::mock::MockProvider;
use claw_provider::testing::{Harness, Lifecycle, Resource};
use claw_provider::{Ctx, Value};
use serde_json::json;
use std::sync::atomic::Ordering;

fn harness() -> (std::sync::Arc<MockProvider>, Harness) {
    let p = MockProvider::new();
    let h = Harness::new(p.clone(), Ctx::for_tests("t", "."));
    (p, h)
}

#[tokio::test]
async fn create_update_delete_through_decide() {
    let (p, mut h) = harness();
    h.set(vec![
        Resource::json("thing", "a", json!({ "v": 1 })),
        Resource::json("thing", "b", json!({ "v": 2 })).depends_on("thing.a"),
    ]);
    let plan = h.converge().await;
    assert_eq!(plan.with(Action::Create), vec!["thing.a", "thing.b"]);
    assert_eq!(plan.get("thing.a").unwrap().reason, Reason::NotFound);
    assert_eq!(h.state["thing.b"].deps, vec!["thing.a".to_string()]);

    h.declare(Resource::json("thing", "a", json!({ "v": 3 })));
    let plan = h.converge().await;
    assert_eq!(plan.with(Action::Update), vec!["thing.a"]);
    assert_eq!(plan.unchanged, 1);
    assert_eq!(p.objects.lock().unwrap()["thing.a"]["v"], Value::Int(3));

    // Changed outside claw: the reason says so.
    p.objects
        .lock()
        .unwrap()
        .get_mut("thing.b")
        .unwrap()
        .insert("v".into(), Value::Int(9));
    let plan = h.plan().await;
    assert_eq!(
        plan.get("thing.b").unwrap().reason.to_string(),
        "v changed outside claw"
    );

    h.remove("thing.b");
    let plan = h.converge().await;
    assert_eq!(plan.with(Action::Delete), vec!["thing.b"]);
    assert_eq!(plan.get("thing.b").unwrap().reason, Reason::NotInConfig);
    h.destroy().await;
    assert!(p.objects.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failure_skips_its_dependents_and_not_the_rest() {
    let (p, mut h) = harness();
    p.fail.lock().unwrap().insert("thing.a".into());
    h.set(vec![
        Resource::json("thing", "a", json!({})),
        Resource::json("thing", "b", json!({})).depends_on("thing.a"),
        Resource::json("thing", "c", json!({})),
    ]);
    let err = h.try_apply().await.unwrap_err();
    assert_eq!(err.address.as_deref(), Some("thing.a"));
    assert!(err.summary.contains("injected failure"), "{err}");
    let recorded: Vec<&String> = h.state.keys().collect();
    assert_eq!(recorded, vec!["thing.c"]);
    let calls = p.calls.load(Ordering::Relaxed);
    p.fail.lock().unwrap().clear();
    h.converge().await;
    assert!(p.calls.load(Ordering::Relaxed) > calls);
}

#[tokio::test]
async fn prevent_destroy_refuses_and_a_lifecycle_change_is_state_only() {
    let (_p, mut h) = harness();
    let keep = Lifecycle {
        prevent_destroy: true,
        ..Default::default()
    };
    h.set(vec![Resource::json("thing", "a", json!({})).lifecycle(keep)]);
    h.converge().await;
    let plan = h.plan_destroy().await;
    let err = plan.error().expect("a refusal");
    assert!(err.summary.contains("prevent_destroy"), "{err}");

    h.set(vec![Resource::json("thing", "a", json!({}))]);
    let plan = h.converge().await;
    assert_eq!(plan.with(Action::StateOnly), vec!["thing.a"]);
    assert!(!h.state["thing.a"].prevent_destroy);
    h.destroy().await;
}

#[tokio::test]
async fn one_refresh_call_per_plan() {
    let (p, mut h) = harness();
    h.set(
        (0..5)
            .map(|i| Resource::json("thing", &format!("n{i}"), json!({ "i": i })))
            .collect(),
    );
    h.converge().await;
    let before = p.calls.load(Ordering::Relaxed);
    h.assert_converged().await;
    assert_eq!(p.calls.load(Ordering::Relaxed) - before, 1);
}
