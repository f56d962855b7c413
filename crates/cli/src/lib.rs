//! The `palisade` faces, the command line and the web page, as a library: benchmarks and tests
//! drive the very code users run, and the page answers with the functions the commands use.

pub mod agent;
pub mod check;
mod describe;
pub mod explain;
pub mod generate;
pub mod input;
pub mod lab;
pub mod matrix;
mod progress;
pub mod review;
pub mod snapshot;
pub mod summary;
pub mod web;

/// Exit status for input errors and failures, as `check` documents (0 allowed, 1 denied); the
/// one `lint` and `diff` use too.
pub const EXIT_ERRORS: u8 = palisade_lint::EXIT_INPUT_ERRORS;
