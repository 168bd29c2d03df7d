//! fairnc: neural collapse on fairness words, bias benchmarks, and NC3-regularised debiasing
//! for BERT, RoBERTa, DistilBERT and GPT-2 checkpoints.
//!
//! Data flows one way: text → tokens ([`model`]) → hidden states → statistics ([`collapse`]),
//! scores ([`bench`]) or losses ([`train`]) → typed results → reports ([`report`]). Each stage is
//! a function taking a loaded [`model::LanguageModel`] (or, where it trains copies, a model
//! name), a config struct with `Default`, and a [`util::progress::Progress`] to report to; it
//! returns a typed result that serialises to the JSON the CLI writes:
//!
//! | stage | config | result |
//! | --- | --- | --- |
//! | [`collapse::measure`] | [`collapse::CollapseConfig`] | [`collapse::CollapseResult`] |
//! | [`bench::evaluate`] | [`bench::EvalConfig`] | [`bench::Evaluation`] |
//! | [`train::debias`] | [`train::DebiasConfig`] | [`train::DebiasResult`] |
//! | [`bench::glue::run`] | [`bench::glue::GlueConfig`] | [`bench::glue::GlueResults`] |
//! | [`audit::run`] | [`audit::AuditConfig`] | [`audit::Audit`] |
//! | [`experiment::run`] | [`experiment::Experiment`] | [`experiment::CellResult`]s |
//!
//! [`registry`] turns a name (`minilm`, `minilm-mlm`, `hf:ORG/NAME`, a directory) into a loaded
//! model; the binary's `cli` module and the Python package are thin skins over these functions.
//!
//! Neural collapse on gender words of a tiny fixture BERT, over a three-line corpus:
//!
//! ```
//! use fairnc::collapse::{CollapseConfig, measure};
//! use fairnc::util::progress::Silent;
//!
//! let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/bert");
//! let model = fairnc::registry::load(fixture, &Default::default())?;
//! let work = tempfile::tempdir()?;
//! let corpus = work.path().join("corpus.txt");
//! std::fs::write(&corpus, "he said that she was late .\nshe told him about his work .\nher son and his daughter met .\n")?;
//! let config = CollapseConfig { corpus: corpus.display().to_string(), ..CollapseConfig::default() };
//! let result = measure(&model, &config, &work.path().join("collapse"), false, &Silent)?;
//! assert!(result.counts.positions_stats > 0);
//! println!("UNC3 (std of s_c): {:?}", result.metrics.duality_std);
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod audit;
pub mod bench;
/// The command line: for the `fairnc` binary only (not a library interface).
#[doc(hidden)]
pub mod cli;
pub mod collapse;
pub mod data;
pub mod experiment;
pub mod model;
pub mod project;
pub mod registry;
pub mod report;
pub mod train;
pub mod util;
pub mod words;
