//! Model names → checkpoint directories: `minilm` (the fetched default), `minilm-mlm` (built
//! from it on first use), a local path, or
//! `hf:ORG/NAME` from the local Hugging Face cache (downloaded from the hub when reachable).

use crate::data::Bundle;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// The name of the embedded default model.
pub const DEFAULT_MODEL: &str = "minilm";
/// The default masked LM: `minilm` adapted by masked-LM training, built locally and cached.
pub const DEFAULT_MASKED_LM: &str = "minilm-mlm";

pub fn resolve(name: &str) -> Result<PathBuf> {
    if name == DEFAULT_MODEL {
        return Bundle::Minilm.ensure();
    }
    if name == DEFAULT_MASKED_LM {
        return crate::train::adapt::ensure_minilm_mlm();
    }
    if let Some(repo) = name.strip_prefix("hf:") {
        return resolve_hf(repo);
    }
    let path = PathBuf::from(name);
    if path.is_dir() {
        return Ok(path);
    }
    if path.exists() {
        bail!("{name}: is a file; a model is a checkpoint directory (config.json, model.safetensors, tokenizer files)");
    }
    bail!("{name}: no such model directory (models are `{DEFAULT_MODEL}`, `{DEFAULT_MASKED_LM}`, a local directory, or hf:ORG/NAME)")
}

fn hf_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache").join("huggingface").join("hub")
}

/// A snapshot in the Hugging Face hub cache layout:
/// `models--ORG--NAME/refs/main` names the snapshot under `models--ORG--NAME/snapshots/`.
fn cached_snapshot(cache: &Path, repo: &str) -> Option<PathBuf> {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let snapshots = root.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(root.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.join("config.json").exists() {
            return Some(dir);
        }
    }
    // No ref: take the most recently written snapshot that has a config.
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(&snapshots).ok()?.flatten() {
        let dir = entry.path();
        if !dir.join("config.json").exists() {
            continue;
        }
        let t = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
            best = Some((t, dir));
        }
    }
    best.map(|(_, d)| d)
}

fn resolve_hf(repo: &str) -> Result<PathBuf> {
    if repo.split('/').count() > 2 || repo.is_empty() || repo.contains("..") {
        bail!("hf:{repo}: not a repository name (expected hf:ORG/NAME or hf:NAME)");
    }
    let cache = hf_cache_dir();
    if let Some(dir) = cached_snapshot(&cache, repo) {
        return Ok(dir);
    }
    let ours = crate::data::home().join("hf").join(repo.replace('/', "--"));
    if ours.join(".complete").exists() {
        return Ok(ours);
    }
    download_from_hub(repo, &ours).map_err(|e| {
        anyhow!(
            "hf:{repo}: not in the Hugging Face cache ({}) and not downloadable: {e:#}. \
             Point HF_HUB_CACHE at a cache holding it, or pass the checkpoint directory",
            cache.display()
        )
    })?;
    Ok(ours)
}

fn download_from_hub(repo: &str, dest: &Path) -> Result<()> {
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = |file: &str| format!("{endpoint}/{repo}/resolve/main/{file}");
    let get = |file: &str| crate::data::download::download(&url(file), &dest.join(file), None, file);
    get("config.json")?;
    if get("model.safetensors").is_err() {
        get("model.safetensors.index.json").context("no model.safetensors or index")?;
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dest.join("model.safetensors.index.json"))?)?;
        let mut shards: Vec<String> = index["weight_map"]
            .as_object()
            .context("index has no weight_map")?
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        for s in shards {
            get(&s)?;
        }
    }
    let mut have_tokenizer = get("tokenizer.json").is_ok();
    have_tokenizer |= get("vocab.txt").is_ok();
    have_tokenizer |= get("vocab.json").is_ok() && get("merges.txt").is_ok();
    if !have_tokenizer {
        bail!("no tokenizer files");
    }
    let _ = get("tokenizer_config.json");
    let _ = get("special_tokens_map.json");
    std::fs::write(dest.join(".complete"), b"")?;
    Ok(())
}
