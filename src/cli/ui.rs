//! Progress and messages on stderr: indicatif bars on a TTY, one plain line
//! per event otherwise (indicatif hides itself without a TTY and would drop
//! our lines).

use crate::engine::Events;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Ui {
    pub quiet: bool,
    pub verbose: bool,
    tty: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, (ProgressBar, Instant)>>,
    overall: Mutex<Option<ProgressBar>>,
    started: Mutex<BTreeMap<String, Instant>>,
}

impl Ui {
    pub fn new(quiet: bool, verbose: bool, _color: bool) -> Arc<Ui> {
        let tty = std::io::stderr().is_terminal();
        let multi = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Arc::new(Ui {
            quiet,
            verbose,
            tty,
            multi,
            bars: Mutex::new(BTreeMap::new()),
            overall: Mutex::new(None),
            started: Mutex::new(BTreeMap::new()),
        })
    }

    fn line(&self, s: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    pub fn info(&self, s: &str) {
        if !self.quiet {
            self.line(s);
        }
    }

    pub fn status(&self, s: &str) {
        if !self.quiet && (self.verbose || self.tty) {
            self.line(s);
        }
    }

    /// A warning that is shown even with `-q`.
    pub fn note_always(&self, s: &str) {
        self.line(s);
    }

    pub fn interrupt(&self, s: &str) {
        self.line(s);
    }

    pub fn start_apply(&self, total: usize) {
        if let Some(m) = &self.multi {
            let pb = m.add(ProgressBar::new(total as u64));
            pb.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} operations  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            *self.overall.lock().unwrap() = Some(pb);
        }
    }

    pub fn finish_apply(&self) {
        if let Some(pb) = self.overall.lock().unwrap().take() {
            pb.finish_and_clear();
        }
        for (_, (pb, _)) in std::mem::take(&mut *self.bars.lock().unwrap()) {
            pb.finish_and_clear();
        }
    }
}

impl Events for Ui {
    fn progress(&self, address: &str, message: &str) {
        if let Some((pb, _)) = self.bars.lock().unwrap().get(address) {
            pb.set_message(format!("{address}: {message}"));
            return;
        }
        if !self.quiet && self.verbose {
            self.line(&format!("{address}: {message}"));
        }
    }

    fn op_started(&self, address: &str, what: &str) {
        self.started
            .lock()
            .unwrap()
            .insert(address.to_string(), Instant::now());
        match &self.multi {
            Some(m) => {
                let pb = m.insert_from_back(1, ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.set_message(format!("{address}: {what}..."));
                pb.enable_steady_tick(Duration::from_millis(120));
                self.bars
                    .lock()
                    .unwrap()
                    .insert(address.to_string(), (pb, Instant::now()));
            }
            None => {
                if !self.quiet {
                    eprintln!("{address}: {what}...");
                }
            }
        }
    }

    fn op_finished(&self, address: &str, what: &str, result: Result<(), &str>) {
        let elapsed = self
            .started
            .lock()
            .unwrap()
            .remove(address)
            .map(|t| t.elapsed())
            .unwrap_or_default();
        if let Some((pb, _)) = self.bars.lock().unwrap().remove(address) {
            pb.finish_and_clear();
        }
        if let Some(pb) = self.overall.lock().unwrap().as_ref() {
            pb.inc(1);
        }
        let secs = format!("{:.1}s", elapsed.as_secs_f64());
        match result {
            Ok(()) => {
                if !self.quiet {
                    self.line(&format!("{address}: {what} ({secs})"));
                }
            }
            Err(e) => self.line(&format!(
                "{address}: failed after {secs}: {}",
                e.lines().next().unwrap_or(e)
            )),
        }
    }

    fn op_skipped(&self, address: &str, because: &str) {
        self.line(&format!("{address}: skipped ({because})"));
    }

    fn note(&self, message: &str) {
        if !self.quiet {
            self.line(message);
        }
    }
}
