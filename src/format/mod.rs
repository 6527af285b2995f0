//! Formats: decoding text records into Arrow batches and encoding batches for sinks.
//!
//! Decoding follows a bad-data policy: by default a malformed record fails the query with
//! the file and line; with `'json.ignore-parse-errors' = 'true'` (or `csv.`) the record is
//! skipped and counted, and every good record still arrives. Error messages name the place
//! and the reason, never the raw record.

pub mod decode;
pub mod encode;
pub mod json_out;
pub mod nested;

pub use decode::{Decoder, Format};
