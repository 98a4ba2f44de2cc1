//! The report crate's errors, in a leaf module so every view can use them.

use std::path::PathBuf;

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to draw a chart: {0}")]
    Chart(String),
    #[error("failed to write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A file given to read (a summary, a histogram log) that cannot be used; the message names
/// the file and says why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct InputError {
    pub path: PathBuf,
    pub problem: String,
}

impl InputError {
    pub fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> InputError {
        InputError { path: path.into(), problem: problem.into() }
    }
}
