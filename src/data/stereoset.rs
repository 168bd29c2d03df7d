//! StereoSet intrasentence clusters (`test.json` / `dev.json` of the benchmark bundle).

use super::Bundle;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Label {
    Stereotype,
    AntiStereotype,
    Unrelated,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Sentence {
    pub id: String,
    pub sentence: String,
    pub gold_label: Label,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub target: String,
    pub bias_type: String,
    pub context: String,
    pub sentences: Vec<Sentence>,
}

pub struct StereoSetData {
    pub clusters: Vec<Cluster>,
    /// Clusters that could not be used, with the reason.
    pub malformed: Vec<String>,
}

pub fn default_path(split: &str) -> Result<std::path::PathBuf> {
    Ok(Bundle::Benchmarks.ensure()?.join(format!("StereoSet/data/{split}.json")))
}

pub fn read(path: &Path) -> Result<StereoSetData> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let Some(items) = v.pointer("/data/intrasentence").and_then(|x| x.as_array()) else {
        bail!("{}: no data.intrasentence list", path.display());
    };
    let mut clusters = Vec::new();
    let mut malformed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match serde_json::from_value::<Cluster>(item.clone()) {
            Ok(c) => {
                let labels: Vec<Label> = c.sentences.iter().map(|s| s.gold_label).collect();
                if !c.context.split(' ').any(|w| w.contains("BLANK")) {
                    malformed.push(format!("cluster {} ({}): context has no BLANK", i, c.id));
                } else if [Label::Stereotype, Label::AntiStereotype, Label::Unrelated]
                    .iter()
                    .any(|l| labels.iter().filter(|x| *x == l).count() != 1)
                {
                    malformed.push(format!("cluster {} ({}): not one sentence per label", i, c.id));
                } else {
                    clusters.push(c);
                }
            }
            Err(e) => malformed.push(format!("cluster {i}: {e}")),
        }
    }
    if clusters.is_empty() {
        bail!("{}: no usable intrasentence clusters", path.display());
    }
    Ok(StereoSetData { clusters, malformed })
}
