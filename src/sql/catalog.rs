//! Tables as declared by `CREATE TABLE`: columns, computed columns, watermark, connector
//! and options — and how DataFusion's planner sees them ([`StreamTable`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr as DfExpr, ExprSchemable};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::Expr;

use crate::error::{Pos, Result, WeirError};
use crate::sql::options::Options;
use crate::sql::parser::{ColumnKind, CreateTable, WatermarkDef};

/// A metadata column as declared: `name TYPE [NOT NULL] METADATA [FROM 'key'] [VIRTUAL]`.
#[derive(Debug, Clone)]
pub struct MetadataDecl {
    /// The column's name.
    pub name: String,
    /// The metadata key: the one written after `FROM`, else the column's name.
    pub key: String,
    /// Flink's `DESCRIBE` extras text (`Column.MetadataColumn#explainExtras`): `METADATA`,
    /// ` FROM 'key'` when a key is written, ` VIRTUAL`.
    pub extras: String,
    /// False when declared `NOT NULL` (the column itself is nullable whatever was
    /// declared: a record may lack the metadata).
    pub nullable: bool,
    /// `VIRTUAL`: read only. Otherwise a sink writes it, if its connector can.
    pub is_virtual: bool,
}

/// A table of the catalog.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub pos: Pos,
    pub connector: String,
    pub options: Options,
    /// The columns the connector reads or writes (physical and metadata), in declared order.
    pub physical: SchemaRef,
    /// Every column a query sees, in declared order (physical, metadata and computed).
    pub schema: SchemaRef,
    /// Computed columns: index in `schema` and the expression.
    pub computed: Vec<(usize, Expr, Pos)>,
    /// Metadata columns: name and key.
    pub metadata: Vec<(String, String)>,
    /// Metadata columns as declared (see [`MetadataDecl`]), in order.
    pub metadata_declared: Vec<MetadataDecl>,
    pub watermark: Option<WatermarkDef>,
    pub partitioned_by: Vec<String>,
    /// The columns of `PRIMARY KEY (…) NOT ENFORCED`, in order (none when not declared):
    /// an `upsert-kafka` table's message key.
    pub primary_key: Vec<String>,
    /// False when the DDL had no column list (a sink takes its schema from the query).
    pub has_columns: bool,
    /// Rows held in memory, for a table registered with `Session::register_batches`.
    pub memory: Option<Arc<Vec<datafusion::arrow::record_batch::RecordBatch>>>,
}

/// The metadata keys a sink of `connector` writes, as Flink's sinks list them
/// (`SupportsWritingMetadata#listWritableMetadata`): Kafka's `headers` and `timestamp`, for
/// `kafka` and `upsert-kafka` (a delete's tombstone carries them too); the other connectors
/// write none.
pub fn writable_metadata(connector: &str) -> &'static [&'static str] {
    match connector {
        "kafka" | "upsert-kafka" => &["headers", "timestamp"],
        _ => &[],
    }
}

impl TableDef {
    /// True when reading the table ends: a `filesystem` table, read once to the end of its
    /// files — unless `source.monitor-interval` makes it watch its path for new files (a
    /// stream, as in Flink).
    pub fn is_bounded(&self) -> bool {
        self.connector == "filesystem" && self.options.get("source.monitor-interval").is_none()
    }

    /// The metadata columns a sink of this table writes: those not `VIRTUAL`, in order.
    /// Errors (as Flink's planner does) on one whose key the connector cannot write,
    /// naming the keys it can and the way out (`VIRTUAL`).
    pub fn written_metadata(&self) -> Result<Vec<&MetadataDecl>> {
        let writable = writable_metadata(&self.connector);
        let mut out = vec![];
        for m in self.metadata_declared.iter().filter(|m| !m.is_virtual) {
            if !writable.contains(&m.key.as_str()) {
                let can = match writable {
                    [] => format!("connector '{}' writes no metadata", self.connector),
                    keys => format!(
                        "connector '{}' writes the metadata {}",
                        self.connector,
                        keys.join(", ")
                    ),
                };
                return Err(WeirError::sql(
                    format!(
                        "sink table '{}' cannot write metadata column '{}' (key '{}'): {can}",
                        self.name, m.name, m.key
                    ),
                    None,
                )
                .with_hint(format!(
                    "declare it read-only: `{}` … METADATA … VIRTUAL",
                    m.name
                )));
            }
            out.push(m);
        }
        Ok(out)
    }

    /// The columns a sink of this table writes, in order: its physical columns less its
    /// metadata columns, except the persisted ones its connector writes. Errors as
    /// [`TableDef::written_metadata`].
    pub fn sink_schema(&self) -> Result<SchemaRef> {
        let persisted = self.written_metadata()?;
        let fields: Vec<Field> = self
            .physical
            .fields()
            .iter()
            .filter(|f| {
                !self.metadata.iter().any(|(c, _)| c == f.name())
                    || persisted.iter().any(|m| m.name == *f.name())
            })
            .map(|f| f.as_ref().clone())
            .collect();
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The column declared `AS PROCTIME()`, if any: a processing-time attribute.
    pub fn proctime_column(&self) -> Option<&str> {
        self.computed.iter().find_map(|(i, e, _)| {
            let text = e.to_string().replace(' ', "");
            text.eq_ignore_ascii_case("PROCTIME()")
                .then(|| self.schema.field(*i).name().as_str())
        })
    }

    /// Builds a table from its DDL, typing computed columns and checking the watermark.
    pub fn from_ddl(c: &CreateTable, state: &SessionState) -> Result<TableDef> {
        let mut options = Options::new();
        for o in &c.options {
            // Flink's legacy names, as older scripts (Nexmark's q13) still write them.
            let key = match o.key.as_str() {
                "connector.type" => "connector",
                "connector.path" => "path",
                "format.type" => "format",
                k => k,
            };
            options.insert(key, o.value.clone(), Some(o.pos));
        }
        let connector = match options.get("connector") {
            Some(v) => v.to_string(),
            None => {
                return Err(WeirError::sql(
                    format!("table '{}' has no 'connector' option", c.name),
                    Some(c.name_pos),
                )
                .with_hint(format!(
                    "add WITH ('connector' = '...'); connectors: {}",
                    crate::connector::ALL.join(", ")
                )));
            }
        };
        let mut seen = std::collections::HashSet::new();
        for col in &c.columns {
            if !seen.insert(col.name.as_str()) {
                return Err(WeirError::sql(
                    format!("column '{}' is declared twice", col.name),
                    Some(col.pos),
                ));
            }
        }
        let mut physical_fields = vec![];
        let mut metadata = vec![];
        let mut metadata_declared = vec![];
        for col in &c.columns {
            match &col.kind {
                ColumnKind::Physical {
                    data_type,
                    nullable,
                } => {
                    physical_fields.push(Field::new(&col.name, data_type.clone(), *nullable));
                }
                ColumnKind::Metadata {
                    data_type,
                    nullable,
                    key,
                    is_virtual,
                } => {
                    physical_fields.push(Field::new(&col.name, data_type.clone(), true));
                    metadata.push((col.name.clone(), key.clone().unwrap_or(col.name.clone())));
                    let mut extras = "METADATA".to_string();
                    if let Some(k) = key {
                        extras.push_str(&format!(" FROM '{}'", k.replace('\'', "''")));
                    }
                    if *is_virtual {
                        extras.push_str(" VIRTUAL");
                    }
                    metadata_declared.push(MetadataDecl {
                        name: col.name.clone(),
                        key: key.clone().unwrap_or(col.name.clone()),
                        extras,
                        nullable: *nullable,
                        is_virtual: *is_virtual,
                    });
                }
                ColumnKind::Computed(_) => {}
            }
        }
        let has_columns = !c.columns.is_empty();
        let mut physical = Arc::new(Schema::new(physical_fields));
        if !has_columns && connector == "nexmark" {
            physical = crate::source::nexmark::schema();
        }
        let physical_df = DFSchema::try_from(physical.as_ref().clone())?;
        let mut fields = vec![];
        let mut computed = vec![];
        let mut pi = 0;
        for col in &c.columns {
            match &col.kind {
                ColumnKind::Computed(e) => {
                    let logical = logical_expr(state, e, &physical_df)
                        .map_err(|err| err.at(Some(col.pos)))?;
                    let field = logical
                        .to_field(&physical_df)
                        .map_err(|err| WeirError::from(err).at(Some(col.pos)))?
                        .1;
                    let (dt, nullable) = (field.data_type().clone(), field.is_nullable());
                    computed.push((fields.len(), e.as_ref().clone(), col.pos));
                    fields.push(Field::new(&col.name, dt, nullable));
                }
                _ => {
                    fields.push(physical.field(pi).clone());
                    pi += 1;
                }
            }
        }
        if !has_columns {
            fields = physical
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
        }
        let schema = Arc::new(Schema::new(fields));
        if let Some(w) = &c.watermark {
            let Some(f) = schema.field_with_name(&w.column).ok() else {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut e = WeirError::sql(
                    format!("WATERMARK FOR names '{}', which is not a column", w.column),
                    Some(w.column_pos),
                );
                if let Some(s) = crate::error::did_you_mean(&w.column, names.iter().copied()) {
                    e = e.with_hint(format!("did you mean '{s}'?"));
                }
                return Err(e);
            };
            if !matches!(f.data_type(), DataType::Timestamp(..)) {
                return Err(WeirError::sql(
                    format!(
                        "the event-time column '{}' is {}, but a watermark needs a TIMESTAMP(3) or TIMESTAMP_LTZ(3) column",
                        w.column,
                        f.data_type()
                    ),
                    Some(w.column_pos),
                ));
            }
            // Flink's rule (its watermark validation in the catalog): an event time has a
            // precision of 0 to 3; windows and watermarks count whole milliseconds.
            if let DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _) =
                f.data_type()
            {
                return Err(WeirError::sql(
                    format!(
                        "the event-time column '{}' is a {}, but a watermark needs a TIMESTAMP(p) or TIMESTAMP_LTZ(p) of precision 0 to 3",
                        w.column,
                        crate::sql::types::flink_type_name(f.data_type())
                    ),
                    Some(w.column_pos),
                )
                .with_hint(
                    "declare it TIMESTAMP(3) or TIMESTAMP_LTZ(3), or put the watermark on a computed column of precision 3 (a CAST, or TO_TIMESTAMP_LTZ(epoch_ms, 3))",
                ));
            }
            let full_df = DFSchema::try_from(schema.as_ref().clone())?;
            let logical =
                logical_expr(state, &w.expr, &full_df).map_err(|e| e.at(Some(w.expr_pos)))?;
            let dt = logical
                .get_type(&full_df)
                .map_err(|e| WeirError::from(e).at(Some(w.expr_pos)))?;
            if !matches!(dt, DataType::Timestamp(..)) {
                return Err(WeirError::sql(
                    format!("the watermark expression gives {dt}, not a timestamp"),
                    Some(w.expr_pos),
                )
                .with_hint(format!(
                    "write WATERMARK FOR {} AS {} - INTERVAL '5' SECOND",
                    w.column, w.column
                )));
            }
        }
        // Flink's rule: a primary key is declared on physical columns that exist.
        if has_columns {
            let at = c.primary_key_pos.or_else(|| {
                c.columns
                    .iter()
                    .find(|col| col.primary_key)
                    .map(|col| col.pos)
            });
            for k in &c.primary_key {
                match c
                    .columns
                    .iter()
                    .find(|col| col.name == *k)
                    .map(|col| &col.kind)
                {
                    None => {
                        let names = c.columns.iter().map(|col| col.name.as_str());
                        let mut e = WeirError::sql(
                            format!(
                                "the primary key names '{k}', which is not a column of table '{}'",
                                c.name
                            ),
                            at,
                        );
                        if let Some(s) = crate::error::did_you_mean(k, names) {
                            e = e.with_hint(format!("did you mean '{s}'?"));
                        }
                        return Err(e);
                    }
                    Some(crate::sql::parser::ColumnKind::Physical { .. }) => {}
                    Some(kind) => {
                        let what = match kind {
                            crate::sql::parser::ColumnKind::Computed(_) => "a computed column",
                            _ => "a metadata column",
                        };
                        return Err(WeirError::sql(
                            format!(
                                "the primary key names '{k}', {what}: a primary key is declared on physical columns, as in Flink"
                            ),
                            at,
                        ));
                    }
                }
            }
        }
        for (p, pos) in &c.partitioned_by {
            if schema.field_with_name(p).is_err() && has_columns {
                return Err(WeirError::sql(
                    format!(
                        "partition column '{p}' is not a column of table '{}'",
                        c.name
                    ),
                    Some(*pos),
                ));
            }
        }
        Ok(TableDef {
            name: c.name.clone(),
            pos: c.name_pos,
            connector,
            options,
            physical,
            schema,
            computed,
            metadata,
            metadata_declared,
            watermark: c.watermark.clone(),
            partitioned_by: c.partitioned_by.iter().map(|(p, _)| p.clone()).collect(),
            primary_key: c.primary_key.clone(),
            has_columns,
            memory: None,
        })
    }
}

/// Plans a sqlparser expression against a schema with DataFusion.
///
/// DataFusion plans the expression's text, so an error's position is first in that text;
/// it is moved into the script by the expression's own span (when the expression has one),
/// so it points at the offending token, not at the script's first line.
pub fn logical_expr(state: &SessionState, e: &Expr, schema: &DFSchema) -> Result<DfExpr> {
    use datafusion::sql::sqlparser::ast::Spanned;
    let mut e = e.clone();
    crate::sql::rewrite::rewrite_expr(&mut e);
    let text = e.to_string();
    // A computed column or watermark reads a TIMESTAMP_LTZ in the session zone, as a
    // query does (the analyzer, which does it there, does not run on lone expressions).
    let zoned = state
        .create_logical_expr(&text, schema)
        .and_then(|l| crate::sql::literals::flink_int_literals_expr(l, schema))
        .and_then(|l| crate::sql::local_time::in_session_zone(l, schema))
        .and_then(|l| crate::sql::types::flink_casts(l, schema));
    zoned.map_err(|err| {
        let err = WeirError::from(err);
        let start = e.span().start;
        match (&err, start.line) {
            (WeirError::Sql { pos: Some(p), .. }, line) if line > 0 => {
                let p = if p.line == 1 {
                    crate::error::Pos {
                        line,
                        col: start.column + p.col.saturating_sub(1),
                    }
                } else {
                    crate::error::Pos {
                        line: line + p.line - 1,
                        col: p.col,
                    }
                };
                err.moved_to(p)
            }
            // An error without a position (a call's arguments, say): at the call.
            (
                WeirError::Sql {
                    pos: None, message, ..
                },
                _,
            ) => {
                let p = crate::sql::rewrite::function_named_in(&e, message);
                err.at(p)
            }
            _ => err,
        }
    })
}

/// The session's settings (`SET`, `--set`) and where each came from, as
/// [`crate::connector::effective_options`] takes them: kept in DataFusion's session config
/// (an extension) so that a batch read of a table applies them as a standing query does.
#[derive(Debug, Default)]
pub struct SessionSettings {
    /// Key and value of each setting.
    pub settings: Vec<(String, String)>,
    /// Key → the flag or statement that set it, for errors.
    pub origins: std::collections::BTreeMap<String, String>,
}

/// How a table appears to DataFusion's planner: its schema, and nothing to scan in batch —
/// standing queries read it through the streaming runtime, which recognises this type.
///
/// It holds the table as declared now: `ALTER TABLE … SET` replaces the definition in place
/// ([`StreamTable::replace`]), so a view created before reads the new options too, as a
/// Flink view, kept as SQL, would.
#[derive(Debug)]
pub struct StreamTable {
    def: std::sync::RwLock<Arc<TableDef>>,
}

impl StreamTable {
    pub fn new(def: Arc<TableDef>) -> Self {
        StreamTable {
            def: std::sync::RwLock::new(def),
        }
    }

    /// The table as declared now.
    pub fn def(&self) -> Arc<TableDef> {
        match self.def.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `def` in place of the table's definition, for every plan and view that reads
    /// this table from now on. Its schema must be the same (views are typed by it).
    pub fn replace(&self, def: Arc<TableDef>) {
        match self.def.write() {
            Ok(mut d) => *d = def,
            Err(poisoned) => *poisoned.into_inner() = def,
        }
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.def().schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// A `filesystem` table reads in batch: CSV and JSON files through Weir's own decoder
    /// ([`crate::source::batch`], every format option applied as in a standing query),
    /// Parquet as a DataFusion listing table (Hive partition folders become its partition
    /// columns, and filters on them prune folders); other connectors are streams only.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[DfExpr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let def = self.def();
        let external =
            |e: crate::error::WeirError| datafusion::error::DataFusionError::External(Box::new(e));
        if def.connector == "filesystem"
            && matches!(
                crate::format::Format::parse(&def.options, &def.name),
                Ok(crate::format::Format::Csv | crate::format::Format::Json)
            )
        {
            let options = match state.config().get_extension::<SessionSettings>() {
                Some(s) => crate::connector::effective_options(&def, &s.settings, &s.origins)
                    .map_err(external)?,
                None => def.options.clone(),
            };
            if !def.computed.is_empty() {
                return datafusion::common::plan_err!(
                    "table '{}' has computed columns; batch reads take plain and metadata columns only",
                    def.name
                );
            }
            // Cut into ranges read in parallel as DataFusion cuts its own file scans: when
            // enabled and the files hold at least `repartition_file_min_size` bytes; a
            // small table keeps its files' order of rows.
            let o = &state.config().options().optimizer;
            let parts = if o.repartition_file_scans
                && crate::source::batch::bytes_of(&def, &options).map_err(external)?
                    >= o.repartition_file_min_size as u64
            {
                state.config().target_partitions()
            } else {
                1
            };
            let exec = datafusion::physical_plan::streaming::StreamingTableExec::try_new(
                def.schema.clone(),
                crate::source::batch::FilePart::all(def.clone(), options, parts),
                projection,
                Vec::new(),
                false,
                limit,
            )?;
            return Ok(Arc::new(exec));
        }
        if def.connector == "filesystem" {
            let table = listing_table(&def)
                .map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
            return table.scan(state, projection, filters, limit).await;
        }
        datafusion::common::plan_err!(
            "table '{}' is a stream; read it in a standing query (SELECT or INSERT INTO)",
            def.name
        )
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&DfExpr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown as P;
        let def = self.def();
        Ok(filters
            .iter()
            .map(|f| {
                let on_partitions = !def.partitioned_by.is_empty()
                    && def.connector == "filesystem"
                    && f.column_refs()
                        .iter()
                        .all(|c| def.partitioned_by.contains(&c.name));
                if on_partitions {
                    P::Inexact
                } else {
                    P::Unsupported
                }
            })
            .collect())
    }
}

/// The listing table a `filesystem` table reads as in batch.
pub fn listing_table(def: &TableDef) -> Result<datafusion::datasource::listing::ListingTable> {
    use datafusion::datasource::file_format::FileFormat;
    use datafusion::datasource::file_format::csv::CsvFormat;
    use datafusion::datasource::file_format::json::JsonFormat;
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    if !def.computed.is_empty() || !def.metadata.is_empty() {
        return Err(WeirError::user(format!(
            "table '{}' has computed or metadata columns; batch reads take plain columns only",
            def.name
        )));
    }
    let format = crate::format::Format::parse(&def.options, &def.name)?;
    let path = def.options.require("path", &def.name)?;
    let (ff, ext): (Arc<dyn FileFormat>, &str) = match format {
        crate::format::Format::Parquet => (Arc::new(ParquetFormat::default()), ".parquet"),
        crate::format::Format::Json => (Arc::new(JsonFormat::default()), ".json"),
        crate::format::Format::Csv => (
            Arc::new(
                CsvFormat::default()
                    .with_has_header(def.options.bool_or("csv.header", false)?)
                    .with_delimiter(def.options.char_or("csv.field-delimiter", b',')?),
            ),
            ".csv",
        ),
    };
    let n = def.schema.fields().len();
    let k = def.partitioned_by.len();
    let tail: Vec<&str> = def.schema.fields()[n.saturating_sub(k)..]
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    if tail
        != def
            .partitioned_by
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
    {
        return Err(WeirError::user(format!(
            "table '{}': declare the PARTITIONED BY columns last, in order, to read it in batch",
            def.name
        )));
    }
    let partition_cols = def.schema.fields()[n - k..]
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let file_schema = Arc::new(Schema::new(
        def.schema.fields()[..n - k]
            .iter()
            .map(|f| f.as_ref().clone())
            .collect::<Vec<_>>(),
    ));
    let filter = crate::connector::path_filter(def, &def.options)?;
    let regex = def.options.get("source.path.regex-pattern").is_some();
    if regex && k > 0 {
        return Err(WeirError::user(format!(
            "table '{}': 'source.path.regex-pattern' over a PARTITIONED BY table is not supported in a batch read yet",
            def.name
        ))
        .with_hint("read it in a standing query, or without the option"));
    }
    let files_ext = ext;
    // Without partitions, the files the streaming source reads — at any depth, those the
    // path pattern keeps — as this listing's own paths (DataFusion's listing reads only
    // partition folders below the path).
    let files = match k {
        0 => filter
            .list(&crate::connector::local_path(path))
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.to_string_lossy().ends_with(files_ext))
            .collect::<Vec<_>>(),
        _ => vec![],
    };
    // No file the pattern keeps: a listing that finds none, so the table reads empty.
    let ext = if files.is_empty() && regex {
        ".weir-no-file-matches"
    } else {
        files_ext
    };
    let options = ListingOptions::new(ff)
        .with_file_extension(ext)
        .with_table_partition_cols(partition_cols);
    let config = if files.is_empty() {
        ListingTableConfig::new(ListingTableUrl::parse(path)?)
    } else {
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(f.to_string_lossy().as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ListingTableConfig::new_with_multi_paths(urls)
    };
    let config = config
        .with_listing_options(options)
        .with_schema(file_schema);
    Ok(ListingTable::try_new(config)?)
}
