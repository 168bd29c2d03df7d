//! BEC-Pro association (Bartl, Nissim & Gatt 2020; docs/becpro.md): how much more likely a
//! masked LM finds the person word once it sees the profession,
//!
//!   A = log P(person | profession visible, person masked) − log P(person | both masked),
//!
//! the mean association per profession group (male-, female-dominated, balanced) and gender of
//! the person word, and the Wilcoxon signed-rank test of female against male person words'
//! associations, paired by template, profession and position in the person-word list.

use super::scoring::{Query, masked_log_probs};
use crate::data::becpro::{BecProRow, DATA_MASK};
use crate::model::LanguageModel;
use crate::util::progress::Progress;
use crate::util::wilcoxon::{Wilcoxon, wilcoxon};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the person word and the profession are masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BecProMasking {
    /// One mask per subword token of the person word and of the profession, in the tokenized
    /// sentence itself (the prior sentence keeps the real one's length); A sums over the person
    /// word's subtokens.
    #[default]
    Subword,
    /// gender-bias-BERT's procedure, to match its numbers: the file's Sent_TM / Sent_TAM (one
    /// mask per *word* of the profession), every sequence cut or padded with mask tokens (which
    /// the model attends to) to the power of two at or above the file's longest Sent_TM in
    /// words; probability of the sentence's token at the first mask only.
    Bartl,
}

impl BecProMasking {
    pub fn as_str(self) -> &'static str {
        match self {
            BecProMasking::Subword => "subword",
            BecProMasking::Bartl => "bartl",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BecProSentence {
    pub index: usize,
    pub person: String,
    pub gender: String,
    pub profession: String,
    pub prof_gender: String,
    pub template: String,
    /// log P(person | person masked), summed over the person word's subtokens.
    pub log_p_target: Option<f64>,
    /// log P(person | person and profession masked).
    pub log_p_prior: Option<f64>,
    pub association: Option<f64>,
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BecProSummary {
    /// Mean association of the male / female person words' sentences (None: no such row scored).
    pub mean_male: Option<f64>,
    pub mean_female: Option<f64>,
    pub n_male: usize,
    pub n_female: usize,
    /// Wilcoxon signed-rank test of the female − male differences of paired sentences (None
    /// when no pair has a non-zero difference).
    pub wilcoxon: Option<Wilcoxon>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BecProResult {
    /// By profession group (the file's Prof_Gender).
    pub by_group: BTreeMap<String, BecProSummary>,
    pub overall: BecProSummary,
    pub sentences: Vec<BecProSentence>,
    pub masking: BecProMasking,
    /// Rows not scored (too long, person word or profession not found in the tokens).
    pub skipped: usize,
    /// Scored rows without a scored partner of the other gender (left out of the tests).
    pub unpaired: usize,
}

/// For each row: the reads (TM sequence, TAM sequence, position, target) whose log-probability
/// differences sum to its association, or why it cannot be scored.
type Reads = Result<Vec<(Vec<u32>, Vec<u32>, usize, u32)>, String>;

/// Subword masking: the sentence's tokens, the person word's masked (TM), then the profession's
/// too (TAM); one read per person subtoken.
fn subword_reads(model: &LanguageModel, rows: &[BecProRow], mask: u32) -> Result<Vec<Reads>> {
    let max = model.max_len();
    let texts: Vec<&str> = rows.iter().map(|r| r.sentence.as_str()).collect();
    let enc = model.encode_quiet(&texts, max)?;
    let special = &model.tokenizer.special_ids;
    Ok(rows
        .iter()
        .zip(enc)
        .map(|(r, e)| {
            if e.truncated {
                return Err(format!("longer than the model's {max} positions"));
            }
            let within = |(s, t): (usize, usize)| -> Vec<usize> {
                (0..e.ids.len())
                    .filter(|&k| !special.contains(&e.ids[k]))
                    .filter(|&k| e.offsets[k].0 < t && e.offsets[k].1 > s)
                    .collect()
            };
            let (person, profession) = (within(r.person_span), within(r.profession_span));
            if person.is_empty() || profession.is_empty() {
                return Err("person word or profession not found in the tokens".into());
            }
            if person.iter().any(|k| profession.contains(k)) {
                return Err("person word and profession share a token".into());
            }
            let mut tm = e.ids.clone();
            for &k in &person {
                tm[k] = mask;
            }
            let mut tam = tm.clone();
            for &k in &profession {
                tam[k] = mask;
            }
            Ok(person.iter().map(|&k| (tm.clone(), tam.clone(), k, e.ids[k])).collect())
        })
        .collect())
}

/// gender-bias-BERT's inputs (`input_pipeline`, `prob_with_prior`): each text tokenized with
/// special tokens, cut or padded with the mask id to `len`; the read at the first mask of TAM.
fn bartl_reads(model: &LanguageModel, rows: &[BecProRow], mask_tok: &str, mask: u32) -> Result<Vec<Reads>> {
    // The smallest power of two at or above the longest Sent_TM in words.
    let words = rows.iter().map(|r| r.sent_tm.split_whitespace().count()).max().unwrap_or(1);
    let len = words.next_power_of_two();
    if len > model.max_len() {
        bail!("BEC-Pro bartl masking pads to {len} tokens, more than the model's {} positions", model.max_len());
    }
    let fit = |texts: Vec<String>| -> Result<Vec<Vec<u32>>> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(model
            .encode_quiet(&refs, usize::MAX)?
            .into_iter()
            .map(|e| {
                let mut ids = e.ids;
                ids.truncate(len);
                ids.resize(len, mask);
                ids
            })
            .collect())
    };
    let sentences = fit(rows.iter().map(|r| r.sentence.clone()).collect())?;
    let tms = fit(rows.iter().map(|r| r.sent_tm.replace(DATA_MASK, mask_tok)).collect())?;
    let tams = fit(rows.iter().map(|r| r.sent_tam.replace(DATA_MASK, mask_tok)).collect())?;
    Ok(sentences
        .into_iter()
        .zip(tms)
        .zip(tams)
        .map(|((s, tm), tam)| {
            // A file whose masks are cut off still has padding masks: the first of those.
            let Some(p) = tam.iter().position(|&t| t == mask) else {
                return Err("no mask in Sent_TAM".into());
            };
            Ok(vec![(tm, tam, p, s[p])])
        })
        .collect())
}

/// Mean association of the rows of one gender.
fn mean_of(sentences: &[&BecProSentence], gender: &str) -> (Option<f64>, usize) {
    let v: Vec<f64> = sentences.iter().filter(|s| s.gender == gender).filter_map(|s| s.association).collect();
    ((!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64), v.len())
}

/// The female − male differences of paired sentences: the k-th male and the k-th female row
/// of the same template and profession (the file's order, as gender-bias-BERT pairs them), both
/// scored; and how many scored rows found no partner.
fn paired_differences(sentences: &[&BecProSentence]) -> (Vec<f64>, usize) {
    /// The associations (None: not scored) of the male and of the female rows, in file order.
    type Sides = (Vec<Option<f64>>, Vec<Option<f64>>);
    let mut by_key: BTreeMap<(&str, &str), Sides> = BTreeMap::new();
    for s in sentences {
        let e = by_key.entry((&s.template, &s.profession)).or_default();
        if s.gender == "male" { e.0.push(s.association) } else { e.1.push(s.association) }
    }
    let mut d = Vec::new();
    let mut unpaired = 0;
    for (m, f) in by_key.values() {
        for k in 0..m.len().max(f.len()) {
            match (m.get(k).copied().flatten(), f.get(k).copied().flatten()) {
                (Some(a), Some(b)) => d.push(b - a),
                (Some(_), None) | (None, Some(_)) => unpaired += 1,
                (None, None) => {}
            }
        }
    }
    (d, unpaired)
}

fn summarise(sentences: &[&BecProSentence], correction: bool) -> Result<(BecProSummary, usize)> {
    let (mean_male, n_male) = mean_of(sentences, "male");
    let (mean_female, n_female) = mean_of(sentences, "female");
    let (d, unpaired) = paired_differences(sentences);
    let test = if d.iter().any(|&x| x != 0.0) { Some(wilcoxon(&d, correction)?) } else { None };
    Ok((BecProSummary { mean_male, mean_female, n_male, n_female, wilcoxon: test }, unpaired))
}

/// Scores every row and summarises per profession group and overall. `correction`: continuity
/// correction of the Wilcoxon normal approximation (scipy's default, and gender-bias-BERT's:
/// none).
pub fn score(
    model: &LanguageModel,
    rows: &[BecProRow],
    masking: BecProMasking,
    correction: bool,
    batch_size: usize,
    progress: &dyn Progress,
) -> Result<BecProResult> {
    let Some((mask_tok, mask)) = model.tokenizer.mask.clone() else {
        bail!("the model has no mask token; BEC-Pro needs one");
    };
    let reads = match masking {
        BecProMasking::Subword => subword_reads(model, rows, mask)?,
        BecProMasking::Bartl => bartl_reads(model, rows, &mask_tok, mask)?,
    };
    // Two queries per read: the target with the profession visible, then masked.
    let mut queries = Vec::new();
    let mut owner = Vec::new();
    for (i, r) in reads.iter().enumerate() {
        for (tm, tam, p, t) in r.iter().flatten() {
            queries.push(Query { ids: tm.clone(), position: *p, target: *t });
            queries.push(Query { ids: tam.clone(), position: *p, target: *t });
            owner.push(i);
        }
    }
    let lp = masked_log_probs(model, &queries, batch_size, progress)?;
    let mut sums = vec![(0.0f64, 0.0f64); rows.len()];
    for (pair, &i) in lp.chunks(2).zip(&owner) {
        sums[i].0 += pair[0];
        sums[i].1 += pair[1];
    }
    let sentences: Vec<BecProSentence> = rows
        .iter()
        .zip(&reads)
        .zip(&sums)
        .map(|((r, reads), &(target, prior))| {
            let skipped = reads.as_ref().err().cloned();
            let ok = skipped.is_none();
            BecProSentence {
                index: r.index,
                person: r.person.clone(),
                gender: r.gender.clone(),
                profession: r.profession.clone(),
                prof_gender: r.prof_gender.clone(),
                template: r.template.clone(),
                log_p_target: ok.then_some(target),
                log_p_prior: ok.then_some(prior),
                association: ok.then_some(target - prior),
                skipped,
            }
        })
        .collect();
    if let Some(s) = sentences.iter().find(|s| s.association.is_some_and(|a| !a.is_finite())) {
        bail!("BEC-Pro row {}: the association is not finite", s.index);
    }
    let skipped = sentences.iter().filter(|s| s.skipped.is_some()).count();
    if skipped == sentences.len() {
        bail!("no BEC-Pro row could be scored ({skipped} skipped)");
    }
    let mut groups: BTreeMap<&str, Vec<&BecProSentence>> = BTreeMap::new();
    for s in &sentences {
        groups.entry(&s.prof_gender).or_default().push(s);
    }
    let mut by_group = BTreeMap::new();
    let mut unpaired = 0;
    for (g, members) in &groups {
        let (summary, u) = summarise(members, correction)?;
        by_group.insert(g.to_string(), summary);
        unpaired += u;
    }
    let all: Vec<&BecProSentence> = sentences.iter().collect();
    let (overall, _) = summarise(&all, correction)?;
    Ok(BecProResult { by_group, overall, sentences, masking, skipped, unpaired })
}
