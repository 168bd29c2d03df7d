//! Writers of results: JSON, CSV, Markdown, plots, and progress display.

pub mod audit;
pub mod collapse;
pub mod document;
pub mod eval;
pub mod experiment;
pub mod glue;
pub mod plot;
pub mod progress;
