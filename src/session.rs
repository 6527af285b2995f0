//! A session: the catalog, the `SET` settings, and the execution of statements.
//!
//! DDL changes the catalog (Weir's [`TableDef`]s, registered with DataFusion as
//! [`StreamTable`]s so its planner resolves names and types; views are DataFusion views).
//! `INSERT INTO` and bare `SELECT` start standing queries ([`Job`]s).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{Expr as DfExpr, ExprSchemable, LogicalPlan, LogicalPlanBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast;

use crate::checkpoint::CheckpointConfig;
use crate::error::{Result, WeirError, did_you_mean};
use crate::format::encode::OutputFormat;
use crate::job::Job;
use crate::operator::window::WindowSpec;
use crate::plan::Planner;
use crate::plan::window::{WindowInfo, WindowTable, is_time_attribute};
use crate::sink::Sink;
use crate::sql::catalog::{StreamTable, TableDef};
use crate::sql::parser::{Located, Statement};
use crate::sql::window::{WindowCall, WindowInput, WindowKind};

/// The session settings Weir reads itself (Flink's names); a setting may also be any
/// connector's or format's option, which overrides that option of every table.
pub const SETTINGS: &[&str] = &[
    "table.exec.batch-size",
    "table.exec.source.idle-timeout",
    "table.exec.state.ttl",
    WINDOWS_PER_ROW_KEY,
    crate::sql::local_time::KEY,
    "execution.checkpointing.interval",
    "execution.checkpointing.mode",
    "execution.checkpointing.tolerable-failed-checkpoints",
    "execution.savepoint.path",
    "state.checkpoints.dir",
    "state.checkpoints.num-retained",
    "pipeline.name",
    PARALLELISM_KEY,
    "table.exec.resource.default-parallelism",
    MAX_PARALLELISM_KEY,
    "metrics.reporter.prom.port",
    MAX_COLUMN_WIDTH_KEY,
    "sql-client.display.max-column-width",
    crate::format::encode::ResultMode::KEY,
    MAX_TABLE_ROWS_KEY,
    crate::plan::REUSE_SOURCE_KEY,
    crate::plan::REUSE_SUB_PLAN_KEY,
    DML_SYNC_KEY,
];

/// Flink's `table.dml-sync`: `true` makes the shell wait for an INSERT's job to end before
/// the next statement (default `false`: it runs in the background and `\jobs` lists it).
pub const DML_SYNC_KEY: &str = "table.dml-sync";

/// Flink's `parallelism.default`: how many subtasks each keyed operator of a job runs as
/// (`table.exec.resource.default-parallelism`, when set, wins, as in Flink). Default: the
/// machine's cores.
pub const PARALLELISM_KEY: &str = "parallelism.default";

/// Flink's `pipeline.max-parallelism`: the number of key groups keyed state is split into,
/// the most subtasks a keyed operator can run as. Default 128 (Flink's for small jobs).
pub const MAX_PARALLELISM_KEY: &str = "pipeline.max-parallelism";

/// The number a parallelism setting holds. Errors: not a whole number from 1 to 32768
/// (Flink's upper bound for `pipeline.max-parallelism`).
fn parallelism_of(key: &str, value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=32_768).contains(&n) => Ok(n),
        _ => Err(WeirError::user(format!(
            "setting '{key}': '{value}' is not a parallelism (a whole number from 1 to 32768)"
        ))),
    }
}

/// The machine's cores, the default parallelism.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Flink's `table.display.max-column-width` (its sql-client's older name,
/// `sql-client.display.max-column-width`, is read too): the widest a result table's cell is
/// drawn, in characters, longer text cut to it with `...` at its end. Default 30, as Flink;
/// 0: no limit.
pub const MAX_COLUMN_WIDTH_KEY: &str = "table.display.max-column-width";

/// Flink's `sql-client.execution.max-table-result.rows`: the most rows the `table` result
/// mode keeps (default 1 000 000, as Flink); past it the oldest rows go first, as in
/// Flink's `MaterializedCollectStreamResult`.
pub const MAX_TABLE_ROWS_KEY: &str = "sql-client.execution.max-table-result.rows";

/// The row limit `value` sets ([`MAX_TABLE_ROWS_KEY`]). Errors: not a whole number of 1 or
/// more.
fn max_table_rows_of(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(WeirError::user(format!(
            "setting '{MAX_TABLE_ROWS_KEY}': '{value}' is not a number of rows (a whole number, 1 or more)"
        ))),
    }
}

/// The column width limit `value` sets ([`MAX_COLUMN_WIDTH_KEY`]). Errors: not a
/// non-negative integer.
fn max_column_width_of(key: &str, value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| {
        WeirError::user(format!(
            "setting '{key}': '{value}' is not a width in characters (a whole number; 0 for no limit)"
        ))
    })
}

/// A warning for `SET key` when nothing in Weir reads `key` (a typo, most often), with the
/// nearest known name; None for a known setting, connector or format option.
pub fn unknown_setting(key: &str) -> Option<String> {
    let mut known: Vec<&str> = SETTINGS.to_vec();
    for c in crate::connector::ALL {
        use crate::format::Format;
        for f in [
            None,
            Some(Format::Json),
            Some(Format::Csv),
            Some(Format::Parquet),
        ] {
            known.extend(crate::connector::accepted_options(c, f));
        }
    }
    let prefixed = known.iter().any(|k| {
        (k.ends_with('.') || k.ends_with('#')) && key.starts_with(k.trim_end_matches('#'))
    });
    if known.contains(&key) || prefixed {
        return None;
    }
    known.retain(|k| !k.ends_with('.') && !k.ends_with('#'));
    known.sort_unstable();
    known.dedup();
    let hint = crate::error::did_you_mean(key, known.iter().copied())
        .map(|m| format!(" (did you mean '{m}'?)"))
        .unwrap_or_default();
    Some(format!(
        "'{key}' is not a setting Weir reads{hint}; it is kept, and used by nothing"
    ))
}

/// The rows per source batch that `'table.exec.batch-size' = v` asks for. Errors: not a
/// number from 1 to [`MAX_BATCH_SIZE`].
fn batch_size_of(v: &str) -> Result<usize> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
        .ok_or_else(|| {
            WeirError::user(format!(
                "'table.exec.batch-size' = '{v}' must be a number of rows from 1 to {MAX_BATCH_SIZE}"
            ))
        })
}

/// The most rows per source batch `table.exec.batch-size` takes: sources allocate a batch's
/// buffers up front, so the bound keeps one batch's memory sane (1 Mi rows).
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The setting that bounds how many windows of a HOP or CUMULATE window one row may fall
/// into (its size over its slide or step): each group is emitted once per window, so the
/// output — and the work of firing — grows with it; the bound keeps one clause from
/// asking for unbounded work.
pub const WINDOWS_PER_ROW_KEY: &str = "table.exec.window.max-windows-per-row";

/// The default of [`WINDOWS_PER_ROW_KEY`]: a one-second slide over a day is 86 400.
pub const DEFAULT_WINDOWS_PER_ROW: i64 = 100_000;

fn windows_per_row_of(v: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            WeirError::user(format!(
                "'{WINDOWS_PER_ROW_KEY}' = '{v}' must be a whole number of windows, at least 1"
            ))
        })
}

/// The default rows per batch from sources; `SET 'table.exec.batch-size' = 'n'` changes it.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// What executing a statement produced.
pub enum Outcome {
    /// DDL or SET: a message for the user.
    Done(String),
    /// A statement that ran, with a warning for the user (`[WARNING] …`: a SET of a key
    /// Weir does not read), shown even where `--quiet` hides [`Outcome::Done`].
    Warning(String),
    /// Rows to show (SHOW TABLES, DESCRIBE, SET, EXPLAIN).
    Rows(Vec<RecordBatch>),
    /// A standing query that is now running.
    Started(Job),
    /// Text to show as it is (`SHOW CREATE TABLE`, as Flink's sql-client prints it); a
    /// format other than a table writes it as one `result` cell ([`Outcome::text_rows`]).
    Text(String),
}

impl Outcome {
    /// `text` as rows: one `result` column, one row.
    pub fn text_rows(text: &str) -> Result<Vec<RecordBatch>> {
        Ok(vec![kv_batch(["result"], vec![[text.to_string()]])?])
    }
}

pub struct Session {
    ctx: SessionContext,
    /// Where the `FOR SYSTEM_TIME AS OF` clauses judged event-time (temporal joins) start,
    /// from the last standing query planned: its planner makes them temporal joins.
    temporal_lookups: std::sync::Mutex<Vec<crate::error::Pos>>,
    tables: BTreeMap<String, Arc<TableDef>>,
    /// Each view's `CREATE VIEW` statement as written, for `SHOW CREATE VIEW`.
    views: BTreeMap<String, String>,
    /// Each view's columns, kept at its creation (a view's schema never changes).
    view_schemas: BTreeMap<String, datafusion::arrow::datatypes::SchemaRef>,
    /// The `CREATE TABLE` statements as written, for `SHOW CREATE TABLE`.
    ddl: BTreeMap<String, String>,
    /// Names given by `CREATE FUNCTION`.
    user_functions: std::collections::BTreeSet<String>,
    settings: BTreeMap<String, String>,
    /// Where each setting came from: `--set k=v` or `SET 'k' = 'v'`.
    setting_origins: BTreeMap<String, String>,
    next_job: u64,
    /// How bare SELECT results print.
    pub output: OutputFormat,
    /// Result rows drawn one field per line (`\\x`, as psql's expanded display).
    pub expanded: bool,
    /// The most rows a bounded SELECT's table draws, the rest counted (0: all): the
    /// shell's `--maxrows` and `\\maxrows`, as datafusion-cli's.
    pub max_rows: usize,
    /// The shell prints each statement's time (`\\timing on`), so a result's footer gives
    /// only its count.
    pub timing: bool,
    pub quiet: bool,
    /// Show a spinner on stderr while a batch query runs (set when stderr is a terminal).
    pub progress: bool,
    /// Jobs ignore saved checkpoints and start over (`weir run --from-scratch`).
    pub from_scratch: bool,
    /// For tests of stopping part-way: in the checkpointed jobs started from now on, each
    /// source waits after emitting this many rows until the job is stopped (see
    /// [`CheckpointConfig::pause_sources_after`]).
    #[doc(hidden)]
    pub pause_sources_after: Option<u64>,
    /// Where `/metrics` is served (`weir run --metrics-addr`); without it, the setting
    /// `metrics.reporter.prom.port` serves on 127.0.0.1.
    pub metrics_addr: Option<String>,
    /// The `/metrics` endpoint and the address it was asked for.
    metrics_server: Option<(String, Arc<crate::job::exporter::MetricsServer>)>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session with an empty catalog (Flink's `default_catalog.default_database`),
    /// Flink's planner settings (case-sensitive identifiers, decimal literals) and the
    /// session zone of the machine.
    pub fn new() -> Self {
        // Flink's built-in catalog and database, so that `default_catalog.default_database.t`
        // and `default_database.t` name the table `t` as they do in Flink.
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_default_catalog_and_schema("default_catalog", "default_database");
        {
            let o = config.options_mut();
            // Flink's identifiers are case-sensitive (`dateTime`), so are Weir's.
            o.sql_parser.enable_ident_normalization = false;
            o.sql_parser.parse_float_as_decimal = true;
            o.sql_parser.collect_spans = true;
            o.sql_parser.map_string_types_to_utf8view = false;
            o.execution.target_partitions = 1;
            // DataFusion's leaf-expression pushdown (`extract_leaf_expressions`) fails on a
            // struct field read beside an unnested column ("Schema contains qualified field
            // name t.tag and unqualified field name tag"): `SELECT bid.price, tag FROM e
            // CROSS JOIN UNNEST(…) AS t (tag)`. Weir's streaming planner narrows struct reads
            // itself (`plan::narrow`); a batch Parquet scan reads a struct column whole.
            o.optimizer.enable_leaf_expression_pushdown = false;
            // Flink orders NULL lowest (FlinkPlannerImpl.defaultNullCollation = LOW): first
            // in ASC, last in DESC, where no NULLS FIRST/LAST is written.
            o.sql_parser.default_null_ordering = "nulls_min".to_string();
        }
        // `FROM 'archive/hot_items'`: a quoted path is a table (Hive partitions inferred).
        let ctx = crate::sql::url_table::with_url_tables(SessionContext::new_with_config(config));
        crate::sql::functions::register(&ctx);
        ctx.add_analyzer_rule(Arc::new(crate::sql::lateral::LateralUnnest));
        ctx.add_analyzer_rule(Arc::new(crate::sql::group_id::ResolveGroupId));
        ctx.add_analyzer_rule(Arc::new(crate::sql::local_time::LtzInSessionZone));
        ctx.add_analyzer_rule(Arc::new(crate::sql::types::PositionalRowCasts));
        ctx.add_analyzer_rule(Arc::new(crate::sql::types::MapKeyCasts));
        ctx.add_analyzer_rule(Arc::new(crate::sql::types::JavaFloatCasts));
        ctx.add_analyzer_rule(Arc::new(crate::sql::types::JavaNumericCasts));
        let mut session = Session {
            ctx,
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            view_schemas: BTreeMap::new(),
            ddl: BTreeMap::new(),
            user_functions: std::collections::BTreeSet::new(),
            settings: BTreeMap::new(),
            setting_origins: BTreeMap::new(),
            next_job: 1,
            output: OutputFormat::Table,
            expanded: false,
            max_rows: 0,
            timing: false,
            quiet: false,
            progress: false,
            from_scratch: false,
            pause_sources_after: None,
            metrics_addr: None,
            temporal_lookups: Default::default(),
            metrics_server: None,
        };
        // The machine's zone, Flink's default (it always names a zone).
        let _ = session.set_zone(None);
        session
    }

    /// The address `/metrics` is to be served on, if any: `--metrics-addr`, else
    /// `127.0.0.1:<metrics.reporter.prom.port>` (Flink's option). Errors: a port that is
    /// not a number from 0 to 65535.
    fn metrics_address(&self) -> Result<Option<String>> {
        if let Some(a) = &self.metrics_addr {
            return Ok(Some(a.clone()));
        }
        let Some(port) = self.setting("metrics.reporter.prom.port") else {
            return Ok(None);
        };
        let port: u16 = port.trim().parse().map_err(|_| {
            WeirError::user(format!(
                "'metrics.reporter.prom.port' must be a port number (0 to 65535), not '{port}'"
            ))
        })?;
        Ok(Some(format!("127.0.0.1:{port}")))
    }

    /// The running `/metrics` endpoint, started at the configured address when there is
    /// one. The first address configured stays: a later change of the setting is refused
    /// while this session runs (its jobs are listed where they were).
    pub fn metrics_server(&mut self) -> Result<Option<Arc<crate::job::exporter::MetricsServer>>> {
        let Some(addr) = self.metrics_address()? else {
            return Ok(None);
        };
        if let Some((served, s)) = &self.metrics_server {
            if *served == addr {
                return Ok(Some(s.clone()));
            }
            return Err(WeirError::user(format!(
                "metrics are already served at http://{}/metrics ('{served}'); this session cannot move them to '{addr}'",
                s.addr()
            )));
        }
        let s = Arc::new(crate::job::exporter::MetricsServer::start(&addr)?);
        if !self.quiet {
            crate::message::info(format!("Metrics at http://{}/metrics", s.addr()));
        }
        self.metrics_server = Some((addr, s.clone()));
        Ok(Some(s))
    }

    /// How the job of `stmt` checkpoints, from the settings (see [`crate::checkpoint`]).
    fn checkpoint_config(&self, stmt: &Located) -> Result<CheckpointConfig> {
        let mut config = CheckpointConfig::from_settings(
            &self.settings_list(),
            &format!("q-{}", query_id(&stmt.text)),
            self.from_scratch,
        )
        .map_err(|e| e.at(Some(stmt.pos)))?;
        config.pause_sources_after = self.pause_sources_after;
        Ok(config)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The schema of a table or view.
    pub fn schema_of(&self, name: &str) -> Option<datafusion::arrow::datatypes::SchemaRef> {
        if let Some(t) = self.tables.get(name) {
            return Some(t.schema.clone());
        }
        self.view_schemas.get(name).cloned()
    }

    /// A table's definition (connector, options).
    pub fn table_def(&self, name: &str) -> Option<Arc<TableDef>> {
        self.tables.get(name).cloned()
    }

    /// Sets `key` as `SET 'key' = 'value'` does. Errors: a value the setting cannot take
    /// (checked here for `table.local-time-zone`; other settings when a statement uses
    /// them), or one of [`crate::connector::TABLE_IDENTITY_OPTIONS`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if crate::connector::TABLE_IDENTITY_OPTIONS.contains(&key) {
            return Err(WeirError::user(format!(
                "'{key}' says what a table is, which a session SET does not change; write it in the table's WITH clause, or ALTER TABLE name SET ('{key}' = '{value}')"
            )));
        }
        if key == crate::sql::local_time::KEY {
            self.set_zone(Some(value))?;
        }
        // A format's option is checked as a table's WITH clause checks it, so a bad value
        // is reported here rather than at the first query that reads it.
        if let Some(format) = match key.split('.').next() {
            Some("csv") => Some(crate::format::Format::Csv),
            Some("json") => Some(crate::format::Format::Json),
            _ => None,
        } {
            let mut o = crate::sql::options::Options::new();
            o.insert(key, value, None);
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
            crate::format::Decoder::new(format, schema, &o).and_then(|_| match format {
                crate::format::Format::Json => {
                    crate::format::json_out::JsonWrite::from_options(&o).map(|_| ())
                }
                _ => Ok(()),
            })?;
        }
        // A value is checked when it is set, by the code that reads it later.
        let one = [(key.to_string(), value.to_string())];
        if key.starts_with("execution.checkpointing.") || key.starts_with("state.checkpoints.") {
            crate::checkpoint::CheckpointConfig::from_settings(&one, "job", false)?;
        }
        match key {
            "table.exec.batch-size" => {
                batch_size_of(value)?;
            }
            WINDOWS_PER_ROW_KEY => {
                windows_per_row_of(value)?;
            }
            MAX_COLUMN_WIDTH_KEY | "sql-client.display.max-column-width" => {
                max_column_width_of(key, value)?;
            }
            MAX_TABLE_ROWS_KEY => {
                max_table_rows_of(value)?;
            }
            PARALLELISM_KEY | "table.exec.resource.default-parallelism" | MAX_PARALLELISM_KEY => {
                parallelism_of(key, value)?;
            }
            crate::format::encode::ResultMode::KEY => {
                crate::format::encode::ResultMode::parse(value)?;
            }
            "table.exec.source.idle-timeout" | "table.exec.state.ttl" => {
                crate::sql::options::parse_duration(value)
                    .map_err(|m| WeirError::user(format!("setting '{key}': {m}")))?;
            }
            crate::plan::REUSE_SOURCE_KEY | crate::plan::REUSE_SUB_PLAN_KEY | DML_SYNC_KEY
                if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") =>
            {
                return Err(WeirError::user(format!(
                    "setting '{key}' is 'true' or 'false', not '{value}'"
                )));
            }
            _ => {}
        }
        self.settings.insert(key.to_string(), value.to_string());
        self.setting_origins
            .insert(key.to_string(), format!("SET '{key}' = '{value}'"));
        self.publish_settings();
        Ok(())
    }

    /// Hands the settings to DataFusion's session config, where batch reads of tables find
    /// them ([`crate::sql::catalog::SessionSettings`]).
    fn publish_settings(&self) {
        let published = crate::sql::catalog::SessionSettings {
            settings: self.settings_list(),
            origins: self.setting_origins.clone(),
        };
        let state = self.ctx.state_ref();
        state
            .write()
            .config_mut()
            .set_extension(std::sync::Arc::new(published));
    }

    /// Sets `key` as [`Session::set`] does, from the command line's `--set KEY=VALUE`: a
    /// bad value a table's option takes from it is reported at the flag.
    pub fn set_from_flag(&mut self, key: &str, value: &str) -> Result<()> {
        self.set(key, value)?;
        self.setting_origins
            .insert(key.to_string(), format!("--set {key}={value}"));
        self.publish_settings();
        Ok(())
    }

    /// Gives DataFusion's functions the session time zone (`table.local-time-zone`; None:
    /// the machine's, Flink's default).
    fn set_zone(&mut self, zone: Option<&str>) -> Result<()> {
        let zone = Some(match zone {
            Some(z) => crate::sql::local_time::parse_zone(z)?,
            None => crate::sql::local_time::machine_zone(),
        });
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().execution.time_zone = zone;
        Ok(())
    }

    /// The error for dropping or renaming table `name` (at `pos`) while another table
    /// names it as where its late rows or bad records go (`'late-data.sink'`,
    /// `'dead-letter.sink'`); None when none does.
    fn named_by_options(&self, name: &str, pos: crate::error::Pos) -> Option<WeirError> {
        self.tables.iter().find_map(|(other, d)| {
            ["late-data.sink", "dead-letter.sink"]
                .into_iter()
                .find(|o| other != name && d.options.get(o) == Some(name))
                .map(|option| {
                    WeirError::sql(
                        format!(
                            "table '{name}' is named by table '{other}' in its option '{option}'"
                        ),
                        Some(pos),
                    )
                    .with_hint(format!(
                        "ALTER TABLE {other} SET ('{option}' = '…') or drop {other} first"
                    ))
                })
        })
    }

    /// The views whose query reads table or view `name` (directly, or through a view it
    /// reads: a view's plan holds the views it reads), in name order.
    /// Puts `def` in place of table `name`'s definition in the provider DataFusion holds,
    /// so the views that read it see it too (see [`StreamTable::replace`]); a table of
    /// another kind of provider is registered anew.
    async fn replace_table(&self, name: &str, def: Arc<TableDef>) -> Result<()> {
        let provider = self.ctx.table_provider(relation(name)).await?;
        if let Some(t) = provider.downcast_ref::<StreamTable>() {
            t.replace(def);
            return Ok(());
        }
        self.ctx.deregister_table(relation(name))?;
        self.ctx
            .register_table(relation(name), Arc::new(StreamTable::new(def)))?;
        Ok(())
    }

    async fn views_reading(&self, name: &str) -> Vec<String> {
        let mut out = vec![];
        for v in self.views.keys() {
            if v == name {
                continue;
            }
            let Ok(provider) = self.ctx.table_provider(relation(v)).await else {
                continue;
            };
            let Some(view) = provider.downcast_ref::<datafusion::datasource::ViewTable>() else {
                continue;
            };
            if plan_reads(view.logical_plan(), name) {
                out.push(v.clone());
            }
        }
        out
    }

    /// How result tables are drawn: the column width limit the settings give and the
    /// expanded display (`\\x`). Errors: a malformed width.
    pub fn display(&self) -> Result<crate::format::encode::Display> {
        let width = match self
            .settings
            .get(MAX_COLUMN_WIDTH_KEY)
            .map(|v| (MAX_COLUMN_WIDTH_KEY, v))
            .or_else(|| {
                self.settings
                    .get("sql-client.display.max-column-width")
                    .map(|v| ("sql-client.display.max-column-width", v))
            }) {
            Some((k, v)) => max_column_width_of(k, v)?,
            None => crate::format::encode::Display::DEFAULT_MAX_WIDTH,
        };
        let mode = match self.settings.get(crate::format::encode::ResultMode::KEY) {
            Some(v) => crate::format::encode::ResultMode::parse(v)?,
            None => crate::format::encode::ResultMode::default(),
        };
        let zone = self
            .ctx
            .state_ref()
            .read()
            .config_options()
            .execution
            .time_zone
            .as_deref()
            .map(std::sync::Arc::from);
        let max_table_rows = match self.settings.get(MAX_TABLE_ROWS_KEY) {
            Some(v) => max_table_rows_of(v)?,
            None => crate::format::encode::Display::DEFAULT_MAX_TABLE_ROWS,
        };
        Ok(crate::format::encode::Display {
            max_width: width,
            expanded: self.expanded,
            timed: self.timing,
            mode,
            zone,
            max_rows: 0,
            max_table_rows,
        })
    }

    /// What `SET;` lists, as Flink's sql-client: every setting Weir reads with its value
    /// (its default when unset; empty when unset means off), then any other key set
    /// (connector and format options overriding every table's), secrets masked, by key.
    fn settings_shown(&self) -> Vec<[String; 2]> {
        let default = |k: &str| -> String {
            match k {
                "table.exec.batch-size" => DEFAULT_BATCH_SIZE.to_string(),
                WINDOWS_PER_ROW_KEY => DEFAULT_WINDOWS_PER_ROW.to_string(),
                MAX_COLUMN_WIDTH_KEY => {
                    crate::format::encode::Display::DEFAULT_MAX_WIDTH.to_string()
                }
                crate::format::encode::ResultMode::KEY => "tableau".into(),
                crate::sql::local_time::KEY => crate::sql::local_time::machine_zone(),
                "table.exec.source.idle-timeout" | "table.exec.state.ttl" => "0 ms".into(),
                "execution.checkpointing.mode" => "EXACTLY_ONCE".into(),
                crate::plan::REUSE_SOURCE_KEY | crate::plan::REUSE_SUB_PLAN_KEY => "true".into(),
                DML_SYNC_KEY => "false".into(),
                "execution.checkpointing.tolerable-failed-checkpoints" => "0".into(),
                "state.checkpoints.num-retained" => "1".into(),
                PARALLELISM_KEY => cores().to_string(),
                MAX_PARALLELISM_KEY => {
                    crate::operator::exchange::DEFAULT_MAX_PARALLELISM.to_string()
                }
                "state.checkpoints.dir" => crate::checkpoint::default_dir().display().to_string(),
                MAX_TABLE_ROWS_KEY => {
                    crate::format::encode::Display::DEFAULT_MAX_TABLE_ROWS.to_string()
                }
                _ => String::new(),
            }
        };
        let mut rows: std::collections::BTreeMap<String, String> = SETTINGS
            .iter()
            .filter(|k| **k != "sql-client.display.max-column-width")
            .map(|k| (k.to_string(), default(k)))
            .collect();
        for (k, v) in &self.settings {
            rows.insert(k.clone(), crate::sql::options::shown(k, v).to_string());
        }
        // The width in use, also when only the older key set it.
        if let Ok(d) = self.display() {
            rows.insert(MAX_COLUMN_WIDTH_KEY.to_string(), d.max_width.to_string());
        }
        rows.into_iter().map(|(k, v)| [k, v]).collect()
    }

    /// How many subtasks each keyed operator of a job runs as ([`PARALLELISM_KEY`]), at
    /// most `pipeline.max-parallelism`. Errors: a malformed setting, or a parallelism above
    /// the maximum.
    pub fn parallelism(&self) -> Result<usize> {
        let p = match self
            .settings
            .get_key_value("table.exec.resource.default-parallelism")
            .or_else(|| self.settings.get_key_value(PARALLELISM_KEY))
        {
            Some((k, v)) => parallelism_of(k, v)?,
            None => cores(),
        };
        let max = self.max_parallelism()?;
        if p > max {
            if self.settings.contains_key(PARALLELISM_KEY)
                || self
                    .settings
                    .contains_key("table.exec.resource.default-parallelism")
            {
                return Err(WeirError::user(format!(
                    "parallelism {p} is above '{MAX_PARALLELISM_KEY}' ({max}): a keyed operator cannot run as more subtasks than it has key groups"
                ))
                .with_hint(format!("SET '{MAX_PARALLELISM_KEY}' = '{p}' or higher")));
            }
            return Ok(max);
        }
        Ok(p)
    }

    /// The number of key groups ([`MAX_PARALLELISM_KEY`]). Errors: a malformed setting.
    pub fn max_parallelism(&self) -> Result<usize> {
        match self.settings.get(MAX_PARALLELISM_KEY) {
            Some(v) => parallelism_of(MAX_PARALLELISM_KEY, v),
            None => Ok(crate::operator::exchange::DEFAULT_MAX_PARALLELISM),
        }
    }

    /// The value `SET` gave `key`, if any.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// Forgets `key`'s value, as `RESET 'key'`.
    pub fn unset(&mut self, key: &str) {
        if key == crate::sql::local_time::KEY {
            let _ = self.set_zone(None);
        }
        self.settings.remove(key);
        self.setting_origins.remove(key);
        self.publish_settings();
    }

    fn batch_size(&self) -> Result<usize> {
        match self.settings.get("table.exec.batch-size") {
            None => Ok(DEFAULT_BATCH_SIZE),
            Some(v) => batch_size_of(v),
        }
    }

    fn settings_list(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Names of tables and views, for completion and "did you mean".
    pub fn relation_names(&self) -> Vec<String> {
        self.tables
            .keys()
            .chain(self.views.keys())
            .cloned()
            .collect()
    }

    fn unknown_relation(&self, name: &str, pos: crate::error::Pos) -> WeirError {
        let names = self.relation_names();
        let mut e = WeirError::sql(format!("no table or view named '{name}'"), Some(pos));
        if let Some(s) = did_you_mean(name, names.iter().map(|s| s.as_str())) {
            e = e.with_hint(format!("did you mean '{s}'?"));
        }
        e
    }

    /// Executes one statement.
    pub async fn execute(&mut self, stmt: &Located) -> Result<Outcome> {
        let pos = Some(stmt.pos);
        match &stmt.statement {
            Statement::CreateTable(c) => {
                if self.tables.contains_key(&c.name) || self.views.contains_key(&c.name) {
                    // Flink's CTAS with IF NOT EXISTS over an existing table inserts the
                    // query's rows into it, as `INSERT INTO t SELECT …` would.
                    if let (true, Some(query), true) = (
                        c.if_not_exists,
                        &c.as_query,
                        self.tables.contains_key(&c.name),
                    ) {
                        let insert = Located {
                            statement: Statement::Insert {
                                table: c.name.clone(),
                                table_pos: c.name_pos,
                                columns: vec![],
                                query: query.clone(),
                            },
                            pos: stmt.pos,
                            text: stmt.text.clone(),
                            windows: stmt.windows.clone(),
                            lookups: stmt.lookups.clone(),
                        };
                        return Box::pin(self.execute(&insert)).await;
                    }
                    if c.if_not_exists && c.as_query.is_some() {
                        // Flink's CTAS would insert into it, and a view takes no rows.
                        return Err(WeirError::sql(
                            format!(
                                "'{}' is a view: CREATE TABLE IF NOT EXISTS … AS SELECT inserts into the table of that name when there is one, and a view takes no rows",
                                c.name
                            ),
                            Some(c.name_pos),
                        )
                        .with_hint("give the new table another name, or DROP VIEW first"));
                    }
                    if c.if_not_exists {
                        return Ok(Outcome::Done(format!(
                            "[INFO] Table '{}' already exists: nothing done (IF NOT EXISTS).",
                            c.name
                        )));
                    }
                    return Err(WeirError::sql(
                        format!("table '{}' already exists", c.name),
                        Some(c.name_pos),
                    )
                    .with_hint("use CREATE TABLE IF NOT EXISTS, or DROP TABLE first"));
                }
                if let Some(like) = &c.like {
                    return self.create_table_like(c, like, &stmt.text);
                }
                if let Some(query) = &c.as_query {
                    return Box::pin(self.create_table_as(c, query, stmt)).await;
                }
                let def = TableDef::from_ddl(c, &self.ctx.state())?;
                crate::connector::validate(&def)?;
                crate::connector::validate_generator(&def)?;
                let def = Arc::new(def);
                self.ctx
                    .register_table(relation(&def.name), Arc::new(StreamTable::new(def.clone())))?;
                self.ddl.insert(def.name.clone(), stmt.text.clone());
                self.tables.insert(def.name.clone(), def);
                Ok(Outcome::Done(format!("[INFO] Table '{}' created.", c.name)))
            }
            Statement::AlterTable {
                name,
                name_pos,
                if_exists,
                options,
                reset,
            } => {
                let Some(old) = self.tables.get(name) else {
                    if *if_exists {
                        return Ok(Outcome::Done(format!("[INFO] No table '{name}' to alter.")));
                    }
                    return Err(self.unknown_relation(name, *name_pos));
                };
                let mut def = TableDef::clone(old);
                for o in options {
                    if *reset {
                        if o.key == "connector" {
                            return Err(WeirError::sql(
                                "the option 'connector' cannot be reset",
                                Some(o.pos),
                            )
                            .with_hint(
                                "drop the table and create it again with another connector",
                            ));
                        }
                        def.options.remove(&o.key);
                    } else {
                        def.options
                            .insert(o.key.clone(), o.value.clone(), Some(o.pos));
                    }
                }
                def.connector = def.options.get("connector").unwrap_or_default().to_string();
                crate::connector::validate(&def)?;
                crate::connector::validate_generator(&def)?;
                let def = Arc::new(def);
                self.replace_table(name, def.clone()).await?;
                if let Some(ddl) = self.ddl.get(name) {
                    let opts: Vec<(&str, &str)> = def.options.iter().collect();
                    if let Some(text) = crate::sql::parser::with_options_replaced(ddl, &opts) {
                        self.ddl.insert(name.clone(), text);
                    }
                }
                self.tables.insert(name.clone(), def);
                Ok(Outcome::Done(format!("[INFO] Table '{name}' altered.")))
            }
            Statement::AlterSchema {
                name,
                name_pos,
                if_exists,
                change,
                pos: at,
            } => {
                if !self.tables.contains_key(name) {
                    if *if_exists {
                        return Ok(Outcome::Done(format!("[INFO] No table '{name}' to alter.")));
                    }
                    return Err(self.unknown_relation(name, *name_pos));
                }
                // A view is typed by the columns it was created over.
                if let Some(e) =
                    read_by_views("table", name, *name_pos, &self.views_reading(name).await)
                {
                    return Err(e);
                }
                let Some(ddl) = self.ddl.get(name) else {
                    return Err(WeirError::sql(
                        format!("table '{name}' was not declared by CREATE TABLE"),
                        Some(*name_pos),
                    ));
                };
                let altered = crate::sql::alter::apply(ddl, name, change, *at)?;
                // The new text is declared as a CREATE TABLE is; what it refuses (a
                // computed column of an unknown function, a watermark on a non-time
                // column) is reported at the change.
                let moved = |e: WeirError| altered.moved(e, *at);
                let located = crate::sql::parser::parse_script(&altered.text).map_err(moved)?;
                let Some(Statement::CreateTable(c)) = located.first().map(|l| &l.statement) else {
                    return Err(WeirError::sql(
                        "the altered table does not parse",
                        Some(*at),
                    ));
                };
                let mut c = c.clone();
                c.name = name.clone();
                let def = TableDef::from_ddl(&c, &self.ctx.state()).map_err(moved)?;
                crate::connector::validate(&def).map_err(moved)?;
                let def = Arc::new(def);
                self.ctx.deregister_table(relation(name))?;
                self.ctx
                    .register_table(relation(name), Arc::new(StreamTable::new(def.clone())))?;
                self.ddl.insert(name.clone(), altered.text);
                self.tables.insert(name.clone(), def);
                Ok(Outcome::Done(format!("[INFO] Table '{name}' altered.")))
            }
            Statement::RenameTable {
                name,
                name_pos,
                if_exists,
                to,
                to_pos,
            } => {
                let Some(old) = self.tables.get(name) else {
                    if *if_exists {
                        return Ok(Outcome::Done(format!(
                            "[INFO] No table '{name}' to rename."
                        )));
                    }
                    return Err(self.unknown_relation(name, *name_pos));
                };
                if self.tables.contains_key(to) || self.views.contains_key(to) {
                    return Err(WeirError::sql(
                        format!("a table or view named '{to}' already exists"),
                        Some(*to_pos),
                    ));
                }
                // A view reads its tables by name: renaming one under it would break it.
                if let Some(e) =
                    read_by_views("table", name, *name_pos, &self.views_reading(name).await)
                {
                    return Err(e);
                }
                if let Some(e) = self.named_by_options(name, *name_pos) {
                    return Err(e);
                }
                let mut def = TableDef::clone(old);
                def.name = to.clone();
                let def = Arc::new(def);
                self.ctx.deregister_table(relation(name))?;
                self.ctx
                    .register_table(relation(to), Arc::new(StreamTable::new(def.clone())))?;
                self.tables.remove(name);
                self.tables.insert(to.clone(), def);
                if let Some(ddl) = self.ddl.remove(name) {
                    let text = crate::sql::parser::with_name_replaced(&ddl, to).unwrap_or(ddl);
                    self.ddl.insert(to.clone(), text);
                }
                Ok(Outcome::Done(format!(
                    "[INFO] Table '{name}' renamed to '{to}'."
                )))
            }
            Statement::CreateFunction {
                name,
                name_pos,
                class,
                class_pos,
            } => {
                use crate::sql::functions::{FlinkScalar, NATIVE_CLASSES};
                let Some((_, f)) = NATIVE_CLASSES.iter().find(|(c, _)| c == class) else {
                    return Err(WeirError::sql(
                        format!("Weir runs no Java: no function of its own implements '{class}'"),
                        Some(*class_pos),
                    )
                    .with_hint(format!(
                        "classes Weir implements natively: {}",
                        NATIVE_CLASSES
                            .iter()
                            .map(|(c, _)| *c)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                if name.contains('.') {
                    return Err(WeirError::sql(
                        "a function name has no catalog or database",
                        Some(*name_pos),
                    ));
                }
                self.ctx.register_udf(FlinkScalar::udf_named(*f, name));
                self.user_functions.insert(name.clone());
                Ok(Outcome::Done(format!("[INFO] Function '{name}' created.")))
            }
            Statement::CreateView {
                name,
                name_pos,
                if_not_exists,
                or_replace,
                query,
            } => {
                if self.tables.contains_key(name) || self.views.contains_key(name) {
                    if *if_not_exists {
                        return Ok(Outcome::Done(format!(
                            "[INFO] '{name}' already exists: nothing done (IF NOT EXISTS)."
                        )));
                    }
                    if !*or_replace || self.tables.contains_key(name) {
                        return Err(WeirError::sql(
                            format!("'{name}' already exists"),
                            Some(*name_pos),
                        ));
                    }
                }
                let plan = self
                    .logical_plan(query, &stmt.windows, &stmt.lookups, false)
                    .await
                    .map_err(|e| e.at(pos))?;
                self.view_schemas
                    .insert(name.clone(), Arc::new(plan.schema().as_arrow().clone()));
                let view = datafusion::catalog::view::ViewTable::new(plan, Some(query.to_string()));
                self.ctx.deregister_table(relation(name))?;
                self.ctx.register_table(relation(name), Arc::new(view))?;
                self.views
                    .insert(name.clone(), stmt.text.trim().to_string());
                Ok(Outcome::Done(format!("[INFO] View '{name}' created.")))
            }
            Statement::Drop {
                view,
                name,
                name_pos,
                if_exists,
            } => {
                let kind = if *view { "view" } else { "table" };
                if let Some(e) =
                    read_by_views(kind, name, *name_pos, &self.views_reading(name).await)
                {
                    return Err(e);
                }
                if let Some(e) = self.named_by_options(name, *name_pos) {
                    return Err(e);
                }
                let exists = if *view {
                    self.view_schemas.remove(name);
                    self.views.remove(name).is_some()
                } else {
                    self.ddl.remove(name);
                    self.tables.remove(name).is_some()
                };
                if !exists {
                    if *if_exists {
                        return Ok(Outcome::Done(format!(
                            "[INFO] No '{name}' to drop: nothing done (IF EXISTS)."
                        )));
                    }
                    return Err(self.unknown_relation(name, *name_pos));
                }
                self.ctx.deregister_table(relation(name))?;
                Ok(Outcome::Done(format!(
                    "[INFO] {} '{name}' dropped.",
                    if *view { "View" } else { "Table" }
                )))
            }
            Statement::Set { key, value } => match (key, value) {
                (Some(k), Some(v)) => {
                    self.set(k, v).map_err(|e| e.at(Some(stmt.pos)))?;
                    Ok(match unknown_setting(k) {
                        Some(w) => Outcome::Warning(format!("[WARNING] {w}")),
                        None => Outcome::Done("[INFO] Execute statement succeeded.".into()),
                    })
                }
                _ => Ok(Outcome::Rows(vec![kv_batch(
                    ["key", "value"],
                    self.settings_shown(),
                )?])),
            },
            Statement::Reset(k) => {
                match k {
                    Some(k) => self.unset(k),
                    None => {
                        let _ = self.set_zone(None);
                        self.settings.clear();
                        self.setting_origins.clear();
                        self.publish_settings();
                    }
                }
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::ShowCatalog(what, like) => {
                use crate::sql::parser::CatalogShow;
                let one = |col: &str, v: &str| {
                    let rows = if like.as_ref().is_none_or(|l| l.admits(v)) {
                        vec![[v.to_string()]]
                    } else {
                        vec![]
                    };
                    kv_batch([col], rows)
                };
                Ok(Outcome::Rows(vec![match what {
                    CatalogShow::Catalogs => one("catalog name", DEFAULT_CATALOG)?,
                    CatalogShow::Databases => one("database name", DEFAULT_DATABASE)?,
                    CatalogShow::CurrentCatalog => one("current catalog name", DEFAULT_CATALOG)?,
                    CatalogShow::CurrentDatabase => one("current database name", DEFAULT_DATABASE)?,
                    CatalogShow::Modules { full: false } => one("module name", "core")?,
                    CatalogShow::Modules { full: true } => kv_batch(
                        ["module name", "used"],
                        vec![["core".to_string(), "true".to_string()]],
                    )?,
                    CatalogShow::Jars => kv_batch(["jars"], vec![])?,
                }]))
            }
            Statement::Use {
                catalog,
                name,
                name_pos,
            } => {
                let known = if *catalog {
                    name == DEFAULT_CATALOG
                } else {
                    name.is_empty()
                        || name == DEFAULT_DATABASE
                        || *name == format!("{DEFAULT_CATALOG}.{DEFAULT_DATABASE}")
                };
                if !known {
                    let kind = if *catalog { "catalog" } else { "database" };
                    return Err(WeirError::sql(
                        format!("no {kind} named '{name}'"),
                        Some(*name_pos),
                    )
                    .with_hint(format!(
                        "Weir has one catalog and database, as Flink's defaults: \
                         {DEFAULT_CATALOG}.{DEFAULT_DATABASE}"
                    )));
                }
                Ok(Outcome::Done("[INFO] Execute statement succeeded.".into()))
            }
            Statement::ShowFunctions { user, like } => {
                let names: std::collections::BTreeSet<String> = if *user {
                    self.user_functions.clone()
                } else {
                    let state = self.ctx.state();
                    state
                        .scalar_functions()
                        .keys()
                        .chain(state.aggregate_functions().keys())
                        .chain(state.window_functions().keys())
                        .cloned()
                        .chain(
                            crate::sql::rewrite::FLINK_NAMES
                                .iter()
                                .map(|n| n.to_ascii_lowercase()),
                        )
                        .chain(self.user_functions.iter().cloned())
                        .collect()
                };
                Ok(Outcome::Rows(vec![kv_batch(
                    ["function name"],
                    names
                        .into_iter()
                        .filter(|n| like.as_ref().is_none_or(|l| l.admits(n)))
                        .map(|n| [n])
                        .collect(),
                )?]))
            }
            Statement::ShowCreate {
                view,
                name,
                name_pos,
            } => {
                let text = if *view {
                    // As written, like a table's (the query Weir plans is rewritten).
                    self.views.get(name).cloned()
                } else {
                    // As written, but with secrets starred out.
                    self.ddl
                        .get(name)
                        .map(|d| crate::sql::options::scrub_sql(d))
                };
                match text {
                    Some(t) => Ok(Outcome::Text(t)),
                    None if !*view && self.views.contains_key(name) => Err(WeirError::sql(
                        format!("'{name}' is a view"),
                        Some(*name_pos),
                    )
                    .with_hint(format!("SHOW CREATE VIEW {name}"))),
                    None if *view && self.tables.contains_key(name) => Err(WeirError::sql(
                        format!("'{name}' is a table"),
                        Some(*name_pos),
                    )
                    .with_hint(format!("SHOW CREATE TABLE {name}"))),
                    None => Err(self.unknown_relation(name, *name_pos)),
                }
            }
            Statement::ShowTables { views_only, like } => {
                let rows = self
                    .tables
                    .values()
                    .filter(|_| !views_only)
                    .map(|t| [t.name.clone(), format!("table ({})", t.connector)])
                    .chain(self.views.keys().map(|v| [v.clone(), "view".to_string()]))
                    .filter(|[n, _]| like.as_ref().is_none_or(|l| l.admits(n)))
                    .collect();
                Ok(Outcome::Rows(vec![kv_batch(["name", "kind"], rows)?]))
            }
            Statement::Describe {
                name,
                name_pos,
                like,
            } => {
                let schema = match self.tables.get(name) {
                    Some(t) => t.schema.clone(),
                    None if self.views.contains_key(name) => {
                        self.ctx.table_provider(relation(name)).await?.schema()
                    }
                    None => return Err(self.unknown_relation(name, *name_pos)),
                };
                // A view's time attributes, as Flink's DESCRIBE marks them: the columns
                // its query passes a rowtime or proctime attribute through to.
                let view_plan = if self.tables.contains_key(name) {
                    None
                } else {
                    let provider = self.ctx.table_provider(relation(name)).await?;
                    provider
                        .downcast_ref::<datafusion::catalog::view::ViewTable>()
                        .map(|v| v.logical_plan().clone())
                };
                let view_marks = |col: &str| -> &'static str {
                    let Some(plan) = &view_plan else { return "" };
                    if !crate::plan::window::is_time_attribute(plan, col) {
                        return "";
                    }
                    let c = datafusion::common::Column::new_unqualified(col);
                    if crate::plan::window::is_proctime_attribute(plan, &c) {
                        " *PROCTIME*"
                    } else {
                        " *ROWTIME*"
                    }
                };
                // Flink's DESCRIBE: name, type (a time attribute marked `*ROWTIME*` or
                // `*PROCTIME*`), null, key (`PRI(…)`), extras (a computed column's `AS
                // expr`, a metadata column's `METADATA [FROM 'key'] [VIRTUAL]`), watermark.
                let def = self.tables.get(name).cloned();
                let pk = def
                    .as_ref()
                    .filter(|d| !d.primary_key.is_empty())
                    .map(|d| format!("PRI({})", d.primary_key.join(", ")));
                let rows = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| like.as_ref().is_none_or(|l| l.admits(f.name())))
                    .map(|(i, f)| {
                        let mut ty = crate::sql::types::flink_type_name(f.data_type());
                        ty.push_str(view_marks(f.name()));
                        let (mut key, mut extras, mut watermark) =
                            (String::new(), String::new(), String::new());
                        let mut nullable = true;
                        if let Some(d) = &def {
                            if let Some(w) = d.watermark.as_ref().filter(|w| w.column == *f.name())
                            {
                                ty.push_str(" *ROWTIME*");
                                watermark = w.expr.to_string();
                            }
                            if d.proctime_column() == Some(f.name().as_str()) {
                                ty.push_str(" *PROCTIME*");
                            }
                            if d.primary_key.contains(f.name()) {
                                key = pk.clone().unwrap_or_default();
                            }
                            if let Some((_, e, _)) = d.computed.iter().find(|(c, _, _)| *c == i) {
                                extras = format!("AS {e}");
                            } else if let Some(m) =
                                d.metadata_declared.iter().find(|m| m.name == *f.name())
                            {
                                extras = m.extras.clone();
                                nullable &= m.nullable;
                            }
                        }
                        // A primary key's columns are NOT NULL (Flink's resolved schema).
                        let nullable = nullable && f.is_nullable() && key.is_empty();
                        [
                            f.name().clone(),
                            ty,
                            nullable.to_string(),
                            key,
                            extras,
                            watermark,
                        ]
                    })
                    .collect();
                Ok(Outcome::Rows(vec![kv_batch(
                    ["name", "type", "null", "key", "extras", "watermark"],
                    rows,
                )?]))
            }
            Statement::Explain {
                inner,
                changelog_mode,
            } => {
                let (plans, _) = self.plan_statement(inner).await?;
                let mut text = plans
                    .first()
                    .map(|p| p.explain(*changelog_mode).trim_end().to_string())
                    .unwrap_or_default();
                if let Statement::Insert { table, .. } = &inner.statement {
                    // The sink heads the tree, as in Flink's plan; like Flink's, its mode
                    // is `[NONE]`, since it sends no rows on.
                    let connector = self
                        .tables
                        .get(table)
                        .map(|d| d.connector.clone())
                        .unwrap_or_default();
                    let mode = if *changelog_mode {
                        ", changelogMode=[NONE]"
                    } else {
                        ""
                    };
                    let mut tree = format!("Sink: {table} (connector '{connector}'){mode}");
                    for line in text.lines() {
                        tree.push_str("\n  ");
                        tree.push_str(line);
                    }
                    text = tree;
                }
                Ok(Outcome::Rows(vec![kv_batch(["plan"], vec![[text]])?]))
            }
            Statement::StatementSet(members) if members.len() == 1 => {
                Box::pin(self.execute(&members[0])).await
            }
            Statement::Query(_) | Statement::Insert { .. } | Statement::StatementSet(_) => {
                let (plan, sink) = self.plan_statement(stmt).await?;
                let mut checkpoint = self.checkpoint_config(stmt)?;
                if matches!(stmt.statement, Statement::Query(_)) {
                    // Rows shown on the terminal are not a result to resume: a bare SELECT
                    // starts afresh each time.
                    checkpoint.interval = None;
                    checkpoint.restore_path = None;
                }
                let id = self.next_job;
                let name = checkpoint.job.clone();
                let server = self.metrics_server().map_err(|e| e.at(Some(stmt.pos)))?;
                let job = Job::start(
                    id,
                    stmt.text.clone(),
                    plan,
                    sink,
                    checkpoint,
                    self.max_parallelism()?,
                )?;
                self.next_job += 1;
                export(server, &job, &name);
                Ok(Outcome::Started(job))
            }
        }
    }

    /// Registers rows held in memory as a bounded stream table named `name`, replayed batch
    /// by batch. `watermark` is `(column, expression)`, as in `WATERMARK FOR column AS
    /// expression`.
    pub fn register_batches(
        &mut self,
        name: &str,
        schema: datafusion::arrow::datatypes::SchemaRef,
        batches: Vec<RecordBatch>,
        watermark: Option<(&str, &str)>,
    ) -> Result<()> {
        let pos = crate::error::Pos { line: 1, col: 1 };
        let watermark = match watermark {
            Some((column, expr)) => {
                if schema.index_of(column).is_err() {
                    return Err(WeirError::user(format!(
                        "watermark column '{column}' is not a column of '{name}'"
                    )));
                }
                let expr = datafusion::sql::sqlparser::parser::Parser::new(
                    &datafusion::sql::sqlparser::dialect::GenericDialect {},
                )
                .try_with_sql(expr)
                .and_then(|mut p| p.parse_expr())
                .map_err(crate::sql::parser::parser_error)?;
                Some(crate::sql::parser::WatermarkDef {
                    column: column.to_string(),
                    column_pos: pos,
                    expr,
                    expr_pos: pos,
                })
            }
            None => None,
        };
        let def = Arc::new(TableDef {
            name: name.to_string(),
            pos,
            connector: "memory".to_string(),
            options: crate::sql::options::Options::new(),
            physical: schema.clone(),
            schema,
            computed: vec![],
            metadata: vec![],
            metadata_declared: vec![],
            watermark,
            partitioned_by: vec![],
            primary_key: vec![],
            has_columns: true,
            memory: Some(Arc::new(batches)),
        });
        self.ctx.deregister_table(relation(name))?;
        self.ctx
            .register_table(relation(name), Arc::new(StreamTable::new(def.clone())))?;
        self.tables.insert(name.to_string(), def);
        Ok(())
    }

    /// Runs a script in batch: DDL and SET as usual; each SELECT runs once over what its
    /// tables hold now (`filesystem` tables and quoted paths) and its rows are returned.
    /// A statement's warning (a SET of a key nothing reads) is written to stderr.
    pub async fn batch(&mut self, sql: &str) -> Result<Vec<Vec<RecordBatch>>> {
        let mut out = vec![];
        for stmt in crate::sql::parser::parse_script(sql)? {
            match &stmt.statement {
                Statement::Query(q) => {
                    if let Some(e) = missing_path(q, &stmt) {
                        return Err(e);
                    }
                    let plan = self
                        .logical_plan(q, &stmt.windows, &stmt.lookups, false)
                        .await
                        .map_err(|e| e.at(Some(stmt.pos)))?;
                    let mut stream =
                        crate::plan::batch_stream(&self.ctx.state(), &plan, Some(stmt.pos)).await?;
                    let progress = Progress::start(self.progress);
                    let mut batches = vec![];
                    use futures::StreamExt;
                    while let Some(b) = stream.next().await {
                        let b = b?;
                        progress.rows(b.num_rows());
                        batches.push(b);
                    }
                    progress.finish();
                    // No rows: one empty batch still carries the columns (a table's header,
                    // a CSV header line).
                    if batches.is_empty() {
                        batches.push(RecordBatch::new_empty(stream.schema()));
                    }
                    out.push(batches);
                }
                Statement::Insert { .. } => {
                    return Err(WeirError::sql(
                        "INSERT INTO starts a standing query: use weir run",
                        Some(stmt.pos),
                    ));
                }
                _ => match self.execute(&stmt).await? {
                    Outcome::Rows(r) => out.push(r),
                    Outcome::Text(t) => out.push(Outcome::text_rows(&t)?),
                    Outcome::Warning(w) => crate::message::say(w),
                    Outcome::Done(_) => {}
                    Outcome::Started(job) => job.wait().await?,
                },
            }
        }
        Ok(out)
    }

    /// Starts a bare SELECT as a standing query whose rows go to `sink` instead of the
    /// terminal.
    pub async fn start_into(&mut self, stmt: &Located, sink: Box<dyn Sink>) -> Result<Job> {
        if !matches!(stmt.statement, Statement::Query(_)) {
            return Err(WeirError::sql("expected a SELECT", Some(stmt.pos)));
        }
        let (plan, _) = self.plan_statement(stmt).await?;
        let checkpoint = self.checkpoint_config(stmt)?;
        let id = self.next_job;
        let name = checkpoint.job.clone();
        let server = self.metrics_server().map_err(|e| e.at(Some(stmt.pos)))?;
        let job = Job::start(
            id,
            stmt.text.clone(),
            plan,
            sink,
            checkpoint,
            self.max_parallelism()?,
        )?;
        self.next_job += 1;
        export(server, &job, &name);
        Ok(job)
    }

    /// Runs a script to its end and returns the rows of its bare SELECT statements (each
    /// SELECT as one result; INSERT INTO jobs run to their end too). For bounded inputs.
    pub async fn run_collect(&mut self, sql: &str) -> Result<Vec<Vec<RecordBatch>>> {
        let mut results = vec![];
        for stmt in crate::sql::parser::parse_script(sql)? {
            if let Statement::Query(_) = &stmt.statement {
                let sink = crate::sink::collect::CollectSink::new();
                self.start_into(&stmt, Box::new(sink.clone()))
                    .await?
                    .wait()
                    .await?;
                results.push(sink.batches());
                continue;
            }
            match self.execute(&stmt).await? {
                Outcome::Started(job) => job.wait().await?,
                Outcome::Rows(r) => results.push(r),
                Outcome::Text(t) => results.push(Outcome::text_rows(&t)?),
                Outcome::Done(_) | Outcome::Warning(_) => {}
            }
        }
        Ok(results)
    }

    /// Plans a query with DataFusion, its window calls registered as tables meanwhile.
    async fn logical_plan(
        &self,
        query: &ast::Query,
        windows: &[WindowCall],
        lookups: &[crate::sql::parser::Lookup],
        temporal: bool,
    ) -> Result<LogicalPlan> {
        let mut registered: Vec<String> = vec![];
        // Each `FOR SYSTEM_TIME AS OF` table under the statement's own name for it.
        for l in lookups {
            let provider = match self.ctx.table_provider(relation(&l.table)).await {
                Ok(p) => p,
                Err(_) => {
                    for id in registered {
                        let _ = self.ctx.deregister_table(id.as_str());
                    }
                    return Err(self.unknown_relation(&l.table, l.table_pos));
                }
            };
            self.ctx.register_table(l.id.as_str(), provider)?;
            registered.push(l.id.clone());
        }
        let r = match self
            .plan_with_windows(query, windows, &mut registered)
            .await
        {
            Ok(plan) => self
                .check_lookup_columns(query, lookups, temporal)
                .await
                .map(|_| plan),
            e => e,
        };
        for id in registered {
            let _ = self.ctx.deregister_table(id.as_str());
        }
        r.map_err(|e| at_function(e, query))
    }

    /// Each `FOR SYSTEM_TIME AS OF <column>` names a column of the query's tables, as Flink
    /// checks (the clause is taken out before DataFusion plans, so nothing else would):
    /// `SELECT <column> FROM <the FROM of its select>` is planned, not run — for the query's
    /// own select and those of its CTEs, derived tables and set operations.
    ///
    /// Errors: the column is unknown, or not a time attribute, pointing at it; or it is an
    /// event-time attribute — an event-time temporal join (the version of a versioned table
    /// valid at each row's time), which only a standing query runs (`temporal`): a view's
    /// or a bounded query's would be joined with every version.
    async fn check_lookup_columns(
        &self,
        query: &ast::Query,
        lookups: &[crate::sql::parser::Lookup],
        temporal: bool,
    ) -> Result<()> {
        if lookups.is_empty() {
            return Ok(());
        }
        let mut selects = vec![];
        selects_of(query, None, &mut selects);
        for (context, select) in &selects {
            self.check_lookups_of(context, select, lookups, temporal)
                .await?;
        }
        Ok(())
    }

    /// [`Self::check_lookup_columns`] for one select (in `query`, whose WITH it keeps).
    async fn check_lookups_of(
        &self,
        query: &ast::Query,
        select: &ast::Select,
        lookups: &[crate::sql::parser::Lookup],
        temporal: bool,
    ) -> Result<()> {
        // Only the lookups of this select: one in a CTE, a derived table or a view has its
        // own FROM clause.
        let mut tables = from_tables(&select.from);
        tables.extend(from_names(&select.from));
        for l in lookups
            .iter()
            .filter(|l| !l.column.is_empty() && tables.contains(&l.id))
        {
            let column = if l.column.len() == 1 {
                ast::Expr::Identifier(ast::Ident::new(&l.column[0]))
            } else {
                ast::Expr::CompoundIdentifier(l.column.iter().map(ast::Ident::new).collect())
            };
            let probed = self.probe_expr(query, select, column).await;
            // A time attribute is a timestamp: a column of another type (a key, say) is
            // refused, as Flink refuses a non-time attribute there.
            if let Ok(plan) = &probed
                && let Some(f) = plan.schema().fields().first()
                && !matches!(f.data_type(), DataType::Timestamp(..))
            {
                return Err(WeirError::sql(
                    format!(
                        "FOR SYSTEM_TIME AS OF {}: a column of type {}, not a time attribute",
                        l.column.join("."),
                        crate::sql::types::flink_type_name(f.data_type())
                    ),
                    Some(l.column_pos),
                )
                .with_hint(
                    "name the stream's processing-time attribute, as in FOR SYSTEM_TIME AS OF o.proc_time",
                ));
            }
            match probed {
                Ok(plan) => {
                    let (q, f) = plan.schema().qualified_field(0);
                    let col = datafusion::common::Column::new(q.cloned(), f.name());
                    let event_time = !crate::plan::window::is_proctime_attribute(&plan, &col);
                    if event_time && !crate::plan::window::is_rowtime_attribute(&plan, &col) {
                        // Flink: "only supports 'FOR SYSTEM_TIME AS OF' left table's time
                        // attribute field".
                        return Err(WeirError::sql(
                            format!(
                                "FOR SYSTEM_TIME AS OF {}: a timestamp but not a time attribute of the stream (its WATERMARK column or a PROCTIME() column)",
                                l.column.join(".")
                            ),
                            Some(l.column_pos),
                        )
                        .with_hint(
                            "join as of the stream's event-time attribute (as in FOR SYSTEM_TIME AS OF o.order_time) or processing-time attribute (o.proc_time)",
                        ));
                    }
                    if temporal && event_time {
                        if let Ok(mut t) = self.temporal_lookups.lock() {
                            t.push(l.pos);
                        }
                    } else if event_time {
                        return Err(WeirError::sql(
                            format!(
                                "not supported yet in a view or a bounded query: FOR SYSTEM_TIME AS OF {}, an event-time temporal join (each row joined with the version of '{}' valid at its time)",
                                l.column.join("."),
                                l.table
                            ),
                            Some(l.column_pos),
                        )
                        .with_hint(
                            "run it as a standing query (weir run, or INSERT INTO), or join as of the stream's processing time (FOR SYSTEM_TIME AS OF o.proc_time)",
                        ));
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("No field named") || text.contains("not found") {
                        return Err(WeirError::sql(
                            format!(
                                "FOR SYSTEM_TIME AS OF {}: no such column in the query's tables",
                                l.column.join(".")
                            ),
                            Some(l.column_pos),
                        )
                        .with_hint(
                            "name the stream's processing-time attribute, as in FOR SYSTEM_TIME AS OF o.proc_time",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Plans, without running it, `SELECT <expr> FROM <the FROM of select>` (in `query`,
    /// whose WITH it keeps): what `expr` is over the query's tables.
    async fn probe_expr(
        &self,
        query: &ast::Query,
        select: &ast::Select,
        expr: ast::Expr,
    ) -> datafusion::error::Result<LogicalPlan> {
        let mut probe = select.clone();
        probe.projection = vec![ast::SelectItem::UnnamedExpr(expr)];
        probe.selection = None;
        probe.group_by = ast::GroupByExpr::Expressions(vec![], vec![]);
        probe.having = None;
        probe.named_window = vec![];
        probe.qualify = None;
        probe.distinct = None;
        let mut q = query.clone();
        q.body = Box::new(ast::SetExpr::Select(Box::new(probe)));
        q.order_by = None;
        q.limit_clause = None;
        let stmt = datafusion::sql::parser::Statement::Statement(Box::new(ast::Statement::Query(
            Box::new(q),
        )));
        self.ctx.state().statement_to_plan(stmt).await
    }

    /// Flink's `compositeType.*`: `SELECT r.* FROM t` (or `t.r.*`) with `r` a ROW column
    /// (not a relation of the FROM clause) selects the row's fields, each named as the field
    /// (a repeated name with Calcite's suffix). `None` when the query has no such star.
    async fn expand_row_stars(&self, query: &ast::Query) -> Result<Option<ast::Query>> {
        let ast::SetExpr::Select(select) = query.body.as_ref() else {
            return Ok(None);
        };
        let relations = from_names(&select.from);
        let mut items = Vec::with_capacity(select.projection.len());
        let mut changed = false;
        for item in &select.projection {
            let ast::SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) = item
            else {
                items.push(item.clone());
                continue;
            };
            let parts: Vec<ast::Ident> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().cloned())
                .collect();
            if parts.len() != name.0.len()
                || (parts.len() == 1 && relations.iter().any(|r| *r == parts[0].value))
            {
                items.push(item.clone());
                continue;
            }
            let expr = if parts.len() == 1 {
                ast::Expr::Identifier(parts[0].clone())
            } else {
                ast::Expr::CompoundIdentifier(parts.clone())
            };
            let fields = match self.probe_expr(query, select, expr).await {
                Ok(plan) => match plan.schema().field(0).data_type() {
                    datafusion::arrow::datatypes::DataType::Struct(fs) => fs.clone(),
                    _ => {
                        items.push(item.clone());
                        continue;
                    }
                },
                Err(_) => {
                    items.push(item.clone());
                    continue;
                }
            };
            changed = true;
            for f in fields.iter() {
                let mut path = parts.clone();
                path.push(ast::Ident::with_quote('"', f.name()));
                items.push(ast::SelectItem::UnnamedExpr(ast::Expr::CompoundIdentifier(
                    path,
                )));
            }
        }
        if !changed {
            return Ok(None);
        }
        let mut select = select.as_ref().clone();
        select.projection = items;
        let mut q = query.clone();
        q.body = Box::new(ast::SetExpr::Select(Box::new(select)));
        // Named now that the fields are known: each by its field, a repeat with Calcite's
        // suffix (`auction`, `auction0`).
        crate::sql::names::name_columns(&mut q);
        Ok(Some(q))
    }

    async fn plan_with_windows(
        &self,
        query: &ast::Query,
        windows: &[WindowCall],
        registered: &mut Vec<String>,
    ) -> Result<LogicalPlan> {
        // Inner calls come first, so an input that is itself windowed is registered before.
        for w in windows {
            let table = self.window_table(w).await?;
            self.ctx.register_table(w.id.as_str(), Arc::new(table))?;
            registered.push(w.id.clone());
        }
        self.plain_plan(query).await
    }

    async fn plain_plan(&self, query: &ast::Query) -> Result<LogicalPlan> {
        let expanded = self.expand_row_stars(query).await?;
        let query = expanded.as_ref().unwrap_or(query);
        let stmt = datafusion::sql::parser::Statement::Statement(Box::new(ast::Statement::Query(
            Box::new(query.clone()),
        )));
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(stmt)
            .await
            .map_err(|e| self.improve(e))?;
        let plan = crate::sql::literals::flink_int_literals(plan)?;
        // Before the DECIMAL rules, so they see the DOUBLEs it makes.
        let plan = crate::sql::decimal::flink_float_decimal(plan)?;
        let plan = crate::sql::rewrite::flink_avg(plan)?;
        let plan = crate::sql::decimal::flink_division(plan)?;
        let plan = crate::sql::names::star_names(plan, query)?;
        Ok(state.optimize(&plan)?)
    }

    /// Plans a window call's input and checks its arguments.
    async fn window_table(&self, w: &WindowCall) -> Result<WindowTable> {
        let input = match &w.input {
            WindowInput::Table(name, pos) => {
                let q = datafusion::sql::sqlparser::parser::Parser::new(
                    &datafusion::sql::sqlparser::dialect::GenericDialect {},
                )
                .try_with_sql(&format!("SELECT * FROM {}", quote_name(name)))
                .and_then(|mut p| p.parse_query())
                .map_err(|e| WeirError::internal(e.to_string()))?;
                if !self.tables.contains_key(name)
                    && !self.views.contains_key(name)
                    && !name.starts_with(crate::sql::window::WINDOW_TABLE_PREFIX)
                {
                    return Err(self.unknown_relation(name, *pos));
                }
                self.plain_plan(&q).await.map_err(|e| e.moved_to(*pos))?
            }
            WindowInput::Query(q) => self.plain_plan(q).await?,
        };
        let names: Vec<String> = input
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if let Some(dup) = names
            .iter()
            .find(|n| matches!(n.as_str(), "window_start" | "window_end" | "window_time"))
        {
            return Err(WeirError::sql(
                format!(
                    "the input of {} already has a column '{dup}'",
                    w.kind.name()
                ),
                Some(w.pos),
            )
            .with_hint(format!(
                "rename it in the input ({dup} AS w_{}), as the window adds its own",
                dup.trim_start_matches("window_")
            )));
        }
        let Some(time_index) = names.iter().position(|n| *n == w.time_col) else {
            let mut e = WeirError::sql(
                format!(
                    "the input of {} has no column '{}'",
                    w.kind.name(),
                    w.time_col
                ),
                Some(w.time_pos),
            );
            if let Some(m) = did_you_mean(&w.time_col, names.iter().map(|s| s.as_str())) {
                e = e.with_hint(format!("did you mean '{m}'?"));
            }
            return Err(e);
        };
        if !matches!(
            input.schema().field(time_index).data_type(),
            DataType::Timestamp(_, _)
        ) || !is_time_attribute(&input, &w.time_col)
        {
            return Err(WeirError::sql(
                format!(
                    "'{}' is not a time attribute: DESCRIPTOR takes an event-time column",
                    w.time_col
                ),
                Some(w.time_pos),
            )
            .with_hint(
                "declare it with WATERMARK FOR col AS col - INTERVAL '5' SECOND in the source table, or use the window_time of a window",
            ));
        }
        for (p, _) in &w.partition_by {
            if !names.contains(p) {
                return Err(WeirError::sql(
                    format!("the input of SESSION has no column '{p}'"),
                    Some(w.pos),
                ));
            }
        }
        let ms = |name: &str| -> Result<Option<i64>> {
            match w.arg(name) {
                Some((_, e, pos)) => self.interval_ms(e, *pos, name).map(Some),
                None => Ok(None),
            }
        };
        let positive = |name: &str, v: i64, pos: Option<crate::error::Pos>| -> Result<i64> {
            if v <= 0 {
                return Err(WeirError::sql(
                    format!(
                        "the {} of a {} window must be positive",
                        name.to_lowercase(),
                        w.kind.name()
                    ),
                    pos,
                )
                .with_hint("write an interval such as INTERVAL '10' SECOND"));
            }
            Ok(v)
        };
        let pos_of = |name: &str| w.arg(name).map(|a| a.2);
        let mut offset = ms("OFFSET")?.unwrap_or(0);
        // Over a TIMESTAMP_LTZ, windows lie on the session zone's wall clock (a day window
        // from midnight to midnight), as Flink places them: a zone that keeps one offset
        // from now on moves the grid back by it; one with daylight saving time puts the
        // grid on its wall clock (see `WindowSpec::zone`).
        let mut zone = None;
        if matches!(
            input.schema().field(time_index).data_type(),
            DataType::Timestamp(_, Some(_))
        ) && w.kind != WindowKind::Session
        {
            let session_zone = self
                .ctx
                .state()
                .config_options()
                .execution
                .time_zone
                .clone();
            let session_zone = session_zone.as_deref().unwrap_or("UTC");
            match crate::sql::local_time::fixed_offset_ms(session_zone) {
                Some(shift) => offset -= shift,
                None => zone = session_zone.parse::<chrono_tz::Tz>().ok(),
            }
        }
        let spec = match w.kind {
            WindowKind::Tumble => {
                let size = positive("SIZE", ms("SIZE")?.unwrap_or(0), pos_of("SIZE"))?;
                WindowSpec {
                    kind: w.kind,
                    size,
                    slide: size,
                    offset,
                    zone,
                }
            }
            WindowKind::Hop => {
                let slide = positive("SLIDE", ms("SLIDE")?.unwrap_or(0), pos_of("SLIDE"))?;
                let size = positive("SIZE", ms("SIZE")?.unwrap_or(0), pos_of("SIZE"))?;
                WindowSpec {
                    kind: w.kind,
                    size,
                    slide,
                    offset,
                    zone,
                }
            }
            WindowKind::Cumulate => {
                let step = positive("STEP", ms("STEP")?.unwrap_or(0), pos_of("STEP"))?;
                let size = positive("SIZE", ms("SIZE")?.unwrap_or(0), pos_of("SIZE"))?;
                if size % step != 0 {
                    return Err(WeirError::sql(
                        "the size of a CUMULATE window must be a whole multiple of its step",
                        pos_of("SIZE"),
                    ));
                }
                WindowSpec {
                    kind: w.kind,
                    size,
                    slide: step,
                    offset,
                    zone,
                }
            }
            WindowKind::Session => {
                let gap = positive("GAP", ms("GAP")?.unwrap_or(0), pos_of("GAP"))?;
                WindowSpec {
                    kind: w.kind,
                    size: gap,
                    slide: gap,
                    offset: 0,
                    zone: None,
                }
            }
        };
        if matches!(w.kind, WindowKind::Hop | WindowKind::Cumulate) {
            let limit = match self.settings.get(WINDOWS_PER_ROW_KEY) {
                Some(v) => windows_per_row_of(v)?,
                None => DEFAULT_WINDOWS_PER_ROW,
            };
            // The windows a row falls into: ceil(size / slide).
            let per_row = spec.size / spec.slide + i64::from(spec.size % spec.slide != 0);
            if per_row > limit {
                let (what, arg) = match w.kind {
                    WindowKind::Hop => ("slide", "SLIDE"),
                    _ => ("step", "STEP"),
                };
                return Err(WeirError::sql(
                    format!(
                        "this {} window puts every row into {per_row} windows (size {} ms over {what} {} ms); at most {limit} are allowed",
                        w.kind.name(),
                        spec.size,
                        spec.slide
                    ),
                    pos_of(arg),
                )
                .with_hint(format!(
                    "use a longer {what} or a shorter size, or raise SET '{WINDOWS_PER_ROW_KEY}' = '{per_row}' (a group is then emitted in up to {per_row} windows for each row's time)"
                )));
            }
        }
        Ok(WindowTable(Arc::new(WindowInfo::new(
            w.clone(),
            spec,
            input,
            time_index,
        ))))
    }

    /// The length of an interval expression in milliseconds.
    fn interval_ms(&self, e: &ast::Expr, pos: crate::error::Pos, what: &str) -> Result<i64> {
        use datafusion::arrow::datatypes::Schema;
        use datafusion::arrow::record_batch::RecordBatchOptions;
        use datafusion::common::{DFSchema, ScalarValue};
        let state = self.ctx.state();
        let empty = DFSchema::empty();
        let bad = |detail: String| {
            WeirError::sql(
                format!("{what} must be a time interval: {detail}"),
                Some(pos),
            )
            .with_hint("write an interval such as INTERVAL '10' SECOND or INTERVAL '1' MINUTE")
        };
        let l = state
            .create_logical_expr(&e.to_string(), &empty)
            .map_err(|err| bad(err.to_string()))?;
        let p = state.create_physical_expr(l, &empty)?;
        let one = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(1)),
        )?;
        let v = match p.evaluate(&one)? {
            datafusion::logical_expr::ColumnarValue::Scalar(s) => s,
            datafusion::logical_expr::ColumnarValue::Array(a) => {
                ScalarValue::try_from_array(&a, 0)?
            }
        };
        match v {
            ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
                Ok(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
            }
            ScalarValue::IntervalDayTime(Some(i)) => {
                Ok(i.days as i64 * 86_400_000 + i.milliseconds as i64)
            }
            ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(_) => {
                Err(bad("months and years have no fixed length".into()))
            }
            other => Err(bad(format!("'{e}' is {}", other.data_type()))),
        }
    }

    /// DataFusion's "table not found" becomes Weir's message, with the closest name.
    fn improve(&self, e: datafusion::error::DataFusionError) -> WeirError {
        let msg = e.to_string();
        let w = WeirError::from(e);
        if let (Some(rest), WeirError::Sql { pos, .. }) = (msg.split("table '").nth(1), &w)
            && msg.contains("not found")
        {
            let full = rest.split('\'').next().unwrap_or("");
            let name = full.rsplit('.').next().unwrap_or(full);
            if let Some(p) = pos {
                // Another catalog or database than Flink's default ones (the parser drops
                // those): Weir has no other.
                let qualifier = full
                    .strip_suffix(name)
                    .map(|q| q.trim_end_matches('.'))
                    // `db.t` is `default_catalog.db.t` to the planner: the user wrote `db`.
                    .map(|q| q.strip_prefix("default_catalog.").unwrap_or(q))
                    .filter(|q| !q.is_empty() && *q != "default_database");
                if let Some(q) = qualifier {
                    return WeirError::sql(
                        format!("no catalog or database '{q}': Weir has only default_catalog.default_database"),
                        Some(*p),
                    )
                    .with_hint(format!(
                        "name the table '{name}' or 'default_catalog.default_database.{name}' (names are case-sensitive)"
                    ));
                }
                return self.unknown_relation(name, *p);
            }
        }
        w
    }

    /// Plans a SELECT or INSERT into a streaming plan and its sink.
    async fn plan_statement(
        &self,
        stmt: &Located,
    ) -> Result<(Vec<crate::plan::PlanNode>, Box<dyn Sink>)> {
        if let Statement::StatementSet(members) = &stmt.statement {
            // One job: each INSERT's plan tagged with its index, the plans under one union,
            // and their sinks as one (see `crate::sink::multi`).
            let mut copies: Vec<Vec<crate::plan::PlanNode>> = vec![];
            let mut sinks = vec![];
            for (i, m) in members.iter().enumerate() {
                let table = match &m.statement {
                    Statement::Insert { table, .. } => table.as_str(),
                    _ => "",
                };
                let (plans, sink) = Box::pin(self.plan_statement(m)).await?;
                for (k, plan) in plans.into_iter().enumerate() {
                    if copies.len() <= k {
                        copies.push(vec![]);
                    }
                    copies[k].push(crate::plan::PlanNode::Operator {
                        op: Box::new(crate::sink::multi::Tag::new(i, table)),
                        input: Box::new(plan),
                    });
                }
                sinks.push(sink);
            }
            let plans = copies
                .into_iter()
                .map(|inputs| crate::plan::PlanNode::Union {
                    idle: vec![None; inputs.len()],
                    inputs,
                    statement_set: true,
                })
                .collect();
            return Ok((plans, Box::new(crate::sink::multi::MultiSink::new(sinks))));
        }
        let pos = Some(stmt.pos);
        let batch_size = self.batch_size()?;
        let settings = self.settings_list();
        let parallelism = self.parallelism()?;
        let state = self.ctx.state();
        // Filled as the statement's query is planned (`check_lookup_columns`).
        if let Ok(mut t) = self.temporal_lookups.lock() {
            t.clear();
        }
        let planner = || Planner {
            state: &state,
            settings: &settings,
            setting_origins: &self.setting_origins,
            batch_size,
            sliced: Default::default(),
            tables: &self.tables,
            part: format!("q-{}", query_id(&stmt.text)),
            late_sinks: Default::default(),
            dead_letters: Default::default(),
            lookups: &stmt.lookups,
            temporal: self
                .temporal_lookups
                .lock()
                .map(|t| t.clone())
                .unwrap_or_default(),
            nulls_equal_join: Default::default(),
            rank_unused: Default::default(),
        };
        // A parallel job runs copies of its keyed operators: the plan is made once per
        // subtask (each copy its own state; the job reads copy 0's sources).
        let plan_copies = async |plan: &LogicalPlan| -> Result<Vec<crate::plan::PlanNode>> {
            let first = planner().plan(plan).await?;
            let mut copies = vec![first];
            if !matches!(copies[0], crate::plan::PlanNode::Values { .. }) {
                for _ in 1..parallelism {
                    copies.push(planner().plan(plan).await?);
                }
            }
            Ok(copies)
        };
        let read = match &stmt.statement {
            Statement::Query(q) => Some(q.as_ref()),
            Statement::Insert { query, .. } => Some(query.as_ref()),
            _ => None,
        };
        if let Some(e) = read.and_then(|q| missing_path(q, stmt)) {
            return Err(e);
        }
        match &stmt.statement {
            Statement::Query(q) => {
                let plan = self
                    .logical_plan(q, &stmt.windows, &stmt.lookups, true)
                    .await
                    .map_err(|e| e.at(pos))?;
                let nodes = plan_copies(&plan)
                    .await
                    .map_err(|e| at_function(e, q).at(pos))?;
                let mut display = self.display()?;
                // A bounded query's table (an archive's, a file's) shows its first rows; a
                // stream's rows keep coming as windows fire.
                if self.max_rows > 0 && reads_only_bounded(&plan) {
                    display.max_rows = self.max_rows;
                }
                let sink = Box::new(
                    crate::sink::terminal::TerminalSink::new(self.output, self.quiet)
                        .with_display(display),
                );
                Ok((nodes, sink))
            }
            Statement::Insert {
                table,
                table_pos,
                columns,
                query,
            } => {
                let Some(def) = self.tables.get(table).cloned() else {
                    return Err(self.unknown_relation(table, *table_pos));
                };
                let plan = self
                    .logical_plan(query, &stmt.windows, &stmt.lookups, true)
                    .await
                    .map_err(|e| e.at(pos))?;
                let plan =
                    conform_to_sink(plan, &def, columns).map_err(|e| e.at(Some(*table_pos)))?;
                let nodes = plan_copies(&plan)
                    .await
                    .map_err(|e| at_function(e, query).at(pos))?;
                let options =
                    crate::connector::effective_options(&def, &settings, &self.setting_origins)?;
                let part = format!("q-{}", query_id(&stmt.text));
                let sink = crate::connector::build_sink(&def, &options, &part)?;
                if nodes.iter().any(|n| n.updates()) && !sink.accepts_changes() {
                    return Err(WeirError::sql(
                        format!(
                            "table '{}' (connector '{}') takes appended rows only, but this query's results update earlier ones (a changelog of +I, -U, +U, -D rows)",
                            def.name, def.connector
                        ),
                        Some(*table_pos),
                    )
                    .with_hint(
                        "write it to an 'upsert-kafka', 'print' or 'blackhole' table, or aggregate over windows, whose results never change",
                    ));
                }
                Ok((nodes, sink))
            }
            _ => Err(WeirError::internal("not a query")),
        }
    }
}

/// Casts and renames the query's columns to the sink's declared columns, by position
/// (Flink's INSERT rule), or by the listed target columns.
fn conform_to_sink(plan: LogicalPlan, def: &TableDef, columns: &[String]) -> Result<LogicalPlan> {
    if !def.has_columns {
        return Ok(plan);
    }
    // A sink writes its physical columns and its persisted metadata columns (those not
    // VIRTUAL, which its connector must be able to write), as in Flink.
    let sink_schema = def.sink_schema()?;
    let written: Vec<&Field> = sink_schema.fields().iter().map(|f| f.as_ref()).collect();
    let target: Vec<&Field> = if columns.is_empty() {
        written.clone()
    } else {
        columns
            .iter()
            .map(|c| match written.iter().find(|f| f.name() == c) {
                Some(f) => Ok(*f),
                // A VIRTUAL metadata column is read-only, as in Flink.
                None if def.physical.field_with_name(c).is_ok() => Err(WeirError::sql(
                    format!(
                        "column '{c}' of table '{}' is VIRTUAL metadata, which a sink does not write",
                        def.name
                    ),
                    None,
                )),
                None => Err(WeirError::sql(
                    format!("table '{}' has no column '{c}'", def.name),
                    None,
                )),
            })
            .collect::<Result<Vec<_>>>()?
    };
    let schema = plan.schema().clone();
    if schema.fields().len() != target.len() {
        let q: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let t: Vec<String> = target.iter().map(|f| f.name().clone()).collect();
        return Err(WeirError::sql(
            format!(
                "the query gives {} column(s) [{}] but sink '{}' takes {} [{}]",
                q.len(),
                q.join(", "),
                def.name,
                t.len(),
                t.join(", ")
            ),
            None,
        ));
    }
    let mut exprs = vec![];
    for (i, f) in target.iter().enumerate() {
        let (q, qf) = schema.qualified_field(i);
        let col = DfExpr::Column(datafusion::common::Column::new(q.cloned(), qf.name()));
        let from = qf.data_type();
        let e = if from == f.data_type() {
            col
        } else if crate::sql::types::renames(Some(from), f.data_type()) {
            // A ROW into a ROW column of other field names: by position, as a CAST reads.
            crate::sql::types::positional(col, from, f.data_type(), false)?
        } else if datafusion::arrow::compute::can_cast_types(from, f.data_type()) {
            // As the same CAST in a query reads: a TIMESTAMP_LTZ in the session zone, a
            // timestamp into a string as Flink's text, numbers as Java's casts.
            let cast = crate::sql::local_time::in_session_zone(
                col.cast_to(f.data_type(), &schema)?,
                &schema,
            )?;
            crate::sql::types::flink_casts(cast, &schema)?
        } else {
            return Err(WeirError::sql(
                format!(
                    "column {} ('{}') of the query is {} but sink column '{}' is {}",
                    i + 1,
                    qf.name(),
                    crate::sql::types::flink_type_name(from),
                    f.name(),
                    crate::sql::types::flink_type_name(f.data_type())
                ),
                None,
            ));
        };
        exprs.push(e.alias(f.name()));
    }
    // Columns not listed in `INSERT INTO t (cols)` are NULL.
    if !columns.is_empty() {
        let mut full = vec![];
        for f in &written {
            match columns.iter().position(|c| c == f.name()) {
                Some(i) => full.push(exprs[i].clone()),
                None => full.push(
                    DfExpr::Literal(
                        datafusion::common::ScalarValue::try_from(f.data_type())?,
                        None,
                    )
                    .alias(f.name()),
                ),
            }
        }
        exprs = full;
    }
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// A small table of strings.
impl Session {
    /// `CREATE TABLE t WITH (…) AS SELECT …` (Flink's CTAS): declares `t` with the query's
    /// columns (names, types and nullability, as the `CREATE TABLE` that `SHOW CREATE
    /// TABLE` then shows), then runs `INSERT INTO t SELECT …` as a job. Errors: the query's
    /// (at its token), the table's options (as `CREATE TABLE` checks them), or the insert's
    /// planning — after which no table `t` is left behind.
    async fn create_table_as(
        &mut self,
        c: &crate::sql::parser::CreateTable,
        query: &ast::Query,
        stmt: &Located,
    ) -> Result<Outcome> {
        let plan = self
            .logical_plan(query, &stmt.windows, &stmt.lookups, false)
            .await?;
        let quoted = |n: &str| format!("`{}`", n.replace('`', "``"));
        let literal = |t: &str| format!("'{}'", t.replace('\'', "''"));
        let columns: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "  {} {}{}",
                    quoted(f.name()),
                    crate::sql::types::flink_type_name(f.data_type()),
                    if f.is_nullable() { "" } else { " NOT NULL" }
                )
            })
            .collect();
        let mut text = format!(
            "CREATE TABLE {} (\n{}\n)",
            quoted(&c.name),
            columns.join(",\n")
        );
        if !c.partitioned_by.is_empty() {
            let keys: Vec<String> = c.partitioned_by.iter().map(|(k, _)| quoted(k)).collect();
            text.push_str(&format!(" PARTITIONED BY ({})", keys.join(", ")));
        }
        if !c.options.is_empty() {
            let opts: Vec<String> = c
                .options
                .iter()
                .map(|o| format!("  {} = {}", literal(&o.key), literal(&o.value)))
                .collect();
            text.push_str(&format!(" WITH (\n{}\n)", opts.join(",\n")));
        }
        let at = |e: WeirError| e.moved_to(c.name_pos);
        let located = crate::sql::parser::parse_script(&text).map_err(at)?;
        let Some(Statement::CreateTable(declared)) = located.first().map(|l| &l.statement) else {
            return Err(WeirError::internal("a CTAS table is no CREATE TABLE"));
        };
        // Option errors point at the options as written in the statement.
        let mut declared = declared.clone();
        for (o, written) in declared.options.iter_mut().zip(&c.options) {
            o.pos = written.pos;
        }
        for (p, written) in declared.partitioned_by.iter_mut().zip(&c.partitioned_by) {
            p.1 = written.1;
        }
        declared.name_pos = c.name_pos;
        let def = TableDef::from_ddl(&declared, &self.ctx.state())?;
        crate::connector::validate(&def)?;
        crate::connector::validate_generator(&def)?;
        let def = Arc::new(def);
        self.ctx
            .register_table(relation(&def.name), Arc::new(StreamTable::new(def.clone())))?;
        self.ddl.insert(def.name.clone(), text);
        self.tables.insert(def.name.clone(), def);
        let insert = Located {
            statement: Statement::Insert {
                table: c.name.clone(),
                table_pos: c.name_pos,
                columns: vec![],
                query: Box::new(query.clone()),
            },
            pos: stmt.pos,
            text: stmt.text.clone(),
            windows: stmt.windows.clone(),
            lookups: stmt.lookups.clone(),
        };
        match Box::pin(self.execute(&insert)).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                // As Flink, no table is left from a CTAS whose query does not run.
                self.ddl.remove(&c.name);
                self.tables.remove(&c.name);
                let _ = self.ctx.deregister_table(relation(&c.name));
                Err(e)
            }
        }
    }

    /// `CREATE TABLE t (…) WITH (…) LIKE base (…)`: the table `base` merged with the
    /// statement by Flink's rules ([`crate::sql::alter::like`]), declared as the merged
    /// `CREATE TABLE` is (which `SHOW CREATE TABLE` then shows). Errors: `base` unknown or
    /// a view; a conflict the like options do not resolve (at the derived component); any
    /// error of the merged table (at the derived component it comes from, else at `t`).
    fn create_table_like(
        &mut self,
        c: &crate::sql::parser::CreateTable,
        like: &crate::sql::parser::LikeClause,
        text: &str,
    ) -> Result<Outcome> {
        let Some(base_ddl) = self.ddl.get(&like.table) else {
            if self.views.contains_key(&like.table) {
                return Err(WeirError::sql(
                    format!(
                        "'{}' is a view: CREATE TABLE … LIKE takes a table",
                        like.table
                    ),
                    Some(like.table_pos),
                ));
            }
            return Err(self.unknown_relation(&like.table, like.table_pos));
        };
        let merged = crate::sql::alter::like(base_ddl, text, c)?;
        let moved = |e: WeirError| merged.moved(e, c.name_pos);
        let located = crate::sql::parser::parse_script(&merged.text).map_err(moved)?;
        let Some(Statement::CreateTable(m)) = located.first().map(|l| &l.statement) else {
            return Err(WeirError::internal("a merged table is no CREATE TABLE"));
        };
        let def = TableDef::from_ddl(m, &self.ctx.state()).map_err(moved)?;
        crate::connector::validate(&def).map_err(moved)?;
        crate::connector::validate_generator(&def).map_err(moved)?;
        let def = Arc::new(def);
        self.ctx
            .register_table(relation(&def.name), Arc::new(StreamTable::new(def.clone())))?;
        self.ddl.insert(def.name.clone(), merged.text.clone());
        self.tables.insert(def.name.clone(), def);
        Ok(Outcome::Done(format!("[INFO] Table '{}' created.", c.name)))
    }
}

/// The name of Weir's one catalog, as Flink's SQL client names its default one.
const DEFAULT_CATALOG: &str = "default_catalog";
/// The name of that catalog's one database, as Flink's default.
const DEFAULT_DATABASE: &str = "default_database";

fn kv_batch<const N: usize>(names: [&str; N], rows: Vec<[String; N]>) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let cols = (0..N)
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].clone()),
            )) as _
        })
        .collect();
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// A SQL error without a position, pointed at the call in `query` of the function it names
/// (see [`crate::sql::rewrite::function_named_in`]), when it names one; any other error
/// as it is.
fn at_function(e: WeirError, query: &ast::Query) -> WeirError {
    match e.pos() {
        None if let WeirError::Sql { message, .. } = &e => {
            // The message alone: a hint may name other calls.
            let p = crate::sql::rewrite::function_named_in(query, message);
            e.at(p)
        }
        _ => e,
    }
}

/// True when every table `plan` reads ends: quoted paths and other batch tables, and
/// `filesystem` tables (read once, to the end of their files).
fn reads_only_bounded(plan: &LogicalPlan) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let mut bounded = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let stream = crate::plan::stream_table(scan).is_some_and(|d| !d.is_bounded());
            // A window TVF's table reads its input plan.
            let window_over_stream = datafusion::datasource::source_as_provider(&scan.source)
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<crate::plan::window::WindowTable>()
                        .map(|w| !reads_only_bounded(&w.0.input))
                })
                .unwrap_or(false);
            if stream || window_over_stream {
                bounded = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    bounded
}

/// The first quoted local path `query` reads as a table (`FROM 'archive/x'`) that names
/// no file or folder: an error at the path in `stmt`'s text, naming the folder it was
/// looked for from. URLs (`s3://…`) and globs are left to DataFusion.
fn missing_path(query: &ast::Query, stmt: &Located) -> Option<WeirError> {
    let mut missing = None;
    let _ = datafusion::sql::sqlparser::ast::visit_relations(query, |name| {
        if let [part] = name.0.as_slice()
            && let Some(i) = part.as_ident()
            && i.quote_style == Some('\'')
            && !i.value.contains("://")
            && !i.value.contains(['*', '?', '['])
            && !std::path::Path::new(&i.value).exists()
        {
            missing = Some(i.value.clone());
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    let path = missing?;
    // The quoted path where it is read: after FROM or JOIN (the same text elsewhere, a
    // string in the select list say, is not it).
    let quoted = format!("'{path}'");
    let upper = stmt.text.to_ascii_uppercase();
    let at = stmt
        .text
        .match_indices(&quoted)
        .map(|(off, _)| off)
        .find(|&off| {
            let before = upper[..off].trim_end();
            before.ends_with("FROM") || before.ends_with("JOIN")
        })
        .or_else(|| stmt.text.find(&quoted))
        .map(|off| {
            let before = &stmt.text[..off];
            let line = before.matches('\n').count() as u64;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64;
            crate::error::Pos {
                line: stmt.pos.line + line,
                col: if line == 0 {
                    stmt.pos.col + col
                } else {
                    col + 1
                },
            }
        });
    let here = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "the current folder".into());
    Some(
        WeirError::sql(
            format!("no file or folder '{path}' (looked for from {here})"),
            at,
        )
        .with_hint("a quoted path is a table: a Parquet, CSV or JSON file, or a folder of them"),
    )
}

/// A table or view name as DataFusion's catalog keys it, its case kept: Flink keeps
/// unquoted identifiers as written and matches them case-sensitively, while a `&str`
/// given to DataFusion's `register_table` is parsed as SQL and lower-cased. A dotted name
/// is `database.table` or `catalog.database.table`.
fn relation(name: &str) -> datafusion::common::TableReference {
    use datafusion::common::TableReference;
    let parts: Vec<&str> = name.split('.').collect();
    match parts[..] {
        [d, t] => TableReference::partial(d, t),
        [c, d, t] => TableReference::full(c, d, t),
        _ => TableReference::bare(name),
    }
}

/// A table name as SQL text, quoted when it needs to be.
fn quote_name(name: &str) -> String {
    name.split('.')
        .map(|p| {
            if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
            {
                p.to_string()
            } else {
                format!("\"{}\"", p.replace('"', "\"\""))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A stable id for a query's text (FNV-1a, 64 bits, hex): the files a query writes are
/// named by it, so running the same query over the same input again rewrites the same
/// files instead of adding copies.
fn query_id(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text
        .split_whitespace()
        .flat_map(|w| w.bytes().chain([b' ']))
    {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A spinner with the elapsed time and the rows received so far, for long batch scans on a
/// terminal; nothing at all when off (piped output, tests).
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn start(on: bool) -> Progress {
        if !on {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} scanning… {elapsed} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        Progress(Some(bar))
    }

    fn rows(&self, n: usize) {
        if let Some(b) = &self.0 {
            b.inc(n as u64);
            b.set_message(format!("{} rows", b.position()));
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Lists a started job at the `/metrics` endpoint, if one is configured.
fn export(server: Option<Arc<crate::job::exporter::MetricsServer>>, job: &Job, name: &str) {
    if let Some(s) = server {
        s.add_job(
            name,
            job.id,
            job.metrics.clone(),
            job.checkpointer().cloned(),
        );
    }
}

/// The names the relations of a FROM clause go by (their aliases, else their table names;
/// see [`crate::sql::using::relation_name`]), nested joins included: what a qualifier
/// `x.*` may name.
fn from_names(from: &[ast::TableWithJoins]) -> Vec<String> {
    relations(from)
        .filter_map(|t| crate::sql::using::relation_name(t).map(|i| i.value))
        .collect()
}

/// Every select of `query` with the query it is probed in (its own, with the outer WITH
/// when it has none): the body's (through set operations), its CTEs' and its derived
/// tables', nested ones too.
fn selects_of(
    query: &ast::Query,
    outer: Option<&ast::With>,
    out: &mut Vec<(ast::Query, ast::Select)>,
) {
    let mut context = query.clone();
    if context.with.is_none() {
        context.with = outer.cloned();
    }
    let with = context.with.clone();
    if let Some(w) = &query.with {
        for cte in &w.cte_tables {
            selects_of(&cte.query, with.as_ref(), out);
        }
    }
    fn body(
        set: &ast::SetExpr,
        context: &ast::Query,
        with: Option<&ast::With>,
        out: &mut Vec<(ast::Query, ast::Select)>,
    ) {
        match set {
            ast::SetExpr::Select(select) => {
                out.push((context.clone(), select.as_ref().clone()));
                for f in relations(&select.from) {
                    if let ast::TableFactor::Derived { subquery, .. } = f {
                        selects_of(subquery, with, out);
                    }
                }
            }
            ast::SetExpr::SetOperation { left, right, .. } => {
                body(left, context, with, out);
                body(right, context, with, out);
            }
            ast::SetExpr::Query(q) => selects_of(q, with, out),
            _ => {}
        }
    }
    body(&query.body, &context, with.as_ref(), out);
}

/// The tables a FROM clause reads by name (the last part of each name), nested joins
/// included.
fn from_tables(from: &[ast::TableWithJoins]) -> Vec<String> {
    relations(from)
        .filter_map(|t| match t {
            ast::TableFactor::Table { name, .. } => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.clone()),
            _ => None,
        })
        .collect()
}

/// Every relation of a FROM clause, those of nested joins too.
fn relations(from: &[ast::TableWithJoins]) -> impl Iterator<Item = &ast::TableFactor> {
    fn walk<'a>(t: &'a ast::TableWithJoins, out: &mut Vec<&'a ast::TableFactor>) {
        for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            out.push(f);
            if let ast::TableFactor::NestedJoin {
                table_with_joins, ..
            } = f
            {
                walk(table_with_joins, out);
            }
        }
    }
    let mut out = vec![];
    for t in from {
        walk(t, &mut out);
    }
    out.into_iter()
}

/// True when `plan` scans table or view `name`: anywhere in it, in its subqueries
/// (`WHERE k IN (SELECT …)`) and in the input of a window table function over it.
fn plan_reads(plan: &datafusion::logical_expr::LogicalPlan, name: &str) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut reads = false;
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(s) = p {
            let windowed = crate::plan::window::window_table(s);
            // A `FOR SYSTEM_TIME AS OF` table is read under a name of its own.
            let looked_up = s.table_name.table().starts_with("__weir_lookup_")
                && datafusion::datasource::source_as_provider(&s.source).is_ok_and(|p| {
                    p.downcast_ref::<StreamTable>()
                        .is_some_and(|t| t.def().name == name)
                });
            if s.table_name.table() == name
                || looked_up
                || windowed.is_some_and(|w| plan_reads(&w.input, name))
            {
                reads = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    reads
}

/// The error for dropping or renaming `kind` (`table`, `view`) `name` while the views
/// `users` read it by name; None when none does.
fn read_by_views(
    kind: &str,
    name: &str,
    pos: crate::error::Pos,
    users: &[String],
) -> Option<WeirError> {
    if users.is_empty() {
        return None;
    }
    let names: Vec<String> = users.iter().map(|u| format!("'{u}'")).collect();
    Some(
        WeirError::sql(
            format!(
                "{kind} '{name}' is read by view{} {}",
                if users.len() > 1 { "s" } else { "" },
                names.join(", ")
            ),
            Some(pos),
        )
        .with_hint(format!("drop {} first", users.join(", "))),
    )
}
