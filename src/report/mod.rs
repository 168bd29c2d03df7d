//! Writers of results: JSON, CSV, Markdown, plots, and progress display.

pub mod audit;
pub mod collapse;
pub(crate) mod document;
pub mod eval;
pub mod experiment;
pub mod experiment_stats;
pub mod glue;
pub(crate) mod peer_measures;
pub(crate) mod plot;
pub mod training;

/// A p-value as a table shows it: four decimals, or the order of magnitude below 0.0001 (a
/// random-permutation p is never 0: at least 1 / (B + 1), so "0.0000" would misstate it).
pub fn p_value(p: f64) -> String {
    if !p.is_finite() {
        "—".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}
