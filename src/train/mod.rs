//! Training pieces so far: optimizer, schedule and clipping; the NC3 regularizer; masked-LM
//! inputs; counterfactual augmentation. The loop, checkpoints and the remaining objectives
//! (CLM, BEC, ASE, contrastive, classification) come with the debias issue.

pub mod cda;
pub mod masking;
pub mod nc3;
pub mod optim;
