//! A run's interruption in two steps (SPEC §4): `stop` (the first Ctrl-C or
//! SIGTERM) stops starting new operations and is what providers see in
//! `Ctx::cancel`; `abandon` (the second) stops waiting for running ones.

use claw_provider::Cancel;

#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    pub stop: Cancel,
    pub abandon: Cancel,
}

impl Interrupt {
    pub fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}
