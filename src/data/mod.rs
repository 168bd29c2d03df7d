//! Data provisioning: the cache, the pinned bundles, and typed readers of the datasets in them.

pub mod becpro;
pub(crate) mod bundle;
pub mod corpus;
pub mod crows;
pub(crate) mod download;
pub mod glue;
pub mod seat;
pub(crate) mod seat_templates;
pub mod stereoset;
pub mod winobias;

pub use bundle::Bundle;
use std::path::PathBuf;

/// The cache root: `$FAIRNC_HOME`, else `~/.cache/fairnc`.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("FAIRNC_HOME") {
        return PathBuf::from(h);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("fairnc")
}
