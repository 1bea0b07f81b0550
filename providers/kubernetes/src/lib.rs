//! claw-kubernetes (being built).
