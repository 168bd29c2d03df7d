//! Writers of results: JSON, CSV, Markdown, plots, and progress display.

pub mod progress;
