//! StereoSet clusters (`test.json` / `dev.json` of the benchmark bundle): the intrasentence
//! part (a context with BLANK and three fillers) and the intersentence part (a context
//! sentence and three candidate next sentences).

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

/// The two parts of a StereoSet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Intrasentence,
    Intersentence,
}

impl Part {
    pub fn key(self) -> &'static str {
        match self {
            Part::Intrasentence => "intrasentence",
            Part::Intersentence => "intersentence",
        }
    }
}

/// The intrasentence clusters of a StereoSet file.
pub fn read(path: &Path) -> Result<StereoSetData> {
    read_part(path, Part::Intrasentence)
}

/// The clusters of one part. A cluster that is not one sentence per label (or, intrasentence,
/// whose context has no BLANK; intersentence, whose context or a sentence is empty) is listed
/// in `malformed`, not used.
pub fn read_part(path: &Path, part: Part) -> Result<StereoSetData> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let key = part.key();
    let Some(items) = v.pointer(&format!("/data/{key}")).and_then(|x| x.as_array()) else {
        bail!("{}: no data.{key} list", path.display());
    };
    let mut clusters = Vec::new();
    let mut malformed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match serde_json::from_value::<Cluster>(item.clone()) {
            Ok(c) => {
                let labels: Vec<Label> = c.sentences.iter().map(|s| s.gold_label).collect();
                if part == Part::Intrasentence && !c.context.split(' ').any(|w| w.contains("BLANK")) {
                    malformed.push(format!("cluster {} ({}): context has no BLANK", i, c.id));
                } else if part == Part::Intersentence
                    && (c.context.trim().is_empty() || c.sentences.iter().any(|s| s.sentence.trim().is_empty()))
                {
                    malformed.push(format!("cluster {} ({}): empty context or sentence", i, c.id));
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
        bail!("{}: no usable {key} clusters", path.display());
    }
    Ok(StereoSetData { clusters, malformed })
}
