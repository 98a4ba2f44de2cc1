//! isobench's HTML report: one self-contained page per run, charts drawn by the harness.
//!
//! A crate of its own so that `isobench report DIR` (re-rendering a run's page from its
//! `summary.json` and `histograms.hlog`) needs only the results types, `plotters` (SVG only)
//! and `hdrhistogram`. The page has no scripts, fonts, images or links to fetch: every chart
//! is inline SVG and a Content-Security-Policy forbids any request, so it opens offline and
//! can be attached to a CI job as it is.

mod charts;
mod fmt;
pub mod hlog;
mod html;

pub use hlog::Histograms;
pub use html::html;

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to read the histogram log: {0}")]
    Histograms(String),
    #[error("failed to draw a chart: {0}")]
    Chart(String),
}
