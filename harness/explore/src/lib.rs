//! `isobench explore`: one scenario run over a matrix of tenant counts and rates, each point a
//! full run of the engine with its own results directory, and the tiers' costs compared
//! across the matrix, with the crossovers said in words.
//!
//! Why a crate of its own: a sweep is a loop *around* the engine (`isobench_runner::run` per
//! point) plus an analysis *over* runs (cost curves, crossovers); neither belongs in the engine,
//! which runs one plan, nor in the CLI, which measures and computes nothing.
//!
//! - [`matrix`]: the dimensions (`--vary` or `[explore]`), the points, their keys
//!   (`tenants=8,rate=1k`) and scenario texts.
//! - [`resume`]: what an existing sweep directory holds; which points finished.
//! - [`sweep`]: the loop, `sweep.json` after every point, the report at the end.
//! - [`analysis`] and [`crossover`]: cost curves measured at the runs and extrapolated by the
//!   cost model (`isobench_cost::cost_at`) between and beyond them, and where they cross.
//! - [`picks`]: the place where the per-point picks are asked for.

pub mod analysis;
pub mod crossover;
mod error;
pub mod matrix;
pub mod picks;
mod report;
pub mod resume;
pub mod sweep;

pub use error::ExploreError;
pub use matrix::{Matrix, Point};
pub use report::rerender;
pub use sweep::{Hooks, Sweep, SweepOutcome, prepare, run};
