//! claw-docker (being built).
