//! Bias benchmarks: CrowS-Pairs, StereoSet intra- and intersentence, SEAT and BEC-Pro. Datasets + model →
//! per-example scores → summaries; every scorer plans batches of variants, never one
//! forward pass per masked token.

pub(crate) mod attention_scoring;
pub mod aul;
pub mod becpro;
pub mod crows;
pub mod crows_lmeval;
pub(crate) mod difflib;
pub mod evaluate;
pub mod glue;
pub mod mlm_bias;
mod results;
pub(crate) mod scoring;
pub mod seat;
pub mod self_debias;
pub mod sentence_pairs;
pub(crate) mod stereoset;
pub(crate) mod stereoset_inter;

pub use evaluate::{BenchTask, EvalConfig, Evaluation, evaluate};
pub use results::{BecProSection, CrowsSection, EvalResults, SeatSection, StereoSetInterSection, StereoSetSection};
