//! The sentences the projection methods encode, built from the bundle's text in place of
//! bias-bench's Wikipedia sample (which fairnc does not have).
//!
//! - SentenceDebias: every text holding an attribute word becomes one tuple of counterfactuals,
//!   one per group, each with *every* attribute word of the text set to that group's word of its
//!   tuple (the CDA swap of [`crate::train::cda`], case kept). bias-bench instead makes one tuple
//!   per attribute word type found, swapping only that word, in lower-cased text split on spaces.
//! - INLP: bias-bench's selection — lines shuffled (seeded), texts of fewer than 5
//!   space-separated words skipped, a text holding words of one group only is that group's
//!   (clipped after a random word at or after the attribute word), a text with none is neutral
//!   (clipped to a random 4.. words), a text mixing groups is skipped, duplicates are dropped, at
//!   most `per_class` of each. Words are matched with their surrounding punctuation stripped
//!   (bias-bench's split on spaces misses "he," and "her.").

use crate::train::cda::counterfactual;
use crate::util::rng::SplitMix;
use crate::words::WordSet;
use std::collections::{HashMap, HashSet};

/// Lower-case attribute word → the word of group `g` of the first tuple naming it.
fn table_to_group(set: &WordSet, g: usize) -> HashMap<String, String> {
    let mut table = HashMap::new();
    for t in &set.tuples {
        for w in t {
            table.entry(w.to_lowercase()).or_insert_with(|| t[g].to_lowercase());
        }
    }
    table
}

/// One tuple of counterfactuals (one text per group, in group order) per text holding an
/// attribute word.
pub fn counterfactual_tuples(texts: &[String], set: &WordSet) -> Vec<Vec<String>> {
    let k = set.tuples.first().map_or(0, Vec::len);
    let tables: Vec<_> = (0..k).map(|g| table_to_group(set, g)).collect();
    texts
        .iter()
        .filter_map(|t| tables.iter().map(|table| counterfactual(t, table)).collect::<Option<Vec<String>>>())
        // A text whose variants are all the same (no word changed) says nothing about the bias.
        .filter(|v| v.iter().any(|s| s != &v[0]))
        .collect()
}

/// INLP's labelled sentences: `classes[c]` holds the sentences of class c — for two groups
/// (gender) male = 1, female = 0, neutral = −1 as bias-bench labels them; for more groups (race,
/// religion) bias = 1 and neutral = 0.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LabelledSentences {
    pub sentences: Vec<String>,
    pub labels: Vec<i64>,
}

impl LabelledSentences {
    pub fn count(&self, label: i64) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }
}

fn core(word: &str) -> String {
    word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '\'')).to_lowercase()
}

pub fn inlp_sentences(texts: &[String], set: &WordSet, per_class: usize, seed: u64) -> LabelledSentences {
    let binary = set.groups.len() == 2;
    // Gender: group 0 (male) and group 1 (female); race/religion: any group's word.
    let group_of: HashMap<String, usize> = {
        let mut m = HashMap::new();
        for (g, words) in set.words.iter().enumerate() {
            for w in words {
                m.entry(w.to_lowercase()).or_insert(if binary { g } else { 0 });
            }
        }
        m
    };
    let mut order: Vec<usize> = (0..texts.len()).collect();
    let mut rng = SplitMix::new(seed);
    rng.shuffle(&mut order);
    let (neutral_label, class_label) = if binary { (-1, [1i64, 0]) } else { (0, [1, 1]) };
    let mut seen: HashSet<&str> = HashSet::new();
    let mut counts: HashMap<i64, usize> = HashMap::new();
    let mut out = LabelledSentences::default();
    for i in order {
        let text = texts[i].trim();
        let tokens: Vec<String> = text.split(' ').map(str::to_lowercase).collect();
        if tokens.len() < 5 {
            continue;
        }
        let mut found = [false, false];
        let mut idx = 0;
        for (j, t) in tokens.iter().enumerate() {
            if let Some(&g) = group_of.get(&core(t)) {
                if !found[g] {
                    idx = j;
                }
                found[g] = true;
            }
        }
        let label = match found {
            [false, false] => neutral_label,
            [true, false] => class_label[0],
            [false, true] => class_label[1],
            [true, true] => continue,
        };
        let n = counts.entry(label).or_default();
        if *n >= per_class {
            continue;
        }
        let clipped = if label == neutral_label {
            // randint(4, len) words.
            let keep = 4 + rng.below(tokens.len() - 4 + 1);
            tokens[..keep].join(" ")
        } else {
            if !seen.insert(text) {
                continue;
            }
            // tokens[: randint(idx, len) + 1].
            let keep = idx + rng.below(tokens.len() - idx + 1) + 1;
            tokens[..keep.min(tokens.len())].join(" ")
        };
        *n += 1;
        out.sentences.push(clipped);
        out.labels.push(label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WordSet {
        WordSet {
            name: "g".into(),
            groups: vec!["male".into(), "female".into()],
            words: vec![vec!["he".into(), "his".into()], vec!["she".into(), "her".into()]],
            tuples: vec![vec!["he".into(), "she".into()], vec!["his".into(), "her".into()]],
        }
    }

    #[test]
    fn tuples_set_every_word_to_each_group() {
        let t = counterfactual_tuples(&["She said his book was fine.".into(), "It rained.".into()], &set());
        assert_eq!(t, vec![vec!["He said his book was fine.".to_string(), "She said her book was fine.".to_string()]]);
    }

    #[test]
    fn inlp_labels_male_female_and_neutral_and_skips_mixed_texts() {
        let texts: Vec<String> = [
            "yesterday he went to the market, alone",
            "yesterday she went to the market, alone",
            "yesterday he and she went to the market",
            "the market was busy in the morning",
            "too short",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = inlp_sentences(&texts, &set(), 10, 0);
        assert_eq!((s.count(1), s.count(0), s.count(-1)), (1, 1, 1), "{s:?}");
        for (t, l) in s.sentences.iter().zip(&s.labels) {
            assert!(t.split(' ').count() >= if *l == -1 { 4 } else { 2 }, "{t}");
        }
    }
}
