//! The `kubernetes` state backend against the API double: a Secret holds the
//! state, a Lease the lock.

use claw_provider::*;
use kube_api_double::KubeApiDouble;
use std::time::Duration;

fn info(id: &str) -> LockInfo {
    LockInfo {
        id: id.into(),
        pid: 42,
        host: "ci-host".into(),
        user: "dev".into(),
        command: "claw apply".into(),
        created: "2026-01-01T00:00:00Z".into(),
    }
}

async fn storage(
    double: &KubeApiDouble,
    dir: &std::path::Path,
    lease_seconds: i64,
) -> Box<dyn StateStorage> {
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, double.kubeconfig("default")).unwrap();
    let mut provider_attrs = Attrs::new();
    provider_attrs.insert("kubeconfig".into(), Value::str(kc.to_str().unwrap()));
    let mut attrs = Attrs::new();
    attrs.insert("namespace".into(), Value::str("kube-system"));
    attrs.insert("lease_seconds".into(), Value::Int(lease_seconds));
    claw_kubernetes::factory()
        .state_storage(StateStorageRequest {
            provider_attrs,
            attrs,
            ctx: Ctx::for_tests("team", dir),
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn state_round_trips_through_a_secret() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&double, dir.path(), 30).await;
    assert_eq!(s.read().await.unwrap(), None);
    s.write(br#"{"serial": 1}"#).await.unwrap();
    s.write(br#"{"serial": 2}"#).await.unwrap();
    assert_eq!(
        s.read().await.unwrap().unwrap(),
        br#"{"serial": 2}"#.to_vec()
    );
    assert!(double
        .get("v1", "Secret", "kube-system", "claw-state-team")
        .is_some());
    assert_eq!(
        s.describe(),
        "secret kube-system/claw-state-team (lock: lease claw-lock-team)"
    );
}

#[tokio::test]
async fn a_second_run_finds_the_lock_held_and_names_the_holder() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = storage(&double, dir.path(), 30).await;
    let b = storage(&double, dir.path(), 30).await;
    let (ia, ib) = (info("run-a"), info("run-b"));
    let (ra, rb) = tokio::join!(a.lock(&ia), b.lock(&ib));
    // Exactly one of two concurrent runs gets the lock.
    let (winner, loser, held) = match (ra, rb) {
        (Ok(()), Err(LockError::Held(h))) => (&a, &b, h),
        (Err(LockError::Held(h)), Ok(())) => (&b, &a, h),
        other => panic!("expected one winner: {other:?}"),
    };
    assert_eq!(held.user, "dev");
    assert_eq!(held.command, "claw apply");
    let holder = loser.lock_holder().await.unwrap().unwrap();
    assert_eq!(holder, held);
    // The loser cannot release it; the winner can, and then the loser gets it.
    assert!(loser.unlock(&info("someone-else")).await.is_err());
    winner.unlock(&held).await.unwrap();
    assert_eq!(loser.lock_holder().await.unwrap(), None);
    loser.lock(&info("run-c")).await.unwrap();
    assert_eq!(winner.force_unlock().await.unwrap().unwrap().id, "run-c");
}

#[tokio::test]
async fn a_held_lock_is_renewed_and_an_abandoned_one_expires() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = storage(&double, dir.path(), 3).await;
    a.lock(&info("run-a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // Renewed in the background: still held.
    let b = storage(&double, dir.path(), 3).await;
    match b.lock(&info("run-b")).await {
        Err(LockError::Held(h)) => assert_eq!(h.id, "run-a"),
        other => panic!("lock should still be held: {other:?}"),
    }
    // The holder dies (its renewer stops): the lease expires and is taken over.
    drop(a);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    b.lock(&info("run-b")).await.unwrap();
    assert_eq!(b.lock_holder().await.unwrap().unwrap().id, "run-b");
    let notes = b.take_notices();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0]
            .summary
            .contains("took over an expired lock held by dev (pid 42 on ci-host"),
        "{}",
        notes[0]
    );
    assert!(b.take_notices().is_empty());
}

#[tokio::test]
async fn large_states_are_compressed_and_too_large_ones_refused() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&double, dir.path(), 30).await;
    // ~3 MB of JSON-like state: more than a Secret holds uncompressed.
    let big: String = (0..30_000)
        .map(|i| format!("{{\"address\": \"k8s_manifest.many[\\\"v1/ConfigMap/ns/cm-{i}\\\"]\", \"attrs\": {{\"data\": {{\"k\": \"v\"}}}}}},\n"))
        .collect();
    assert!(big.len() > 2_000_000);
    s.write(big.as_bytes()).await.unwrap();
    assert_eq!(s.read().await.unwrap().unwrap(), big.as_bytes());
    let secret = double
        .get("v1", "Secret", "kube-system", "claw-state-team")
        .unwrap();
    assert!(secret["data"]["state.json.gz"].as_str().unwrap().len() < 1_000_000);
    assert!(secret["data"].get("state").is_none());

    // Incompressible and too large: a clear error, the stored state untouched.
    let mut noise = Vec::with_capacity(2_000_000);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for _ in 0..2_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push((x & 0xff) as u8);
    }
    let err = s.write(&noise).await.unwrap_err();
    assert!(err.summary.contains("more than a Secret holds"), "{err}");
    assert_eq!(s.read().await.unwrap().unwrap(), big.as_bytes());
}

#[tokio::test]
async fn the_first_state_is_created_once_and_a_racer_reads_it() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = storage(&double, dir.path(), 30).await;
    let b = storage(&double, dir.path(), 30).await;
    let (ra, rb) = tokio::join!(
        a.create(br#"{"lineage": "a"}"#),
        b.create(br#"{"lineage": "b"}"#)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra, rb, "both runs end up with the same state");
    assert_eq!(a.read().await.unwrap().unwrap(), ra);
    // Never clobbers.
    assert_eq!(a.create(b"other").await.unwrap(), ra);
}

#[tokio::test]
async fn the_journal_is_one_small_secret_per_batch_folded_and_removed() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = storage(&double, dir.path(), 30).await;
    s.write(b"{}").await.unwrap();
    assert_eq!(s.journal_read().await.unwrap(), None);
    let mut want = Vec::new();
    for i in 0..12 {
        let batch = format!("{{\"commit\":{{\"addr\":\"file.f{i}\",\"entry\":null}}}}\n");
        s.journal_append(batch.as_bytes()).await.unwrap();
        want.extend(batch.into_bytes());
    }
    // A batch above a Secret's size is split across Secrets, in order.
    let big: Vec<u8> = (0..1_500_000).map(|i| b'a' + (i % 26) as u8).collect();
    s.journal_append(&big).await.unwrap();
    want.extend(&big);
    // Another run (after a crash) reads the same bytes in append order.
    let other = storage(&double, dir.path(), 30).await;
    assert_eq!(other.journal_read().await.unwrap().unwrap(), want);
    for n in [0, 11, 12, 13] {
        let name = format!("claw-state-team-journal-{n:08}");
        let secret = double
            .get("v1", "Secret", "kube-system", &name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(secret["metadata"]["labels"]["claw.dev/state-journal"].is_string());
        let len = secret["data"]["records"].as_str().unwrap().len();
        assert!(len < 1_000_000, "{name}: {len} bytes");
    }
    other.journal_remove().await.unwrap();
    assert_eq!(s.journal_read().await.unwrap(), None);
    assert!(
        double
            .get("v1", "Secret", "kube-system", "claw-state-team")
            .is_some(),
        "the state stays"
    );
}

#[tokio::test]
async fn a_lock_of_a_dead_holder_is_taken_over_only_while_it_still_holds() {
    let double = KubeApiDouble::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dead = storage(&double, dir.path(), 30).await;
    dead.lock(&info("dead-run")).await.unwrap();
    drop(dead);
    let s = storage(&double, dir.path(), 30).await;
    match s.take_over(&info("someone-else"), &info("run-b")).await {
        Err(LockError::Held(h)) => assert_eq!(h.id, "dead-run"),
        other => panic!("{other:?}"),
    }
    s.take_over(&info("dead-run"), &info("run-b"))
        .await
        .unwrap();
    assert_eq!(s.lock_holder().await.unwrap().unwrap().id, "run-b");
    let notes = s.take_notices();
    assert!(
        notes[0]
            .summary
            .contains("took over the lock held by dev (pid 42 on ci-host")
            && notes[0]
                .summary
                .contains("that process is no longer running"),
        "{notes:?}"
    );
}
