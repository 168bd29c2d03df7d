//! Training: optimizer, schedule and clipping so far; the loop, objectives (MLM, CLM, CDA,
//! contrastive, classification) and the NC3 regularizer come with the debias issue.

pub mod optim;
