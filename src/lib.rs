//! claw: config → graph → plan → apply → state.
