//! A debias run's output directory: what it may hold, and the check before a run writes to it
//! that no earlier work is lost (another run's results, or files that are not a run at all).

use super::debias::OutputMode;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The settings file of a run: what decides its results, compared on every later start.
pub(crate) const SETTINGS_FILE: &str = "run.json";

/// What a debias run writes in its directory: `--overwrite` removes these and nothing else.
fn is_run_file(name: &str) -> bool {
    [SETTINGS_FILE, super::log::FILE, "model", "loss.png", "loss.svg", "nc3.png", "nc3.svg"].contains(&name)
        || name.starts_with("checkpoint-")
        // Left by an atomic write that was interrupted (util::fs::temp_sibling).
        || (name.starts_with('.') && name.contains(".tmp-"))
}

/// Makes `dir` ready for a run with `settings`: creates it, or continues the same run
/// ([`OutputMode::Resume`]), or replaces a debias run ([`OutputMode::Overwrite`], removing only
/// that run's files); anything else is refused with what the directory holds and the flag that
/// would proceed.
pub(crate) fn prepare(dir: &Path, settings: &serde_json::Value, mode: OutputMode) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--output {}: is a file, not a directory", dir.display());
    }
    let names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    if names.is_empty() {
        return std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()));
    }
    let previous: Option<serde_json::Value> =
        std::fs::read_to_string(dir.join(SETTINGS_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok());
    let Some(previous) = previous else { bail!(not_a_run(dir, &names, mode)) };
    match mode {
        OutputMode::Overwrite => remove_run_files(dir, &names),
        _ if &previous != settings => {
            let changed = crate::util::settings::changes(&previous, settings);
            bail!(
                "--output {}: holds a debias run with other settings ({}); pass --overwrite to replace it, or choose another directory",
                dir.display(),
                changed.join(", ")
            );
        }
        OutputMode::Resume => Ok(()),
        OutputMode::New if dir.join("model").join("config.json").exists() => bail!(
            "--output {}: holds a finished run with the same settings (model/); pass --overwrite to train it again",
            dir.display()
        ),
        OutputMode::New => bail!(
            "--output {}: holds an unfinished run with the same settings; pass --resume to continue it from its last checkpoint, or --overwrite to start again",
            dir.display()
        ),
    }
}

/// The refusal of a directory that holds files but no run: a few of their names, and that
/// overwriting would not help.
fn not_a_run(dir: &Path, names: &[String], mode: OutputMode) -> String {
    let mut shown: Vec<&str> = names.iter().map(String::as_str).take(3).collect();
    if names.len() > 3 {
        shown.push("…");
    }
    format!(
        "--output {}: holds files that are not a debias run (no run.json; {}); {}choose an empty or new directory",
        dir.display(),
        shown.join(", "),
        if mode == OutputMode::Overwrite { "--overwrite replaces only a debias run: " } else { "" }
    )
}

fn remove_run_files(dir: &Path, names: &[String]) -> Result<()> {
    for name in names.iter().filter(|n| is_run_file(n)) {
        let p = dir.join(name);
        if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
            .with_context(|| format!("{}: cannot remove", p.display()))?;
    }
    Ok(())
}
