//! Short content fingerprints for compatibility checks between result files.

use sha2::{Digest, Sha256};

/// The first 16 hex digits of the sha256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}
