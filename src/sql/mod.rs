//! The SQL front end: Flink's dialect parsed into statements ([`parser`]), column types
//! ([`types`]), table options ([`options`]) and the catalog of tables and views
//! ([`catalog`]).

pub mod alter;
pub mod catalog;
pub mod charset;
pub mod collect;
pub mod current_watermark;
pub mod decimal;
pub mod functions;
pub mod group_id;
pub mod java_regex;
pub mod json;
pub mod json_build;
pub mod lateral;
pub mod literals;
pub mod local_time;
pub mod map_fn;
pub mod names;
pub mod newer;
pub mod options;
pub mod parser;
pub mod random;
pub mod rewrite;
pub mod similar;
pub mod syntax;
pub mod types;
pub mod unicode_literals;
pub mod unnest_fields;
pub mod url_table;
pub mod using;
pub mod window;
