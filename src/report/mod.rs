//! Writers of results: JSON, CSV, Markdown, plots, and progress display.

pub mod collapse;
pub mod eval;
pub mod glue;
pub mod plot;
pub mod progress;
