//! WinoBias sentences (`WinoBias/data/*_stereotyped_type*.txt.{dev,test}` of the benchmark bundle):
//! "1 [The developer] argued with the designer because [he] did not like the design." — the
//! bracketed pronoun is the gendered word ASE-style training masks.

use super::Bundle;
use anyhow::{Context, Result, bail};

const PRONOUNS: [&str; 7] = ["he", "she", "him", "her", "his", "hers", "himself"];

/// A sentence without brackets and the byte span of its gendered pronoun.
#[derive(Debug, Clone, PartialEq)]
pub struct PronounSentence {
    pub text: String,
    pub pronoun: (usize, usize),
}

/// Parses one line; None when it has no bracketed pronoun.
pub fn parse_line(line: &str) -> Option<PronounSentence> {
    let body = line
        .trim()
        .split_once(' ')
        .map(|(n, rest)| if n.chars().all(|c| c.is_ascii_digit()) { rest } else { line.trim() })
        .unwrap_or(line.trim());
    let mut text = String::with_capacity(body.len());
    let mut span = None;
    let mut rest = body;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let close = rest[open..].find(']')? + open;
        let inner = &rest[open + 1..close];
        if span.is_none() && PRONOUNS.contains(&inner.to_lowercase().as_str()) {
            span = Some((text.len(), text.len() + inner.len()));
        }
        text.push_str(inner);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    span.map(|pronoun| PronounSentence { text, pronoun })
}

/// The splits ASE-style training reads: the release's ASE (Fairness-NC `ase/`, from BERT-ASE)
/// reads the type-1 `.txt.test` files in `finetune_both_nc.py` and ships `{pro,anti}{1,2}comb.txt`,
/// each the dev file followed by the test file; the bundle has both splits of all four files.
pub const SPLITS: [&str; 2] = ["dev", "test"];

/// The four WinoBias files (pro/anti, type 1/2).
pub const KINDS: [&str; 4] =
    ["pro_stereotyped_type1", "pro_stereotyped_type2", "anti_stereotyped_type1", "anti_stereotyped_type2"];

/// The sentences of every file in [`KINDS`] and split in [`SPLITS`], dev before test as in the
/// release's `*comb.txt`.
pub fn sentences() -> Result<Vec<PronounSentence>> {
    let dir = Bundle::Benchmarks.ensure()?.join("WinoBias/data");
    let mut out = Vec::new();
    for kind in KINDS {
        for split in SPLITS {
            out.extend(read_file(&dir.join(format!("{kind}.txt.{split}")))?);
        }
    }
    if out.is_empty() {
        bail!("{}: no WinoBias sentence with a bracketed pronoun", dir.display());
    }
    Ok(out)
}

/// The sentences of one WinoBias file that have a bracketed pronoun.
pub fn read_file(path: &std::path::Path) -> Result<Vec<PronounSentence>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_go_and_the_pronoun_span_stays() {
        let s =
            parse_line("2 The developer argued with [the designer] because [her] idea cannot be implemented.").unwrap();
        assert_eq!(s.text, "The developer argued with the designer because her idea cannot be implemented.");
        assert_eq!(&s.text[s.pronoun.0..s.pronoun.1], "her");
        assert!(parse_line("3 [The mechanic] gave the clerk a present.").is_none());
    }
}
