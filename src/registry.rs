//! Model names → checkpoint directories: `minilm` (the fetched default), `minilm-mlm` (built
//! from it on first use), a local path, or
//! `hf:ORG/NAME` from the local Hugging Face cache (downloaded from the hub when reachable).
//!
//! Above both `model` and `train`: resolving `minilm-mlm` may train it (`train::adapt`), so
//! the model layer itself never reaches up into training.

use crate::data::Bundle;
use crate::model::{LanguageModel, LoadOptions};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// The name of the embedded default model.
pub const DEFAULT_MODEL: &str = "minilm";
/// The default masked LM: `minilm` adapted by masked-LM training, built locally and cached.
pub const DEFAULT_MASKED_LM: &str = "minilm-mlm";

/// Resolves `name` and loads the model, recording `name` as [`LanguageModel::name`].
pub fn load(name: &str, opts: &LoadOptions) -> Result<LanguageModel> {
    let mut model = crate::util::device::load(&resolve(name)?, opts)?;
    model.name = name.to_string();
    Ok(model)
}

/// The checkpoint directory of a model name.
pub fn resolve(name: &str) -> Result<PathBuf> {
    if name == DEFAULT_MODEL {
        return Bundle::Minilm.ensure();
    }
    if name == DEFAULT_MASKED_LM {
        return ensure_minilm_mlm();
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
    Err(crate::util::fs::not_found(format!(
        "{name}: no such model directory (models are `{DEFAULT_MODEL}`, `{DEFAULT_MASKED_LM}`, a local directory, or hf:ORG/NAME)"
    )))
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

fn resolve_hf(spec: &str) -> Result<PathBuf> {
    // `hf:ORG/NAME@REVISION` pins a branch, tag or commit; without one the hub's `main`.
    let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let part_ok = |p: &str| {
        !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if repo.split('/').count() > 2 || !repo.split('/').all(part_ok) || !part_ok(revision) {
        bail!("hf:{spec}: not a repository name (expected hf:ORG/NAME, hf:NAME, optionally @REVISION)");
    }
    let cache = hf_cache_dir();
    if revision == "main"
        && let Some(dir) = cached_snapshot(&cache, repo)
    {
        return Ok(dir);
    }
    let folder =
        if revision == "main" { repo.replace('/', "--") } else { format!("{}@{revision}", repo.replace('/', "--")) };
    let ours = crate::data::home().join("hf").join(folder);
    if ours.join(SNAPSHOT_RECORD).exists() {
        check_snapshot_sizes(&ours).with_context(|| format!("hf:{spec}"))?;
        return Ok(ours);
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    download_from_hub(&endpoint, repo, revision, &ours).map_err(|e| {
        anyhow!(
            "hf:{spec}: not in the Hugging Face cache ({}) and not downloadable: {e:#}. \
             Point HF_HUB_CACHE at a cache holding it, or pass the checkpoint directory",
            cache.display()
        )
    })?;
    Ok(ours)
}

/// What a download from the hub fetched: the commit every file came from (resolved once, so
/// that a push during the download cannot mix two versions) and each file's size and sha256.
const SNAPSHOT_RECORD: &str = "fairnc-snapshot.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotRecord {
    repo: String,
    /// What was asked for (`main`, a tag, a commit).
    requested: String,
    /// The commit sha the hub resolved it to.
    revision: String,
    files: Vec<SnapshotFile>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    name: String,
    bytes: u64,
    sha256: String,
}

/// The sizes of a downloaded snapshot still match its record (cheap: no hashing).
fn check_snapshot_sizes(dir: &Path) -> Result<()> {
    let path = dir.join(SNAPSHOT_RECORD);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let record: SnapshotRecord =
        serde_json::from_str(&text).with_context(|| format!("{}: not a snapshot record", path.display()))?;
    for f in &record.files {
        let file = dir.join(&f.name);
        let bytes = std::fs::metadata(&file).map(|m| m.len()).ok();
        if bytes != Some(f.bytes) {
            bail!(
                "{}: {} bytes, but revision {} recorded {}; delete {} to download it again",
                file.display(),
                bytes.map_or("missing, not".to_string(), |b| b.to_string()),
                record.revision,
                f.bytes,
                dir.display()
            );
        }
    }
    Ok(())
}

/// The commit sha the hub gives for `revision` (a branch, tag or sha).
fn resolve_revision(endpoint: &str, repo: &str, revision: &str, scratch: &Path) -> Result<String> {
    let path = scratch.join(".revision.json");
    let url = format!("{endpoint}/api/models/{repo}/revision/{revision}");
    crate::data::download::download(&url, &path, None, "revision").context("cannot resolve the revision")?;
    let text = std::fs::read_to_string(&path)?;
    let _ = std::fs::remove_file(&path);
    let info: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{url}: not JSON"))?;
    let sha = info.get("sha").and_then(|s| s.as_str()).with_context(|| format!("{url}: no \"sha\""))?;
    if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{url}: \"sha\" {sha:?} is not a commit sha");
    }
    Ok(sha.to_ascii_lowercase())
}

/// Downloads a checkpoint at one pinned commit into a staging directory beside `dest`,
/// records the commit and every file's sha256, then moves it into place.
fn download_from_hub(endpoint: &str, repo: &str, revision: &str, dest: &Path) -> Result<()> {
    let parent = dest.parent().context("destination has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let staging = crate::util::fs::temp_sibling(dest);
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("{}: cannot create", staging.display()))?;
    let result = fetch_files(endpoint, repo, revision, &staging).and_then(|record| {
        let text = serde_json::to_string_pretty(&record)?;
        crate::util::fs::write_atomic(&staging.join(SNAPSHOT_RECORD), text.as_bytes())?;
        if dest.exists() {
            std::fs::remove_dir_all(dest).with_context(|| format!("{}: cannot replace", dest.display()))?;
        }
        std::fs::rename(&staging, dest).with_context(|| format!("{}: cannot move into place", dest.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn fetch_files(endpoint: &str, repo: &str, revision: &str, dir: &Path) -> Result<SnapshotRecord> {
    let sha = resolve_revision(endpoint, repo, revision, dir)?;
    let mut fetched: Vec<String> = Vec::new();
    let mut get = |file: &str| -> Result<()> {
        let url = format!("{endpoint}/{repo}/resolve/{sha}/{file}");
        crate::data::download::download(&url, &dir.join(file), None, file)?;
        fetched.push(file.to_string());
        Ok(())
    };
    get("config.json")?;
    // safetensors first; PyTorch's .bin only where a repository has nothing else (its pickle
    // is vetted when the model loads, not here).
    let weights =
        [("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json")];
    let mut found = false;
    for (single, index) in weights {
        if get(single).is_ok() {
            found = true;
            break;
        }
        if get(index).is_ok() {
            let text = std::fs::read_to_string(dir.join(index))?;
            // The names come from the network: only plain file names beside the index.
            let shards = crate::model::weights::index_shards(&text).context(index)?;
            for s in shards {
                get(&s)?;
            }
            found = true;
            break;
        }
    }
    if !found {
        bail!("no model.safetensors, pytorch_model.bin or index of either");
    }
    let mut have_tokenizer = get("tokenizer.json").is_ok();
    have_tokenizer |= get("vocab.txt").is_ok();
    have_tokenizer |= get("vocab.json").is_ok() && get("merges.txt").is_ok();
    if !have_tokenizer {
        bail!("no tokenizer files");
    }
    let _ = get("tokenizer_config.json");
    let _ = get("special_tokens_map.json");
    let files = fetched
        .iter()
        .map(|name| {
            let path = dir.join(name);
            Ok(SnapshotFile {
                name: name.clone(),
                bytes: std::fs::metadata(&path).with_context(|| format!("{}: cannot stat", path.display()))?.len(),
                sha256: crate::data::download::sha256_file(&path)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SnapshotRecord { repo: repo.to_string(), requested: revision.to_string(), revision: sha, files })
}

/// The cache directory of `minilm-mlm`.
pub fn minilm_mlm_dir() -> PathBuf {
    crate::data::home().join("models").join("minilm-mlm")
}

/// A cached build from another recipe stays in use (results cite it), with a warning once.
fn warn_if_old_recipe(report: &Path) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let built = std::fs::read_to_string(report)
        .ok()
        .and_then(|t| serde_json::from_str::<crate::train::adapt::AdaptReport>(&t).ok());
    if built.is_none_or(|r| r.config != crate::train::adapt::AdaptConfig::default()) {
        WARNED.call_once(|| {
            crate::util::progress::background().message(&format!(
                "warning: the cached minilm-mlm ({}) was built with another recipe than this version's; remove its directory to rebuild",
                report.parent().unwrap_or(report).display()
            ))
        });
    }
}

/// The `minilm-mlm` checkpoint directory, built on first use (about 31 minutes on 2 cores).
pub fn ensure_minilm_mlm() -> Result<PathBuf> {
    let root = minilm_mlm_dir();
    let model = root.join("model");
    if root.join("adapt.json").exists() && model.join("config.json").exists() {
        warn_if_old_recipe(&root.join("adapt.json"));
        return Ok(model);
    }
    // First-use work, below whichever stage asked for the name: it reports to the process-wide
    // receiver, not to that stage's caller.
    let progress = crate::util::progress::background();
    progress.message(&format!(
        "building minilm-mlm (masked-LM training of minilm on GAP, BOLD and BUG text; cached in {}) ...",
        root.display()
    ));
    let base = crate::data::Bundle::Minilm.ensure()?;
    let report =
        crate::train::adapt::adapt("minilm", &base, &crate::train::adapt::AdaptConfig::default(), &root, progress)?;
    progress.message(&format!(
        "minilm-mlm: held-out masked-token accuracy {:.1}% ({:.1}% before), built in {:.0} s",
        report.heldout_accuracy * 100.0,
        report.heldout_accuracy_before * 100.0,
        report.seconds
    ));
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};

    /// A hub on 127.0.0.1 serving fixed paths (404 for the rest); returns its endpoint and
    /// the paths it was asked for.
    fn fake_hub(files: HashMap<String, Vec<u8>>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path.clone());
                // A hostile hub serves whatever name its index gave.
                let (status, body) = match files.get(&path) {
                    Some(b) => ("200 OK", b.clone()),
                    None if path.ends_with("escaped.safetensors") => ("200 OK", b"written outside".to_vec()),
                    None => ("404 Not Found", b"not found".to_vec()),
                };
                let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (endpoint, asked)
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn hub_with_index(weight_map: serde_json::Value) -> HashMap<String, Vec<u8>> {
        let at = |f: &str| format!("/org/m/resolve/{SHA}/{f}");
        HashMap::from([
            ("/api/models/org/m/revision/main".to_string(), format!("{{\"sha\": \"{SHA}\"}}").into_bytes()),
            (at("config.json"), b"{}".to_vec()),
            (
                at("model.safetensors.index.json"),
                serde_json::json!({ "weight_map": weight_map }).to_string().into_bytes(),
            ),
            (at("model-1.safetensors"), b"shard one".to_vec()),
            (at("vocab.txt"), b"[PAD]\n".to_vec()),
        ])
    }

    #[test]
    fn an_index_naming_a_path_outside_the_snapshot_is_refused_before_fetching_it() {
        for bad in ["../../escaped.safetensors", "/tmp/escaped.safetensors", "sub/x.safetensors", "..\\x.safetensors"] {
            let (endpoint, asked) = fake_hub(hub_with_index(serde_json::json!({"a": "model-1.safetensors", "b": bad})));
            let home = tempfile::tempdir().unwrap();
            let dest = home.path().join("hf").join("org--m");
            let e = format!("{:#}", download_from_hub(&endpoint, "org/m", "main", &dest).unwrap_err());
            assert!(e.contains("\"weight_map\" entry b") && e.contains("is not a plain file name"), "{bad}: {e}");
            assert!(!dest.exists(), "{bad}: a refused download left {}", dest.display());
            // Nothing was asked for under the bad name, and nothing but the temp home was written.
            assert!(
                asked.lock().unwrap().iter().all(|p| !p.contains("escaped") && !p.contains("sub/")),
                "{:?}",
                asked.lock().unwrap()
            );
            let entries: Vec<_> = std::fs::read_dir(home.path().join("hf")).unwrap().collect();
            assert!(entries.is_empty(), "{bad}: left {entries:?}");
            let top: Vec<_> = std::fs::read_dir(home.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(top, ["hf"], "{bad}: wrote beside the snapshot folder");
            assert!(!Path::new("/tmp/escaped.safetensors").exists(), "{bad}: wrote /tmp/escaped.safetensors");
        }
    }

    #[test]
    fn a_download_is_pinned_to_one_commit_and_records_each_files_sha256() {
        let (endpoint, asked) = fake_hub(hub_with_index(serde_json::json!({"a": "model-1.safetensors"})));
        let home = tempfile::tempdir().unwrap();
        let dest = home.path().join("hf").join("org--m");
        download_from_hub(&endpoint, "org/m", "main", &dest).unwrap();
        // Only the revision lookup names `main`; every file comes from the resolved commit.
        for path in asked.lock().unwrap().iter() {
            assert!(
                path == "/api/models/org/m/revision/main" || path.starts_with(&format!("/org/m/resolve/{SHA}/")),
                "{path}"
            );
        }
        let record: SnapshotRecord =
            serde_json::from_str(&std::fs::read_to_string(dest.join(SNAPSHOT_RECORD)).unwrap()).unwrap();
        assert_eq!((record.repo.as_str(), record.requested.as_str(), record.revision.as_str()), ("org/m", "main", SHA));
        let shard = record.files.iter().find(|f| f.name == "model-1.safetensors").expect("shard recorded");
        // sha256 of b"shard one", computed independently (`printf 'shard one' | sha256sum`).
        assert_eq!(shard.sha256, "96af8b4933b944bc61107844c9cd0e6986f4add076f2db54982e868cf0630c96");
        assert_eq!(shard.bytes, 9);
        let names: Vec<&str> = record.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["config.json", "model.safetensors.index.json", "model-1.safetensors", "vocab.txt"]);
        check_snapshot_sizes(&dest).unwrap();
        // A file damaged later is found by its size.
        std::fs::write(dest.join("model-1.safetensors"), b"shard").unwrap();
        let e = format!("{:#}", check_snapshot_sizes(&dest).unwrap_err());
        assert!(e.contains("model-1.safetensors: 5 bytes, but revision") && e.contains("recorded 9"), "{e}");
    }

    #[test]
    fn a_repository_with_only_pytorch_weights_is_fetched_with_them() {
        let at = |f: &str| format!("/org/m/resolve/{SHA}/{f}");
        let (endpoint, _) = fake_hub(HashMap::from([
            ("/api/models/org/m/revision/main".to_string(), format!("{{\"sha\": \"{SHA}\"}}").into_bytes()),
            (at("config.json"), b"{}".to_vec()),
            (at("pytorch_model.bin"), b"zip".to_vec()),
            (at("tokenizer.json"), b"{}".to_vec()),
        ]));
        let home = tempfile::tempdir().unwrap();
        let dest = home.path().join("hf").join("org--m");
        download_from_hub(&endpoint, "org/m", "main", &dest).unwrap();
        let record: SnapshotRecord =
            serde_json::from_str(&std::fs::read_to_string(dest.join(SNAPSHOT_RECORD)).unwrap()).unwrap();
        let names: Vec<&str> = record.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["config.json", "pytorch_model.bin", "tokenizer.json"]);
    }

    #[test]
    fn a_revision_that_is_not_a_commit_sha_is_refused() {
        let mut files = hub_with_index(serde_json::json!({"a": "model-1.safetensors"}));
        files.insert("/api/models/org/m/revision/main".into(), b"{\"sha\": \"../../x\"}".to_vec());
        let (endpoint, _) = fake_hub(files);
        let home = tempfile::tempdir().unwrap();
        let e = format!("{:#}", download_from_hub(&endpoint, "org/m", "main", &home.path().join("m")).unwrap_err());
        assert!(e.contains("is not a commit sha"), "{e}");
    }
}
