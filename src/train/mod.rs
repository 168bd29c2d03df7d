//! Training: the loop (deterministic, checkpointed, resumable), AdamW with schedule and
//! clipping, the NC3 regularizer, masked-LM inputs and counterfactual augmentation. Still to
//! come with the debias issue: CLM, BEC, ASE, contrastive and classification objectives and
//! the `debias` command.

pub mod cda;
pub mod masking;
pub mod nc3;
pub mod objective;
pub mod optim;
pub mod trainer;
