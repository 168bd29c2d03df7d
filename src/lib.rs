//! fairnc: neural collapse on fairness words, bias benchmarks, and NC3-regularised debiasing
//! for BERT, RoBERTa, DistilBERT and GPT-2 checkpoints.
//!
//! Data flows one way: text → tokens ([`model`]) → hidden states → statistics, scores or
//! losses → results → reports ([`report`]). The binary in `src/main.rs` is a thin shell over
//! this library.

pub mod audit;
pub mod bench;
pub mod cli;
pub mod collapse;
pub mod data;
pub mod experiment;
pub mod model;
pub mod registry;
pub mod report;
pub mod train;
pub mod util;
pub mod words;
