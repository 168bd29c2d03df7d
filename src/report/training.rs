//! Plots of a training run from its typed log: the loss by step and the NC3 spread by step.

use crate::train::log::LogRecord;
use anyhow::Result;
use std::path::Path;

/// A named line of (step, value) points.
type Series = (String, Vec<(f64, f64)>);

/// The name of the NC3 series: the logged term is the spread before λ weights it.
const NC3_SERIES: &str = "std of s_c (NC3 term before λ)";

/// Writes `loss.png`/`.svg` (the total loss and each objective term by step) and, when the log
/// has the NC3 term, `nc3.png`/`.svg` (the NC3 spread, std of s_c over the classes seen, by
/// step): on its own axis because it is two orders of magnitude below the loss.
pub fn loss_plots(dir: &Path, log: &[LogRecord]) -> Result<()> {
    let (losses, nc3) = series(log);
    crate::report::plot::line_plot(&dir.join("loss"), "Training loss", "loss", &losses)?;
    if !nc3.is_empty() {
        crate::report::plot::line_plot(&dir.join("nc3"), "NC3 spread over the word set's classes", "std of s_c", &nc3)?;
    }
    Ok(())
}

/// The loss series ("total" first, then each objective term) and the NC3 series (empty without
/// the term). A single objective term equal to the total is left out: it would draw over it.
fn series(log: &[LogRecord]) -> (Vec<Series>, Vec<Series>) {
    let mut losses: Vec<Series> = Vec::new();
    let mut nc3: Vec<Series> = Vec::new();
    for r in log {
        let step = r.step as f64;
        add(&mut losses, "total", (step, r.loss));
        for (name, &y) in &r.terms {
            if name == "nc3" { add(&mut nc3, NC3_SERIES, (step, y)) } else { add(&mut losses, name, (step, y)) }
        }
    }
    if losses.len() == 2 && losses[0].1 == losses[1].1 {
        losses.truncate(1);
    }
    (losses, nc3)
}

fn add(series: &mut Vec<Series>, name: &str, point: (f64, f64)) {
    match series.iter_mut().find(|(n, _)| n == name) {
        Some((_, points)) => points.push(point),
        None => series.push((name.to_string(), vec![point])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: u64, loss: f64, terms: &[(&str, f64)]) -> LogRecord {
        LogRecord {
            step,
            loss,
            terms: terms.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            lr: 1e-3,
            grad_norm: 1.0,
            tokens_per_s: 100.0,
            nc3_classes: 2,
            resumed_from: None,
        }
    }

    #[test]
    fn the_nc3_term_gets_its_own_plot_and_a_lone_term_equal_to_the_total_is_dropped() {
        let log = [record(1, 2.0, &[("mlm", 2.0), ("nc3", 0.1)]), record(2, 1.5, &[("mlm", 1.5), ("nc3", 0.05)])];
        let (losses, nc3) = series(&log);
        assert_eq!(losses, [("total".to_string(), vec![(1.0, 2.0), (2.0, 1.5)])]);
        assert_eq!(nc3, [(NC3_SERIES.to_string(), vec![(1.0, 0.1), (2.0, 0.05)])]);
        // With λ the total differs from the objective's term: both are drawn.
        let log = [record(1, 2.5, &[("mlm", 2.0), ("nc3", 0.1)])];
        let names: Vec<String> = series(&log).0.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["total", "mlm"]);
    }
}
