//! Writers of results: JSON, CSV, Markdown, plots, and progress display.

pub mod collapse;
pub mod plot;
pub mod progress;
