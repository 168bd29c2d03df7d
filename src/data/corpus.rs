//! Text corpora for statistics and training: a text file (one text per line) or a bundled
//! dataset (`bug`, `gap`, `bold`), with a deterministic statistics / held-out split.

use super::Bundle;
use anyhow::{Context, Result, bail};
use std::path::Path;

pub const BUNDLED: [&str; 3] = ["bug", "gap", "bold"];

#[derive(Debug, Clone)]
pub struct Corpus {
    pub name: String,
    pub texts: Vec<String>,
}

impl Corpus {
    /// `bug` (BUG's 105k sentences), `gap` (GAP's Wikipedia passages), `bold` (BOLD's Wikipedia
    /// sentences) or a text file with one text per line (empty lines skipped).
    pub fn load(spec: &str) -> Result<Self> {
        let texts = match spec {
            "bug" => {
                let path = Bundle::Benchmarks.ensure()?.join("BUG/data/full_BUG.csv");
                read_csv_column(&path, b',', "sentence_text")?
            }
            "gap" => {
                let dir = Bundle::Benchmarks.ensure()?.join("GAP/data");
                let mut all = Vec::new();
                for f in ["gap-development.tsv", "gap-validation.tsv", "gap-test.tsv"] {
                    all.extend(read_csv_column(&dir.join(f), b'\t', "Text")?);
                }
                all
            }
            "bold" => {
                let dir = Bundle::Benchmarks.ensure()?.join("BOLD/data/wikipedia");
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .with_context(|| format!("{}: cannot list", dir.display()))?
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect();
                files.sort();
                let mut all = Vec::new();
                for f in files {
                    let text = std::fs::read_to_string(&f).with_context(|| format!("{}: cannot read", f.display()))?;
                    let v: serde_json::Value =
                        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", f.display()))?;
                    collect_strings(&v, &mut all);
                }
                all
            }
            path => {
                let p = Path::new(path);
                if !p.exists() {
                    return Err(crate::util::fs::not_found(format!(
                        "{path}: no such corpus file (bundled corpora: {})",
                        BUNDLED.join(", ")
                    )));
                }
                let text = std::fs::read_to_string(p).with_context(|| format!("{path}: cannot read as UTF-8 text"))?;
                text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
            }
        };
        if texts.is_empty() {
            bail!("{spec}: the corpus is empty");
        }
        Ok(Corpus { name: spec.to_string(), texts })
    }

    /// An evenly spread, deterministic subset of at most `n` texts.
    pub fn subsample(mut self, n: Option<usize>) -> Self {
        if let Some(n) = n.filter(|&n| n < self.texts.len()) {
            let len = self.texts.len();
            self.texts = (0..n).map(|j| self.texts[j * len / n].clone()).collect();
        }
        self
    }

    /// Whether text `i` belongs to the held-out part for a held-out fraction `f`: every
    /// 1/f-th text (for f = 0.2, texts 4, 9, 14, ...).
    pub fn is_heldout(i: usize, f: f64) -> bool {
        ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
    }
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

/// One column of a delimited file with a header row; rows that do not parse or lack the
/// column are skipped and counted on stderr.
pub fn read_csv_column(path: &Path, delimiter: u8, column: &str) -> Result<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(delimiter == b',')
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("{}: cannot open", path.display()))?;
    let headers = rdr.headers().with_context(|| format!("{}: no header row", path.display()))?.clone();
    let Some(col) = headers.iter().position(|h| h == column) else {
        bail!(
            "{}: no column \"{column}\" (columns: {})",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(", ")
        );
    };
    let mut out = Vec::new();
    let mut bad = 0;
    for rec in rdr.records() {
        match rec.ok().and_then(|r| r.get(col).map(str::to_string)) {
            Some(t) if !t.trim().is_empty() => out.push(t),
            _ => bad += 1,
        }
    }
    if bad > 0 {
        crate::util::progress::background()
            .message(&format!("warning: {}: skipped {bad} malformed or empty rows", path.display()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heldout_split_takes_every_fifth_text() {
        let held: Vec<usize> = (0..20).filter(|&i| Corpus::is_heldout(i, 0.2)).collect();
        assert_eq!(held, vec![4, 9, 14, 19]);
        assert!((0..100).all(|i| !Corpus::is_heldout(i, 0.0)));
    }
}
