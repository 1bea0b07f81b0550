//! An in-memory provider for engine tests: objects live in a map, refresh
//! lists them in one call, and any address can be made to fail.

use crate::diag::Diagnostic;
use crate::provider::*;
use crate::value::Attrs;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct MockProvider {
    pub objects: Mutex<BTreeMap<String, Attrs>>,
    pub fail: Mutex<BTreeSet<String>>,
    pub calls: AtomicU64,
}

impl MockProvider {
    pub fn new() -> Arc<MockProvider> {
        Arc::new(MockProvider::default())
    }
}

#[async_trait]
impl Provider for MockProvider {
    async fn refresh(&self, req: RefreshRequest) -> RefreshResponse {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().unwrap();
        let mut resp = RefreshResponse::default();
        for item in &req.items {
            let live = objects.get(&item.address).map(|a| LiveObject {
                id: item.address.clone(),
                attrs: a.clone(),
                fingerprint: String::new(),
                owner: Owner::NotApplicable,
            });
            resp.live.insert(item.address.clone(), live);
        }
        resp
    }

    async fn apply(&self, req: ApplyRequest) -> ApplyResponse {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.fail.lock().unwrap().contains(&req.address) {
            return ApplyResponse::failed(
                Diagnostic::error("injected failure").with_address(&req.address),
            );
        }
        let mut objects = self.objects.lock().unwrap();
        match req.op {
            Op::Delete => {
                objects.remove(&req.address);
                ApplyResponse::default()
            }
            Op::Create | Op::Update => {
                let attrs = req.desired.unwrap_or_default();
                objects.insert(req.address.clone(), attrs.clone());
                ApplyResponse::state(StateObject {
                    id: req.address,
                    attrs,
                    private: Attrs::new(),
                })
            }
        }
    }
}
