//! GLUE tasks in the standard `glue_data` layout (one directory per task with `train.tsv` and
//! `dev.tsv`), read as plain tab-separated text: quoting off, because GLUE sentences hold
//! unbalanced `"` characters that a CSV reader would swallow across lines.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cola,
    Sst2,
    Mrpc,
    Stsb,
    Qnli,
    Rte,
    Wnli,
}

/// Where a field sits in a row: a named column of the header, or a fixed index (CoLA has no header).
#[derive(Debug, Clone, Copy)]
enum Column {
    Named(&'static str),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    Class(usize),
    Score(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: Label,
}

impl Task {
    pub const ALL: [Task; 7] = [Task::Cola, Task::Sst2, Task::Mrpc, Task::Stsb, Task::Qnli, Task::Rte, Task::Wnli];

    pub fn parse(name: &str) -> Option<Task> {
        Some(match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "cola" => Task::Cola,
            "sst2" => Task::Sst2,
            "mrpc" => Task::Mrpc,
            "stsb" => Task::Stsb,
            "qnli" => Task::Qnli,
            "rte" => Task::Rte,
            "wnli" => Task::Wnli,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Task::Cola => "cola",
            Task::Sst2 => "sst2",
            Task::Mrpc => "mrpc",
            Task::Stsb => "stsb",
            Task::Qnli => "qnli",
            Task::Rte => "rte",
            Task::Wnli => "wnli",
        }
    }

    /// The task's directory name in `glue_data`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Task::Cola => "CoLA",
            Task::Sst2 => "SST-2",
            Task::Mrpc => "MRPC",
            Task::Stsb => "STS-B",
            Task::Qnli => "QNLI",
            Task::Rte => "RTE",
            Task::Wnli => "WNLI",
        }
    }

    /// Class labels as they appear in the files (empty: a regression task).
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Task::Stsb => &[],
            Task::Qnli | Task::Rte => &["entailment", "not_entailment"],
            _ => &["0", "1"],
        }
    }

    pub fn is_regression(self) -> bool {
        self.labels().is_empty()
    }

    pub fn num_outputs(self) -> usize {
        self.labels().len().max(1)
    }

    fn has_header(self) -> bool {
        self != Task::Cola
    }

    fn columns(self) -> (Column, Option<Column>, Column) {
        use Column::*;
        match self {
            Task::Cola => (Index(3), None, Index(1)),
            Task::Sst2 => (Named("sentence"), None, Named("label")),
            Task::Mrpc => (Named("#1 String"), Some(Named("#2 String")), Named("Quality")),
            Task::Stsb => (Named("sentence1"), Some(Named("sentence2")), Named("score")),
            Task::Qnli => (Named("question"), Some(Named("sentence")), Named("label")),
            Task::Rte | Task::Wnli => (Named("sentence1"), Some(Named("sentence2")), Named("label")),
        }
    }

    pub fn split_path(self, glue_dir: &Path, split: &str) -> PathBuf {
        glue_dir.join(self.dir_name()).join(format!("{split}.tsv"))
    }

    /// Reads `train` or `dev`. Errors name the file and, where it applies, the line and column.
    pub fn load(self, glue_dir: &Path, split: &str) -> Result<Vec<Example>> {
        let dir = glue_dir.join(self.dir_name());
        if !dir.is_dir() {
            bail!(
                "{}: no {} task directory (expected the glue_data layout: {}/train.tsv, dev.tsv)",
                dir.display(),
                self.name(),
                self.dir_name()
            );
        }
        let path = self.split_path(glue_dir, split);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let header: Vec<&str> = if self.has_header() {
            match lines.next() {
                Some((_, h)) => h.split('\t').map(str::trim).collect(),
                None => bail!("{}: empty file (no header, no examples)", path.display()),
            }
        } else {
            Vec::new()
        };
        let index = |c: Column| -> Result<usize> {
            match c {
                Column::Index(i) => Ok(i),
                Column::Named(name) => header.iter().position(|h| *h == name).with_context(|| {
                    format!("{}: no column \"{name}\" in the header (columns: {})", path.display(), header.join(", "))
                }),
            }
        };
        let (a, b, l) = self.columns();
        let (ia, ib, il) = (index(a)?, b.map(index).transpose()?, index(l)?);
        let needed = ia.max(ib.unwrap_or(0)).max(il) + 1;
        let mut out = Vec::new();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() < needed {
                bail!("{}:{}: {} fields, expected at least {needed}", path.display(), n + 1, fields.len());
            }
            let raw = fields[il].trim();
            let label = if self.is_regression() {
                let v: f32 = raw
                    .parse()
                    .ok()
                    .filter(|v: &f32| v.is_finite())
                    .with_context(|| format!("{}:{}: score {raw:?} is not a number", path.display(), n + 1))?;
                Label::Score(v)
            } else {
                match self.labels().iter().position(|x| *x == raw) {
                    Some(c) => Label::Class(c),
                    None => bail!(
                        "{}:{}: label {raw:?} is not one of {} for {}",
                        path.display(),
                        n + 1,
                        self.labels().join(", "),
                        self.name()
                    ),
                }
            };
            out.push(Example { text_a: fields[ia].to_string(), text_b: ib.map(|i| fields[i].to_string()), label });
        }
        if out.is_empty() {
            bail!("{}: no examples", path.display());
        }
        Ok(out)
    }
}

/// A comma-separated list of tasks such as "sst2,mrpc" (each once, in the order given).
pub fn parse_tasks(list: &str) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Task::parse(name) {
            Some(t) if !tasks.contains(&t) => tasks.push(t),
            Some(_) => {}
            None => bail!("unknown GLUE task \"{name}\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)"),
        }
    }
    if tasks.is_empty() {
        bail!("no GLUE tasks given");
    }
    Ok(tasks)
}

/// Every `len / n`-th example: an evenly spread, deterministic subset of at most `n`.
pub fn subsample(examples: Vec<Example>, n: Option<usize>) -> Vec<Example> {
    match n.filter(|&n| n < examples.len()) {
        Some(n) => (0..n).map(|j| examples[j * examples.len() / n].clone()).collect(),
        None => examples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, task: &str, split: &str, text: &str) {
        std::fs::create_dir_all(dir.join(task)).unwrap();
        std::fs::write(dir.join(task).join(format!("{split}.tsv")), text).unwrap();
    }

    #[test]
    fn reads_headerless_cola_and_quotes_as_text() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "CoLA", "dev", "gj04\t1\t\tHe said \"hi.\ngj04\t0\t*\tHim went .\n");
        let ex = Task::Cola.load(tmp.path(), "dev").unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text_a, "He said \"hi.");
        assert_eq!(ex[1].label, Label::Class(0));
    }

    #[test]
    fn task_lists_drop_repeats_and_name_an_unknown_task() {
        assert_eq!(parse_tasks("sst2, SST-2,mrpc,").unwrap(), vec![Task::Sst2, Task::Mrpc]);
        assert_eq!(
            parse_tasks("sst2,mnli").unwrap_err().to_string(),
            "unknown GLUE task \"mnli\" (cola, sst2, mrpc, stsb, rte, qnli, wnli)"
        );
        assert_eq!(parse_tasks(" , ").unwrap_err().to_string(), "no GLUE tasks given");
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let err = |t: Task| format!("{:#}", t.load(tmp.path(), "dev").unwrap_err());
        assert!(err(Task::Rte).contains("no rte task directory"));
        write(tmp.path(), "RTE", "dev", "index\tsentence1\thypothesis\tlabel\n0\ta\tb\tentailment\n");
        assert!(err(Task::Rte).contains("no column \"sentence2\""), "{}", err(Task::Rte));
        write(tmp.path(), "RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n");
        assert!(err(Task::Rte).contains("dev.tsv:2: label \"maybe\""), "{}", err(Task::Rte));
        write(tmp.path(), "RTE", "dev", "index\tsentence1\tsentence2\tlabel\n");
        assert!(err(Task::Rte).contains("no examples"));
        write(tmp.path(), "STS-B", "dev", "sentence1\tsentence2\tscore\na\tb\tx\n");
        assert!(err(Task::Stsb).contains("score \"x\" is not a number"));
        write(tmp.path(), "SST-2", "dev", "sentence\tlabel\nshort\n");
        assert!(err(Task::Sst2).contains("dev.tsv:2: 1 fields"));
    }
}
