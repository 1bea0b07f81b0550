//! claw-tailscale (being built).
