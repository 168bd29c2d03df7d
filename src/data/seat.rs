//! SEAT tests: the sent-bias JSON layout (targ1, targ2, attr1, attr2, each a category with
//! examples), read from files or rebuilt from WEAT word lists.

use anyhow::{Context, Result, bail};
use std::path::Path;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Category {
    pub category: String,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeatTest {
    pub name: String,
    pub targ1: Category,
    pub targ2: Category,
    pub attr1: Category,
    pub attr2: Category,
}

/// Suffix of a test rebuilt from WEAT word lists that differs from sent-bias's file of the same
/// name (see [`rebuild`]); its numbers are not comparable with figures published for that file.
pub const REBUILT_SUFFIX: &str = "-rebuilt";

/// The bias type each standard test (or its rebuilt variant) measures (METHOD §6).
pub fn bias_type(test: &str) -> Option<&'static str> {
    let test = test.strip_suffix(REBUILT_SUFFIX).unwrap_or(test);
    const GENDER: [&str; 6] = ["sent-weat6", "sent-weat6b", "sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b"];
    const RACE: [&str; 7] = [
        "sent-angry_black_woman_stereotype",
        "sent-angry_black_woman_stereotype_b",
        "sent-weat3",
        "sent-weat3b",
        "sent-weat4",
        "sent-weat5",
        "sent-weat5b",
    ];
    const RELIGION: [&str; 4] = ["sent-religion1", "sent-religion1b", "sent-religion2", "sent-religion2b"];
    if GENDER.contains(&test) {
        Some("gender")
    } else if RACE.contains(&test) {
        Some("race")
    } else if RELIGION.contains(&test) {
        Some("religion")
    } else {
        None
    }
}

/// The standard tests of a bias type.
pub fn tests_of(bias: &str) -> Vec<&'static str> {
    const ALL: [&str; 17] = [
        "sent-weat6",
        "sent-weat6b",
        "sent-weat7",
        "sent-weat7b",
        "sent-weat8",
        "sent-weat8b",
        "sent-angry_black_woman_stereotype",
        "sent-angry_black_woman_stereotype_b",
        "sent-weat3",
        "sent-weat3b",
        "sent-weat4",
        "sent-weat5",
        "sent-weat5b",
        "sent-religion1",
        "sent-religion1b",
        "sent-religion2",
        "sent-religion2b",
    ];
    ALL.into_iter().filter(|t| bias_type(t) == Some(bias)).collect()
}

/// Whether the tests of `bias` among `names` are exactly sent-bias's standard tests of that type
/// (none rebuilt differently, none missing): published averages (bias-bench's) are over those.
pub fn is_standard_set<'a>(names: impl IntoIterator<Item = &'a String>, bias: &str) -> bool {
    let got: std::collections::BTreeSet<&str> =
        names.into_iter().map(String::as_str).filter(|n| bias_type(n) == Some(bias)).collect();
    let want: std::collections::BTreeSet<&str> = tests_of(bias).into_iter().collect();
    !want.is_empty() && got == want
}

/// Reads one test file (despite the `.jsonl` name, one JSON object).
pub fn read_test(path: &Path) -> Result<SeatTest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    let cat = |key: &str| -> Result<Category> {
        let c = v.get(key).with_context(|| format!("{}: missing key \"{key}\"", path.display()))?;
        let c: Category = serde_json::from_value(c.clone())
            .with_context(|| format!("{}: \"{key}\" is not {{category, examples}}", path.display()))?;
        if c.examples.is_empty() {
            bail!("{}: \"{key}\" has no examples", path.display());
        }
        Ok(c)
    };
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .trim_end_matches(".jsonl")
        .trim_end_matches(".json")
        .to_string();
    Ok(SeatTest { name, targ1: cat("targ1")?, targ2: cat("targ2")?, attr1: cat("attr1")?, attr2: cat("attr2")? })
}

/// Reads the named tests from a directory of `<name>.jsonl` files.
pub fn read_dir(dir: &Path, names: &[String]) -> Result<Vec<SeatTest>> {
    names
        .iter()
        .map(|n| {
            let path = dir.join(format!("{n}.jsonl"));
            if !path.exists() {
                return Err(crate::util::fs::not_found(format!("{}: no such SEAT test file", path.display())));
            }
            read_test(&path)
        })
        .collect()
}

/// The WEAT lists and category names behind each rebuildable sentence test (May et al. built
/// the six gender tests from these with their bleached templates).
fn weat_lists(name: &str) -> Option<[(&'static str, &'static str); 4]> {
    Some(match name {
        "sent-weat6" => {
            [("male_names", "MaleNames"), ("female_names", "FemaleNames"), ("career", "Career"), ("family", "Family")]
        }
        "sent-weat6b" => {
            [("male_terms", "MaleTerms"), ("female_terms", "FemaleTerms"), ("career", "Career"), ("family", "Family")]
        }
        "sent-weat7" => {
            [("math", "Math"), ("arts", "Arts"), ("male_terms", "MaleTerms"), ("female_terms", "FemaleTerms")]
        }
        "sent-weat7b" => {
            [("math", "Math"), ("arts", "Arts"), ("male_names", "MaleNames"), ("female_names", "FemaleNames")]
        }
        "sent-weat8" => [
            ("science", "Science"),
            ("arts_2", "Arts"),
            ("male_terms_2", "MaleTerms"),
            ("female_terms_2", "FemaleTerms"),
        ],
        "sent-weat8b" => {
            [("science", "Science"), ("arts_2", "Arts"), ("male_names", "MaleNames"), ("female_names", "FemaleNames")]
        }
        _ => return None,
    })
}

/// The sent-bias tests that can be rebuilt from WEAT word lists (the rest need `--seat-dir`).
pub const REBUILDABLE: [&str; 6] =
    ["sent-weat6", "sent-weat6b", "sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b"];

/// Tests whose rebuilt sentences differ from sent-bias's file: its generator
/// (`scripts/generate_basic_contexts.py`, `truncate_lists`) cut the longer target set, Arts (82
/// sentences in weat7/7b, 76 in weat8/8b), to the other's size (Math 72, Science 56) with an
/// unseeded `random.sample`, which no word list can reproduce. The rebuilt tests keep every
/// sentence and carry [`REBUILT_SUFFIX`]; the other rebuilt tests equal their files set by set.
const DIFFERS_FROM_FILE: [&str; 4] = ["sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b"];

/// The name a rebuilt test is reported under: sent-bias's name where the rebuilt sets equal its
/// file, else that name with [`REBUILT_SUFFIX`].
pub fn rebuilt_name(name: &str) -> String {
    let base = name.strip_suffix(REBUILT_SUFFIX).unwrap_or(name);
    if DIFFERS_FROM_FILE.contains(&base) { format!("{base}{REBUILT_SUFFIX}") } else { base.to_string() }
}

/// Whether a test name is one of sent-bias's files (not a rebuilt variant that differs from it).
pub fn is_standard(name: &str) -> bool {
    !name.ends_with(REBUILT_SUFFIX)
}

/// Rebuilds a WEAT-based sentence test from the weat bundle's word lists, named by
/// [`rebuilt_name`]; `name` may be sent-bias's name or the rebuilt one.
pub fn rebuild(name: &str) -> Result<SeatTest> {
    let base = name.strip_suffix(REBUILT_SUFFIX).unwrap_or(name);
    let lists = weat_lists(base).filter(|_| name == base || DIFFERS_FROM_FILE.contains(&base));
    let Some(lists) = lists else {
        bail!(
            "SEAT test {name} cannot be rebuilt from WEAT word lists (rebuildable: {}); pass --seat-dir with the sent-bias files",
            REBUILDABLE.join(", ")
        );
    };
    let path = crate::data::Bundle::Weat.ensure()?.join("WEAT.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let weat: std::collections::HashMap<String, Vec<String>> =
        serde_json::from_str(&text).with_context(|| format!("{}: not a map of word lists", path.display()))?;
    let cat = |(list, category): (&str, &str)| -> Result<Category> {
        let words = weat.get(list).with_context(|| format!("{}: no list \"{list}\"", path.display()))?;
        Ok(Category { category: category.into(), examples: super::seat_templates::sentences(words, category) })
    };
    Ok(SeatTest {
        name: rebuilt_name(base),
        targ1: cat(lists[0])?,
        targ2: cat(lists[1])?,
        attr1: cat(lists[2])?,
        attr2: cat(lists[3])?,
    })
}
