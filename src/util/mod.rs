//! Helpers shared by every layer: atomic files, seeded randomness, message text.

pub mod alloc;
pub mod bars;
pub mod device;
pub(crate) mod fs;
pub(crate) mod hash;
pub mod progress;
pub mod rng;
pub(crate) mod settings;
pub(crate) mod stats;
pub(crate) mod text;
pub mod wilcoxon;
