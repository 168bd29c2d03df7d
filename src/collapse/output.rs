//! A computation's output directory: the files a collapse run or merge writes there, and the
//! guard that keeps one computation from replacing another's results unasked.

use super::Settings;
use super::run::{decisions_path, stats_path};
use super::shard::{self, Identity, Shard};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// What a collapse run (or a merge) writes in its directory.
const RUN_FILES: [&str; 9] = [
    "stats.safetensors",
    "decisions.safetensors",
    ".partial-stats.safetensors",
    ".partial-decisions.safetensors",
    "collapse.json",
    "classes.csv",
    "summary.md",
    "nc3_cosines.png",
    "nc3_cosines.svg",
];

/// Makes `dir` this computation's: refuses it when it holds another finished computation
/// ([`other_run`]) unless `overwrite`, which removes that one's files first.
pub(crate) fn claim(
    dir: &Path,
    settings: &Settings,
    identity: &Identity,
    blocks: &[(usize, usize)],
    overwrite: bool,
) -> Result<()> {
    let Some(other) = other_run(dir, settings, identity, blocks) else { return Ok(()) };
    if !overwrite {
        bail!("--output {}: holds {other}; pass --overwrite to replace it, or choose another directory", dir.display());
    }
    remove_run_files(dir)
}

fn remove_run_files(dir: &Path) -> Result<()> {
    for name in RUN_FILES {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("{}: cannot remove", p.display()))?;
        }
    }
    Ok(())
}

/// Describes the finished computation `dir` holds if it is not this one (a report with other
/// settings, or statistics / decisions of another model, word set, corpus, option or shard), so
/// that it is not overwritten unasked. Statistics that found no labelled position (a failed run)
/// and files that are not fairnc shards do not count.
fn other_run(dir: &Path, settings: &Settings, identity: &Identity, blocks: &[(usize, usize)]) -> Option<String> {
    if let Some(changed) = other_report(dir, settings) {
        return Some(changed);
    }
    for path in [stats_path(dir), decisions_path(dir)] {
        let other = match shard::read(&path) {
            Ok(Shard::Stats(h, s, _)) => s.positions() > 0 && (h.identity != *identity || h.blocks != blocks),
            Ok(Shard::Decisions(h, _)) => h.identity != *identity || h.blocks != blocks,
            Err(_) => false,
        };
        if other {
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            return Some(format!("{name} of another computation (model, word set, corpus, options or --shard)"));
        }
    }
    None
}

/// A `collapse.json` in `dir` with settings other than `settings`, described by what changed.
fn other_report(dir: &Path, settings: &Settings) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("collapse.json")).ok()?;
    let previous: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let now = serde_json::to_value(settings).unwrap_or_default();
    if previous["settings"] == now {
        return None;
    }
    let changed = crate::util::settings::changes(&previous["settings"], &now);
    Some(format!(
        "a finished collapse run with other settings ({})",
        if changed.is_empty() { "unreadable collapse.json".into() } else { changed.join(", ") }
    ))
}
