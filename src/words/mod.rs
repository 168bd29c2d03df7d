//! Fairness word sets (named groups of words, optionally aligned into tuples such as
//! actor↔actress) and their mapping to vocabulary classes.

pub mod classes;

pub use classes::{Class, ClassSet, Policy, Skipped};

use crate::data::Bundle;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize)]
pub struct WordSet {
    pub name: String,
    /// Group names, e.g. ["male", "female"].
    pub groups: Vec<String>,
    /// Words of each group (same order as `groups`), without duplicates.
    pub words: Vec<Vec<String>>,
    /// Aligned tuples (one word per group) for counterfactual swaps.
    pub tuples: Vec<Vec<String>>,
}

/// The built-in sets: `gender` (bias-bench's 57 pairs), `gender-large` (those plus WinoBias's
/// gendered swap lists), `race` and `religion` (bias-bench's triples). Read from the benchmark
/// bundle, which is fetched on first use.
pub const BUILTIN: [&str; 4] = ["gender", "gender-large", "race", "religion"];

impl WordSet {
    /// A built-in name or a TOML/JSON file.
    pub fn load(spec: &str) -> Result<Self> {
        if BUILTIN.contains(&spec) {
            return Self::builtin(spec);
        }
        let path = Path::new(spec);
        if !path.exists() {
            bail!("{spec}: no such word-set file (built-in sets: {})", BUILTIN.join(", "));
        }
        Self::from_file(path)
    }

    fn from_tuples(name: &str, groups: &[&str], tuples: Vec<Vec<String>>) -> Self {
        let mut words: Vec<Vec<String>> = vec![Vec::new(); groups.len()];
        for t in &tuples {
            for (g, w) in t.iter().enumerate() {
                if !words[g].contains(w) {
                    words[g].push(w.clone());
                }
            }
        }
        WordSet { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect(), words, tuples }
    }

    pub fn builtin(name: &str) -> Result<Self> {
        let dir = Bundle::Benchmarks.ensure()?;
        let path = dir.join("StereoSet/data/bias_attribute_words.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let all: std::collections::HashMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&text).with_context(|| format!("{}: not the bias-bench layout", path.display()))?;
        let get = |key: &str| {
            all.get(key).cloned().with_context(|| format!("{}: no \"{key}\" list", path.display()))
        };
        Ok(match name {
            "gender" => Self::from_tuples("gender", &["male", "female"], get("gender")?),
            "gender-large" => {
                let mut tuples = get("gender")?;
                let known: BTreeSet<String> = tuples.iter().map(|t| t[0].clone()).collect();
                for file in ["WinoBias/data/generalized_swaps.txt", "WinoBias/data/extra_gendered_words.txt"] {
                    let p = dir.join(file);
                    let text = std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display()))?;
                    for line in text.lines() {
                        let parts: Vec<String> = line.split_whitespace().map(|w| w.to_lowercase()).collect();
                        if parts.len() != 2 {
                            continue;
                        }
                        if let Some(pair) = orient(&parts[0], &parts[1], &known) {
                            if !tuples.contains(&pair) {
                                tuples.push(pair);
                            }
                        }
                    }
                }
                Self::from_tuples("gender-large", &["male", "female"], tuples)
            }
            "race" => Self::from_tuples("race", &["black", "white", "asian"], get("race")?),
            "religion" => Self::from_tuples("religion", &["jewish", "christian", "muslim"], get("religion")?),
            other => bail!("unknown built-in word set {other}"),
        })
    }

    /// A user set in TOML or JSON:
    /// `name = "..."`, `[[group]] name = "male" words = [...]`, optional `tuples = [["he", "she"]]`
    /// whose entries follow the group order (tuple words are added to their groups).
    pub fn from_file(path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Group {
            name: String,
            #[serde(default)]
            words: Vec<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: Option<String>,
            #[serde(alias = "groups")]
            group: Vec<Group>,
            #[serde(default, alias = "pairs")]
            tuples: Vec<Vec<String>>,
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let file: File = if path.extension().is_some_and(|e| e == "json") {
            // serde echoes an unknown key as written, newlines included; errors are one line.
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().replace(['\n', '\r'], " ")))?
        } else {
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().replace('\n', " ")))?
        };
        if file.group.is_empty() {
            bail!("{}: no groups", path.display());
        }
        let groups: Vec<&str> = file.group.iter().map(|g| g.name.as_str()).collect();
        for (i, t) in file.tuples.iter().enumerate() {
            if t.len() != groups.len() {
                bail!("{}: tuple {} has {} words, expected one per group ({})", path.display(), i + 1, t.len(), groups.len());
            }
        }
        let name = file.name.clone().unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().to_string());
        let mut set = Self::from_tuples(&name, &groups, file.tuples);
        for (g, group) in file.group.iter().enumerate() {
            for w in &group.words {
                if !set.words[g].contains(w) {
                    set.words[g].push(w.clone());
                }
            }
        }
        if set.words.iter().all(Vec::is_empty) {
            bail!("{}: the word set has no words", path.display());
        }
        Ok(set)
    }

    /// A stable fingerprint of the set, for shard compatibility checks.
    pub fn fingerprint(&self) -> String {
        crate::util::hash::hex_digest(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }
}

/// Orders a (male, female) pair from the WinoBias swap lists, which list both directions and
/// do not say which is which: a word already known as male (bias-bench) decides, else a
/// female marker in the word does. Pairs that cannot be oriented are dropped.
fn orient(a: &str, b: &str, known_male: &BTreeSet<String>) -> Option<Vec<String>> {
    const FEMALE: [&str; 14] = [
        "woman", "women", "girl", "ess", "mother", "wife", "daughter", "sister", "queen", "lady",
        "ladies", "she", "her", "aunt",
    ];
    let female_like = |w: &str| FEMALE.iter().any(|m| w.contains(m));
    if known_male.contains(a) || (female_like(b) && !female_like(a)) {
        Some(vec![a.to_string(), b.to_string()])
    } else if known_male.contains(b) || (female_like(a) && !female_like(b)) {
        Some(vec![b.to_string(), a.to_string()])
    } else {
        None
    }
}
