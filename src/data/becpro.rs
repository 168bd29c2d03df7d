//! BEC-Pro (Bartl, Nissim & Gatt 2020): template sentences pairing a gendered person word with
//! a profession, `BEC-Pro_EN.tsv` of the benchmark bundle. Columns (tab-separated, with a
//! header; an unnamed first column holds the row index): Sentence, Sent_TM (person word
//! masked), Sent_AM, Sent_TAM (person word and each word of the profession masked), Template,
//! Person, Gender (of the person word: male / female), Profession, Prof_Gender (the profession
//! group: male, female or balanced).

use super::Bundle;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The mask as the file writes it.
pub const DATA_MASK: &str = "[MASK]";

#[derive(Debug, Clone, PartialEq)]
pub struct BecProRow {
    /// The file's index column (else the row's position).
    pub index: usize,
    pub sentence: String,
    pub sent_tm: String,
    pub sent_tam: String,
    pub template: String,
    pub person: String,
    /// Gender of the person word: male or female.
    pub gender: String,
    pub profession: String,
    /// The profession's group: male, female or balanced.
    pub prof_gender: String,
    /// Byte span of the person word in `sentence`.
    pub person_span: (usize, usize),
    /// Byte span of the profession in `sentence` (after the person word).
    pub profession_span: (usize, usize),
}

pub struct BecProData {
    pub rows: Vec<BecProRow>,
    /// Rows that could not be used, with the reason.
    pub malformed: Vec<String>,
}

pub fn default_path() -> Result<PathBuf> {
    Ok(Bundle::Benchmarks.ensure()?.join("BEC-Pro/data/BEC-Pro_EN.tsv"))
}

/// Where the person word and the profession sit in the sentence: the person word where
/// Sent_TM has its first mask, the profession after it.
fn spans(sentence: &str, sent_tm: &str, person: &str, profession: &str) -> Result<((usize, usize), (usize, usize))> {
    let Some(start) = sent_tm.find(DATA_MASK) else { bail!("Sent_TM has no {DATA_MASK}") };
    let end = start + person.len();
    if sentence.get(start..end).is_none_or(|w| !w.eq_ignore_ascii_case(person)) {
        bail!("Person {person:?} is not where Sent_TM masks it in {sentence:?}");
    }
    let Some(at) = sentence[end..].find(profession) else {
        bail!("Profession {profession:?} is not in {sentence:?} after the person word")
    };
    Ok(((start, end), (end + at, end + at + profession.len())))
}

pub fn read(path: &Path) -> Result<BecProData> {
    if !path.is_file() {
        return Err(crate::util::fs::not_found(format!("{}: BEC-Pro file does not exist", path.display())));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .quoting(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let headers = rdr.headers().with_context(|| format!("{}: cannot read the header", path.display()))?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = ["Sentence", "Sent_TM", "Sent_TAM", "Person", "Gender", "Profession", "Prof_Gender"];
    let missing: Vec<&str> = need.iter().copied().filter(|n| col(n).is_none()).collect();
    if !missing.is_empty() {
        bail!("{}: not a BEC-Pro file, no column {}", path.display(), missing.join(", "));
    }
    let [sentence, tm, tam, person, gender, profession, prof] = need.map(|n| col(n).unwrap_or(0));
    let template = col("Template");
    let index = col("");
    let mut rows = Vec::new();
    let mut malformed = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                malformed.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let get = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
        let row = (|| -> Result<BecProRow> {
            let fields = [sentence, tm, tam, person, gender, profession, prof].map(get);
            if let Some(k) = fields.iter().position(String::is_empty) {
                bail!("empty {}", need[k]);
            }
            let [sentence, sent_tm, sent_tam, person, gender, profession, prof_gender] = fields;
            if gender != "male" && gender != "female" {
                bail!("Gender {gender:?} is neither male nor female");
            }
            if !sent_tam.contains(DATA_MASK) {
                bail!("Sent_TAM has no {DATA_MASK}");
            }
            let (person_span, profession_span) = spans(&sentence, &sent_tm, &person, &profession)?;
            let index = match index.map(get) {
                Some(s) => s.parse().with_context(|| format!("index {s:?} is not a number"))?,
                None => i,
            };
            Ok(BecProRow {
                index,
                template: template.map(get).unwrap_or_default(),
                sentence,
                sent_tm,
                sent_tam,
                person,
                gender,
                profession,
                prof_gender,
                person_span,
                profession_span,
            })
        })();
        match row {
            Ok(r) => rows.push(r),
            Err(e) => malformed.push(format!("line {line}: {e}")),
        }
    }
    if rows.is_empty() {
        bail!("{}: no usable BEC-Pro rows", path.display());
    }
    Ok(BecProData { rows, malformed })
}
