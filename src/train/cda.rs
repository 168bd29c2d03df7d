//! Counterfactual data augmentation (METHOD §7): every text holding an attribute word is kept
//! twice, as written and with each attribute word swapped for its counterpart (two-sided:
//! he→she and she→he), keeping the word's case; texts with no attribute word are dropped.

use crate::words::WordSet;
use anyhow::{Result, bail};
use std::collections::HashMap;

/// Lower-case word → its counterpart. For tuples of more than two groups (race, religion),
/// each group's word maps to the next group's (a rotation), so one counterfactual per text.
pub fn swap_table(set: &WordSet) -> HashMap<String, String> {
    let mut table = HashMap::new();
    for t in &set.tuples {
        for (i, w) in t.iter().enumerate() {
            let other = &t[(i + 1) % t.len()];
            // The first pair naming a word decides (bias-bench lists "her" for both his and him).
            table.entry(w.to_lowercase()).or_insert_with(|| other.to_lowercase());
        }
    }
    table
}

/// `to` written in the case pattern of `from` (lower, Capitalised or UPPER).
fn match_case(from: &str, to: &str) -> String {
    if from.chars().all(|c| !c.is_alphabetic() || c.is_uppercase())
        && from.chars().filter(|c| c.is_alphabetic()).count() > 1
    {
        to.to_uppercase()
    } else if from.chars().next().is_some_and(char::is_uppercase) {
        let mut c = to.chars();
        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
    } else {
        to.to_string()
    }
}

/// The counterfactual of `text`, or None when it holds no attribute word. Words are maximal
/// runs of letters and apostrophes.
pub fn counterfactual(text: &str, table: &HashMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let mut swapped = false;
    let flush = |word: &mut String, out: &mut String, swapped: &mut bool| {
        if !word.is_empty() {
            match table.get(&word.to_lowercase()) {
                Some(to) => {
                    out.push_str(&match_case(word, to));
                    *swapped = true;
                }
                None => out.push_str(word),
            }
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_alphabetic() || c == '\'' {
            word.push(c);
        } else {
            flush(&mut word, &mut out, &mut swapped);
            out.push(c);
        }
    }
    flush(&mut word, &mut out, &mut swapped);
    swapped.then_some(out)
}

/// The augmented corpus: (original, counterfactual) of every text holding an attribute word.
pub fn augment(texts: &[String], set: &WordSet, corpus_name: &str) -> Result<Vec<(String, String)>> {
    if set.tuples.is_empty() {
        bail!(
            "CDA: word set {} has no tuples; counterfactual swaps need aligned words, one per group (tuples = [[\"he\", \"she\"], ...])",
            set.name
        );
    }
    let table = swap_table(set);
    let pairs: Vec<(String, String)> =
        texts.iter().filter_map(|t| counterfactual(t, &table).map(|c| (t.clone(), c))).collect();
    if pairs.is_empty() {
        bail!("CDA: corpus {corpus_name} has no text with a word of word set {}", set.name);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WordSet {
        WordSet {
            name: "g".into(),
            groups: vec!["male".into(), "female".into()],
            words: vec![
                vec!["he".into(), "his".into(), "actor".into()],
                vec!["she".into(), "her".into(), "actress".into()],
            ],
            tuples: vec![
                vec!["he".into(), "she".into()],
                vec!["his".into(), "her".into()],
                vec!["actor".into(), "actress".into()],
            ],
        }
    }

    #[test]
    fn swaps_both_ways_keeping_case() {
        let t = swap_table(&set());
        assert_eq!(counterfactual("He said she was HIS actor.", &t).unwrap(), "She said he was HER actress.");
        assert_eq!(counterfactual("The Actress left; her bag stayed.", &t).unwrap(), "The Actor left; his bag stayed.");
        assert_eq!(counterfactual("Nothing to see here.", &t), None);
        // Words inside other words are not touched.
        assert_eq!(counterfactual("the theme", &t), None);
    }

    #[test]
    fn augment_keeps_only_texts_with_attribute_words() {
        let texts = vec!["he runs".to_string(), "it rains".to_string(), "she reads".to_string()];
        let out = augment(&texts, &set(), "c").unwrap();
        assert_eq!(out, vec![("he runs".into(), "she runs".into()), ("she reads".into(), "he reads".into())]);
        assert!(augment(&["it rains".to_string()], &set(), "c").unwrap_err().to_string().contains("word set g"));
    }

    #[test]
    fn a_set_without_tuples_is_refused_by_name() {
        let untupled = WordSet { tuples: Vec::new(), ..set() };
        let err = augment(&["he runs".to_string()], &untupled, "c").unwrap_err().to_string();
        assert!(err.contains("word set g has no tuples"), "{err}");
    }
}
