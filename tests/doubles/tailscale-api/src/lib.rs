//! tailscale-api-double (being built).
