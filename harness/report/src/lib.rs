//! isobench's human-readable views of a run: the self-contained HTML page, `report.md`, the
//! table printed after a run, `junit.xml` for CI, the cost tables, and the comparison of a run
//! with a baseline.
//!
//! Every view is a plain function of an `isobench_results::Summary` (and, for the page's
//! curves, the run's histogram log), so `isobench report DIR` re-renders a run from its
//! results directory without deploying anything, and a CI tool can render or compare runs
//! without the engine. The page has no scripts, fonts, images or links to fetch: every chart
//! is inline SVG (`plotters`, SVG only) and a Content-Security-Policy forbids any request, so
//! it opens offline and can be attached to a CI job as it is.

mod charts;
pub mod compare;
mod cost;
mod error;
pub mod explore;
mod files;
mod fmt;
mod html;
mod junit;
mod leak;
mod limits;
mod markdown;
pub mod picks;
mod projected;
mod terminal;
mod text;
pub mod verdict;

pub use cost::{Projection, cost_table, projected_costs};
pub use error::{InputError, ReportError};
pub use files::{load_summary, read_histograms, write_reports};
pub use html::html;
/// The histogram log lives with the summary types; re-exported where the page reads it.
pub use isobench_results::hlog::{self, Histograms};
pub use junit::junit;
pub use limits::{Limits, limits};
pub use markdown::markdown;
pub use projected::terminal_line as projected_line;
pub use terminal::{terminal_table, terminal_verdict};
