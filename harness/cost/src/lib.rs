//! What each isolation tier would cost on AWS, from what a run measured and a dated pricing
//! table; and what the emulator's timed events take on AWS by published figures.
//!
//! Every figure is modelled, not billed: it is the pricing table applied to measured quantities
//! by one formula per tier ([`model`]). Each [`isobench_results::TierCost`] keeps its priced
//! items (quantity × unit price) and its formula, so a reader can redo it by hand from
//! `summary.json` and the pricing file. Figures are kept unrounded; rounding is for display.
//!
//! Published AWS timings live in one dated, sourced file ([`overheads`], built in from
//! `overheads/aws.toml`, overridable with `--overheads FILE`); the calibration profile and the
//! projected-AWS latency ([`projection`]) read them. Both are modelled and never enter a
//! histogram.
//!
//! Synchronous and free of I/O beyond reading a pricing or overheads file, so that `isobench plan`, `run`
//! and `compare` can all call it.

pub mod calibration;
mod error;
pub mod extrapolate;
pub mod model;
pub mod overheads;
pub mod pricing;
pub mod projection;
pub mod shape;

pub use calibration::calibrate;
pub use error::{CostError, OverheadsError, PricingError};
pub use extrapolate::cost_at;
pub use model::{ProjectedCost, cost_of_tier, project, required_prices};
pub use overheads::{Overhead, Overheads};
pub use pricing::{Price, Pricing};
pub use projection::project_latency;
pub use shape::TierShape;
