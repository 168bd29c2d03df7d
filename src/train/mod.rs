//! Training: optimizer, schedule and clipping, and the NC3 regularizer so far; the loop and the
//! objectives (MLM, CLM, CDA, contrastive, classification) come with the debias issue.

pub mod nc3;
pub mod optim;
