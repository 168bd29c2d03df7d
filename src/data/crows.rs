//! CrowS-Pairs rows (`crows_pairs_anonymized.csv` of the benchmark bundle).

use super::Bundle;
use anyhow::{Context, Result, bail};
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize)]
pub struct CrowsPair {
    /// The row's index (first, unnamed column).
    pub index: usize,
    pub sent_more: String,
    pub sent_less: String,
    /// true for `stereo` rows, false for `antistereo`.
    pub stereo: bool,
    pub bias_type: String,
}

impl CrowsPair {
    /// (sent1, sent2): sent1 is the more stereotypical sentence of a `stereo` row and the
    /// less stereotypical one of an `antistereo` row, as bias-bench and Nangia et al. read them.
    pub fn ordered(&self) -> (&str, &str) {
        if self.stereo { (&self.sent_more, &self.sent_less) } else { (&self.sent_less, &self.sent_more) }
    }
}

pub struct CrowsData {
    pub pairs: Vec<CrowsPair>,
    /// Rows that could not be read, with the reason.
    pub malformed: Vec<String>,
}

pub fn default_path() -> Result<std::path::PathBuf> {
    Ok(Bundle::Benchmarks.ensure()?.join("CrowS-Pairs/data/crows_pairs_anonymized.csv"))
}

pub fn read(path: &Path) -> Result<CrowsData> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let headers = rdr.headers().with_context(|| format!("{}: no header row", path.display()))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| format!("{}: no column \"{name}\"", path.display()))
    };
    let (more, less, dir, bias) = (col("sent_more")?, col("sent_less")?, col("stereo_antistereo")?, col("bias_type")?);
    let mut pairs = Vec::new();
    let mut malformed = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                malformed.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let get = |i: usize| rec.get(i).map(str::trim).filter(|s| !s.is_empty());
        let index = rec.get(0).and_then(|s| s.trim().parse().ok()).unwrap_or(n);
        match (get(more), get(less), get(dir), get(bias)) {
            (Some(_), Some(_), Some(d @ ("stereo" | "antistereo")), Some(b)) => pairs.push(CrowsPair {
                index,
                sent_more: universal_newlines(rec.get(more).unwrap()),
                sent_less: universal_newlines(rec.get(less).unwrap()),
                stereo: d == "stereo",
                bias_type: b.to_string(),
            }),
            _ => {
                malformed.push(format!("line {line}: missing sentence, direction or bias type"));
            }
        }
    }
    if pairs.is_empty() {
        bail!("{}: no readable CrowS-Pairs rows", path.display());
    }
    Ok(CrowsData { pairs, malformed })
}

/// The bundle's CSV has CRLF line ends, also inside one quoted field (row 1293). bias-bench
/// and Nangia et al. read it with Python's universal newlines, which turn them into "\n";
/// byte-level BPE tokenizers (GPT-2) see the difference.
fn universal_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}
