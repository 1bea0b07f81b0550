//! Ctrl-C and SIGTERM (SPEC §4). The first stops starting new work (a
//! provider sees it as `Ctx::cancel`); the second abandons the wait for the
//! running operations. Nothing here exits: the command returns
//! [`super::Outcome::Interrupted`] once the state is saved and the lock
//! released, and `main.rs` exits 130.

use super::ui::Ui;
use crate::engine::interrupt::Interrupt;
use crate::error::{Error, Result};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

pub struct Signals {
    pub interrupt: Interrupt,
    /// Set once the work started: before, a signal ends the command at once.
    working: Arc<AtomicBool>,
    listener: JoinHandle<()>,
}

impl Signals {
    /// Listens for SIGINT and SIGTERM from now on; `work` names what a
    /// second signal abandons (in the message the first one prints).
    pub fn listen(ui: Arc<Ui>, work: &'static str) -> Result<Signals> {
        let err = |e: std::io::Error| Error::msg(format!("cannot listen for signals: {e}"));
        let mut int = signal(SignalKind::interrupt()).map_err(err)?;
        let mut term = signal(SignalKind::terminate()).map_err(err)?;
        let interrupt = Interrupt::default();
        let working = Arc::new(AtomicBool::new(false));
        let (i, w) = (interrupt.clone(), working.clone());
        let listener = tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = int.recv() => "Ctrl-C",
                    Some(()) = term.recv() => "SIGTERM",
                    else => return,
                };
                if i.stopped() {
                    i.abandon.cancel();
                    ui.interrupt(&format!(
                        "{name} again: abandoning {work}; recording what completed and releasing the lock..."
                    ));
                } else {
                    i.stop.cancel();
                    if !w.load(Ordering::SeqCst) {
                        continue;
                    }
                    ui.interrupt(&format!(
                        "Interrupted ({name}): starting nothing new; waiting for {work} (press Ctrl-C again to abandon)..."
                    ));
                }
            }
        });
        Ok(Signals {
            interrupt,
            working,
            listener,
        })
    }

    /// The work starts: a first signal now waits for it.
    pub fn working(&self) {
        self.working.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.interrupt.stopped()
    }

    /// Runs `fut` unless a signal comes first (then `None`: `fut` is dropped).
    pub async fn unless_stopped<T>(
        &self,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<Option<T>> {
        tokio::select! {
            r = fut => r.map(Some),
            _ = self.interrupt.stop.cancelled() => Ok(None),
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.listener.abort();
    }
}
