//! Fairness word sets (named groups of words, optionally aligned into tuples such as
//! actor↔actress) and their mapping to vocabulary classes.

pub(crate) mod classes;

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
            return Err(crate::util::fs::not_found(format!(
                "{spec}: no such word-set file (built-in sets: {})",
                BUILTIN.join(", ")
            )));
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
        let set = Self::builtin_unchecked(name)?;
        set.check_groups()?;
        Ok(set)
    }

    fn builtin_unchecked(name: &str) -> Result<Self> {
        let dir = Bundle::Benchmarks.ensure()?;
        let path = dir.join("StereoSet/data/bias_attribute_words.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let all: std::collections::HashMap<String, Vec<Vec<String>>> =
            serde_json::from_str(&text).with_context(|| format!("{}: not the bias-bench layout", path.display()))?;
        let get = |key: &str| all.get(key).cloned().with_context(|| format!("{}: no \"{key}\" list", path.display()));
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
                        if let Some(pair) = orient(&parts[0], &parts[1], &known)
                            && !tuples.contains(&pair)
                        {
                            tuples.push(pair);
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
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().replace(['\n', '\r'], " ")))?
        } else {
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().replace('\n', " ")))?
        };
        if file.group.is_empty() {
            bail!("{}: no groups", path.display());
        }
        let groups: Vec<&str> = file.group.iter().map(|g| g.name.as_str()).collect();
        for (i, t) in file.tuples.iter().enumerate() {
            if t.len() != groups.len() {
                bail!(
                    "{}: tuple {} has {} words, expected one per group ({})",
                    path.display(),
                    i + 1,
                    t.len(),
                    groups.len()
                );
            }
        }
        let name =
            file.name.clone().unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().to_string());
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
        set.check_groups().with_context(|| path.display().to_string())?;
        Ok(set)
    }

    /// Group names must be distinct (results are keyed by them: a repeated name hides a
    /// group) and no word may belong to two groups (its class would count for neither).
    /// Names are quoted through `one_line`: they come from the user's file and may hold newlines.
    pub fn check_groups(&self) -> Result<()> {
        use crate::util::text::one_line;
        for (i, g) in self.groups.iter().enumerate() {
            if self.groups[..i].contains(g) {
                bail!(
                    "word set {}: group \"{}\" is named twice; group names must differ",
                    one_line(&self.name),
                    one_line(g)
                );
            }
        }
        let mut owner: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (g, words) in self.words.iter().enumerate() {
            for w in words {
                if let Some(&first) = owner.get(w.as_str()).filter(|&&first| first != g) {
                    bail!(
                        "word set {}: word \"{}\" is in groups \"{}\" and \"{}\"; a word may belong to one group only",
                        one_line(&self.name),
                        one_line(w),
                        one_line(&self.groups[first]),
                        one_line(&self.groups[g])
                    );
                }
                owner.insert(w, g);
            }
        }
        Ok(())
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
        "woman", "women", "girl", "ess", "mother", "wife", "daughter", "sister", "queen", "lady", "ladies", "she",
        "her", "aunt",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<WordSet> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.toml");
        std::fs::write(&path, toml_text).unwrap();
        WordSet::from_file(&path)
    }

    /// The word-set example in the README, exactly as printed there: the TOML block that
    /// follows "Word sets:" in the `collapse` section.
    fn readme_example() -> String {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
        let after = &readme[readme.find("Word sets:").expect("README has a \"Word sets:\" paragraph")..];
        let block = &after[after.find("```toml\n").expect("a ```toml block after \"Word sets:\"") + 8..];
        block[..block.find("```").expect("the block ends")].to_string()
    }

    #[test]
    fn the_readme_example_parses_with_its_tuples() {
        let set =
            parse(&readme_example()).unwrap_or_else(|e| panic!("the README's word-set example is refused: {e:#}"));
        assert_eq!(set.name, "pronouns");
        assert_eq!(set.groups, ["male", "female"]);
        assert_eq!(set.tuples, [["he", "she"], ["his", "her"]]);
        assert_eq!(set.words, [vec!["he", "his", "him"], vec!["she", "her"]]);
    }

    #[test]
    fn the_builtin_sets_have_distinct_groups_and_no_shared_word() {
        for name in BUILTIN {
            let set = WordSet::builtin(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(set.words.iter().all(|w| !w.is_empty()), "{name}");
        }
    }

    #[test]
    fn a_repeated_group_name_is_refused() {
        let err = parse("name = \"s\"\n[[group]]\nname = \"male\"\nwords = [\"he\"]\n[[group]]\nname = \"male\"\nwords = [\"she\"]\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("word set s: group \"male\" is named twice"), "{msg}");
        assert!(msg.contains("set.toml"), "{msg}");
    }

    #[test]
    fn a_word_in_two_groups_is_refused() {
        let err = parse("name = \"s\"\n[[group]]\nname = \"male\"\nwords = [\"he\", \"they\"]\n[[group]]\nname = \"female\"\nwords = [\"she\", \"they\"]\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("word set s: word \"they\" is in groups \"male\" and \"female\""), "{msg}");
        // Through a tuple too: tuple words join their groups.
        let err = parse("name = \"s\"\ntuples = [[\"he\", \"she\"], [\"she\", \"he\"]]\n[[group]]\nname = \"male\"\n[[group]]\nname = \"female\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("is in groups \"male\" and \"female\""), "{err:#}");
    }
}
