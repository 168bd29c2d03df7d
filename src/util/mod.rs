//! Helpers shared by every layer: atomic files, seeded randomness, message text.

pub mod alloc;
pub mod fs;
pub mod hash;
pub mod progress;
pub mod rng;
pub mod settings;
pub mod stats;
pub mod text;
