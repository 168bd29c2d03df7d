//! Training: the loop (deterministic, checkpointed, resumable) and its typed log, AdamW with
//! schedule and clipping, the NC3 regularizer, masked-LM inputs, counterfactual augmentation,
//! the debiasing objectives (MLM, CLM, ASE-style, MABEL-style contrastive) and the debias stage
//! that composes them, and the masked-LM adaptation that builds `minilm-mlm`.

pub(crate) mod adapt;
pub mod cda;
pub(crate) mod classify;
pub mod contrastive;
pub(crate) mod debias;
pub mod log;
pub mod masking;
pub mod nc3;
pub mod objective;
pub mod optim;
mod run_dir;
pub mod trainer;

pub use debias::{DebiasConfig, DebiasResult, Method, OutputMode, Scope, debias};
