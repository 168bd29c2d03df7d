//! Words → vocabulary classes (token ids), under the two policies of METHOD §3.

use super::WordSet;
use crate::model::TextTokenizer;
use anyhow::{Result, bail};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Only words that are one token (byte-level BPE: with a leading space) are kept.
    WholeWord,
    /// Each word maps to its first subword (the Fairness-NC release; words may merge).
    FirstSubword,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Class {
    pub id: u32,
    pub token: String,
    pub words: Vec<String>,
    /// Indices into the word set's groups.
    pub groups: Vec<usize>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Skipped {
    pub word: String,
    pub reason: String,
}

/// The classes of a word set in one vocabulary, sorted by id, with what was left out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ClassSet {
    pub name: String,
    pub group_names: Vec<String>,
    pub classes: Vec<Class>,
    pub skipped: Vec<Skipped>,
}

impl ClassSet {
    pub fn ids(&self) -> Vec<u32> {
        self.classes.iter().map(|c| c.id).collect()
    }

    /// Classes holding several words (first-subword policy), for the report.
    pub fn merged(&self) -> Vec<&Class> {
        self.classes.iter().filter(|c| c.words.len() > 1).collect()
    }

    /// The group of a class when exactly one group claims it.
    pub fn sole_group(&self, c: &Class) -> Option<usize> {
        (c.groups.len() == 1).then(|| c.groups[0])
    }

    /// Every non-special token of the vocabulary (full-vocabulary neural collapse).
    pub fn vocabulary(tok: &TextTokenizer) -> Self {
        let classes = (0..tok.vocab_size() as u32)
            .filter(|id| !tok.special_ids.contains(id))
            .map(|id| Class {
                id,
                token: tok.id_to_token(id).unwrap_or_default(),
                words: Vec::new(),
                groups: Vec::new(),
            })
            .collect();
        ClassSet { name: "vocabulary".into(), group_names: Vec::new(), classes, skipped: Vec::new() }
    }

    pub fn map(set: &WordSet, tok: &TextTokenizer, policy: Policy) -> Result<Self> {
        let byte_level = tok.space_before_words;
        let mut by_id: BTreeMap<u32, Class> = BTreeMap::new();
        let mut skipped = Vec::new();
        for (g, words) in set.words.iter().enumerate() {
            for word in words {
                let form = if byte_level { format!(" {word}") } else { word.clone() };
                let ids = tok.tokenize_plain(&form)?;
                let keep = match (policy, ids.as_slice()) {
                    (_, []) => Err("tokenizes to nothing".to_string()),
                    (_, [first, ..]) if tok.special_ids.contains(first) => Err("unknown to the vocabulary".to_string()),
                    (Policy::WholeWord, [id]) => Ok(*id),
                    (Policy::WholeWord, many) => Err(format!(
                        "splits into {} tokens ({})",
                        many.len(),
                        many.iter().map(|i| tok.id_to_token(*i).unwrap_or_default()).collect::<Vec<_>>().join(" ")
                    )),
                    (Policy::FirstSubword, [first, ..]) => Ok(*first),
                };
                match keep {
                    Ok(id) => {
                        let class = by_id.entry(id).or_insert_with(|| Class {
                            id,
                            token: tok.id_to_token(id).unwrap_or_default(),
                            words: Vec::new(),
                            groups: Vec::new(),
                        });
                        if !class.words.contains(word) {
                            class.words.push(word.clone());
                        }
                        if !class.groups.contains(&g) {
                            class.groups.push(g);
                        }
                    }
                    Err(reason) => skipped.push(Skipped { word: word.clone(), reason }),
                }
            }
        }
        if by_id.is_empty() {
            bail!(
                "word set {}: none of its words is a class of this vocabulary ({} skipped, e.g. {})",
                set.name,
                skipped.len(),
                skipped.first().map(|s| format!("{}: {}", s.word, s.reason)).unwrap_or_default()
            );
        }
        Ok(ClassSet {
            name: set.name.clone(),
            group_names: set.groups.clone(),
            classes: by_id.into_values().collect(),
            skipped,
        })
    }
}
