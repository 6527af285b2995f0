//! # Weir — a streaming SQL engine
//!
//! Weir runs continuous SQL in Flink's dialect over Arrow record batches, on DataFusion.
//!
//! ```text
//!  SQL text ─► sql::parser (Flink dialect on sqlparser) ─► session (catalog, SET)
//!           ─► DataFusion logical plan ─► plan (streaming plan, compiled expressions)
//!           ─► job (tokio tasks joined by bounded channels)
//!
//!  source/ ─► Message::{Batch, Watermark, Barrier, End} ─► operator/ ─► sink/
//!  (nexmark, datagen,    bounded channels:        (project,      (print, blackhole,
//!   filesystem, stdin)   backpressure             filter, limit,  filesystem, terminal)
//!                                                 union)
//! ```
//!
//! A row enters in [`source`] (decoded by [`format`] for text inputs), gets its computed
//! columns and advances the watermark in [`source::watermark`], passes the [`operator`]s
//! of its query, and leaves through a [`sink`]. [`job`] owns the tasks and channels of a
//! running query; [`session`] owns the catalog and turns statements into jobs;
//! [`checkpoint`] saves a running job's state and restores it after a restart.

pub mod bench;
pub mod changelog;
pub mod checkpoint;
pub mod connector;
pub mod error;
pub mod format;
pub mod fuzz;
pub mod job;
pub mod message;
pub mod operator;
pub mod plan;
pub mod session;
pub mod shell;
pub mod sink;
pub mod source;
pub mod sql;

pub use error::{Result, WeirError};

/// Whether to colour what goes to stderr (log levels, the shell's hint): only on a
/// terminal, and not when `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
pub fn colour_stderr() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
pub use session::{Outcome, Session};
