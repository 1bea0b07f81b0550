//! The host provider (placeholder until the file resource lands).
