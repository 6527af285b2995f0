//! Encoding batches as text: JSON lines, CSV, Flink's print form and terminal tables.

use std::io::Write;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Result, WeirError};

/// How cells print: `null` for NULL, ISO-8601 timestamps without trailing zero fractions.
pub fn format_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("null")
        .with_timestamp_format(Some("%Y-%m-%dT%H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%dT%H:%M:%S%.fZ"))
}

/// How cells print in a table (the shell's, `weir run`'s and `weir query`'s): as
/// [`format_options`], but a NULL as `<NULL>`, as Flink's SQL client prints it (its
/// `PrintStyle.NULL_VALUE`); a NULL inside a collection's text stays `NULL`.
pub fn table_options() -> FormatOptions<'static> {
    format_options().with_null("<NULL>")
}

/// `batch` with each DOUBLE and FLOAT column as its text by Java's `Double.toString`
/// ([`crate::format::json_out::java_float_text`]: `1.0E20`, `Infinity`), as Flink's SQL
/// client and `print` connector show them; other columns as they are.
pub fn java_floats(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::datatypes::DataType;
    map_columns(
        batch,
        |t| matches!(t, DataType::Float64 | DataType::Float32),
        csv_value_text,
    )
}

/// `batch` with each column whose type `is` accepts replaced by `f` of it, its field
/// retyped to the new array's type; the row count, the other columns and the schema's
/// metadata kept. `batch` itself (a cheap clone) when no column is such. Errors: `f`'s.
fn map_columns(
    batch: &RecordBatch,
    is: impl Fn(&datafusion::arrow::datatypes::DataType) -> bool,
    mut f: impl FnMut(&datafusion::arrow::array::ArrayRef) -> Result<datafusion::arrow::array::ArrayRef>,
) -> Result<RecordBatch> {
    use datafusion::arrow::datatypes::Schema;
    let schema = batch.schema();
    if !schema.fields().iter().any(|field| is(field.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (field, c) in schema.fields().iter().zip(batch.columns()) {
        let c = if is(field.data_type()) {
            f(c)?
        } else {
            c.clone()
        };
        fields.push(field.as_ref().clone().with_data_type(c.data_type().clone()));
        cols.push(c);
    }
    let options = datafusion::arrow::record_batch::RecordBatchOptions::new()
        .with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        std::sync::Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        cols,
        &options,
    )?)
}

/// `batch` with each BOOLEAN column as `TRUE`/`FALSE` text (NULL stays NULL), as Flink's
/// SQL client shows a boolean: it prints a value with its cast to STRING (Flink's
/// `RowDataToStringConverterImpl` and `BooleanToStringCastRule`, since 1.15). For the
/// tables of `weir`, `weir run` and `weir query`; CSV, JSON and the `print` connector keep
/// `true`/`false`, as Flink's formats and its `print` connector write them.
pub fn flink_booleans(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, AsArray, StringArray};
    use datafusion::arrow::datatypes::DataType;
    map_columns(
        batch,
        |t| t == &DataType::Boolean,
        |c| {
            Ok(std::sync::Arc::new(
                c.as_boolean()
                    .iter()
                    .map(|v| v.map(|v| if v { "TRUE" } else { "FALSE" }))
                    .collect::<StringArray>(),
            ) as ArrayRef)
        },
    )
}

/// Every cell of a batch as text (with `opts`; DOUBLE and FLOAT as [`java_floats`]), row
/// by row.
pub fn cell_texts(batch: &RecordBatch, opts: &FormatOptions) -> Result<Vec<Vec<String>>> {
    let batch = &java_floats(batch)?;
    let fmts = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|r| fmts.iter().map(|f| f.value(r).to_string()).collect())
        .collect())
}

/// Each row of the batches as one line of [`format_options`] cells joined by `sep`, in
/// order: how tests compare results.
pub fn row_texts(batches: &[RecordBatch], sep: &str) -> Result<Vec<String>> {
    let opts = format_options();
    let mut out = vec![];
    for b in batches {
        out.extend(cell_texts(b, &opts)?.into_iter().map(|r| r.join(sep)));
    }
    Ok(out)
}

/// Writes rows in Flink's print form: `+I[v1, v2, ...]`, one per line (DOUBLE and FLOAT
/// as [`java_floats`]).
pub fn write_print_rows(w: &mut dyn Write, batch: &RecordBatch, prefix: &str) -> Result<()> {
    let opts = format_options();
    let (batch, kinds) = crate::changelog::split(batch);
    let batch = java_floats(&batch)?;
    let fmts = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut line = String::with_capacity(128);
    for row in 0..batch.num_rows() {
        line.clear();
        line.push_str(prefix);
        let kind = kinds
            .as_ref()
            .and_then(|k| crate::changelog::RowKind::from_i8(k.value(row)))
            .unwrap_or(crate::changelog::RowKind::Insert);
        line.push_str(kind.short());
        line.push('[');
        for (i, f) in fmts.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            use std::fmt::Write as _;
            let _ = write!(line, "{}", f.value(row));
        }
        line.push_str("]\n");
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Output formats for results shown to a person or piped to a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Boxed tables, drawn as the rows come.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects over the whole run.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl std::str::FromStr for OutputFormat {
    type Err = WeirError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "csv" => Ok(OutputFormat::Csv),
            "json" => Ok(OutputFormat::Json),
            "ndjson" => Ok(OutputFormat::Ndjson),
            other => Err(WeirError::user(format!(
                "unknown format '{other}': use table, csv, json or ndjson"
            ))),
        }
    }
}

/// How result tables are drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Display {
    /// The widest a cell is drawn, in characters (0: no limit); longer text is cut to it,
    /// its last three characters `...`, as Flink's sql-client does.
    pub max_width: usize,
    /// One field per line, under a `-[ RECORD n ]-` line per row (psql's `\x`).
    pub expanded: bool,
    /// The statement's time is printed after it (the shell's `\timing on`, psql's
    /// `Time: …`): a result's footer then gives its count alone, not a second time.
    pub timed: bool,
    /// How a standing query's rows are shown (Flink's `sql-client.execution.result-mode`).
    pub mode: ResultMode,
    /// The session zone (`table.local-time-zone`, as Arrow reads it: 'Asia/Shanghai',
    /// '+08:00'; None: UTC). A `TIMESTAMP_LTZ` is shown as its wall-clock time there, as
    /// Flink's sql-client shows it.
    pub zone: Option<std::sync::Arc<str>>,
    /// The most rows a `tableau` table draws (0: all); the rest are counted in the
    /// footer, as datafusion-cli's `--maxrows`. The shell sets it for bounded queries.
    pub max_rows: usize,
    /// The most rows the `table` result mode keeps; past it the oldest go first (Flink's
    /// `sql-client.execution.max-table-result.rows`).
    pub max_table_rows: usize,
}

/// Flink's sql-client result modes (`SET 'sql-client.execution.result-mode'`), for a
/// standing query's rows in table format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultMode {
    /// The current result, its changes applied (`-U`/`-D` take a row out, `+I`/`+U` put
    /// one in), redrawn in place on a terminal a few times a second and printed once at
    /// the end when not on one.
    Table,
    /// Every change on its own line in Flink's print form: `+I[a, 1]`, `-U[a, 1]`, ….
    Changelog,
    /// Every change as a row of one table drawn as the rows come, an `op` column first for
    /// a changelog (Weir's default).
    #[default]
    Tableau,
}

impl ResultMode {
    /// Flink's setting key.
    pub const KEY: &'static str = "sql-client.execution.result-mode";

    /// Parses `table`, `changelog` or `tableau` (any case). Errors: another value.
    pub fn parse(value: &str) -> Result<ResultMode> {
        match value.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(ResultMode::Table),
            "changelog" => Ok(ResultMode::Changelog),
            "tableau" => Ok(ResultMode::Tableau),
            other => Err(WeirError::user(format!(
                "setting '{}': '{other}' is not a result mode: table, changelog or tableau",
                ResultMode::KEY
            ))),
        }
    }
}

impl Display {
    /// Flink's `table.display.max-column-width` default.
    pub const DEFAULT_MAX_WIDTH: usize = 30;

    /// Flink's `sql-client.execution.max-table-result.rows` default.
    pub const DEFAULT_MAX_TABLE_ROWS: usize = 1_000_000;

    /// `batch` as the shell shows it, Flink's sql-client's way: each `TIMESTAMP_LTZ` as the
    /// wall-clock time of the session zone, each `TIMESTAMP` column then as the text a
    /// `CAST` to `STRING` gives (`2024-03-10 00:30:00.000`, see
    /// [`crate::sql::local_time::timestamp_text`]), and each ROW, MAP and ARRAY column as
    /// that cast writes it (`(1, a)`, `{k=1}`, `[1.0E20]`, an LTZ inside on the zone's
    /// clock; [`crate::sql::local_time::flink_text`]); a BOOLEAN as `TRUE`/`FALSE`
    /// ([`flink_booleans`]); an INTERVAL as Flink writes it (`+0 00:20:00.000`, `+2-06`;
    /// [`crate::sql::local_time::interval_text`]). Errors: an unknown zone (the session checked it when it was
    /// set).
    pub fn localize(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        use datafusion::arrow::datatypes::{DataType, Schema};
        if !batch.schema().fields().iter().any(|f| {
            matches!(
                f.data_type(),
                DataType::Timestamp(_, _) | DataType::Interval(_)
            ) || f.data_type().is_nested()
        }) {
            return flink_booleans(batch);
        }
        let zone = self.zone.as_deref().unwrap_or("UTC");
        let tz: datafusion::arrow::array::timezone::Tz = zone
            .parse()
            .map_err(|e| WeirError::user(format!("time zone '{zone}': {e}")))?;
        let mut fields = vec![];
        let mut columns = vec![];
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            if matches!(f.data_type(), DataType::Interval(_)) {
                let c = crate::sql::local_time::interval_text(c)?;
                fields.push(f.as_ref().clone().with_data_type(DataType::Utf8));
                columns.push(c);
                continue;
            }
            if f.data_type().is_nested() {
                let c = crate::sql::local_time::flink_text(c, &tz)?;
                fields.push(f.as_ref().clone().with_data_type(DataType::Utf8));
                columns.push(c);
                continue;
            }
            let mut c = crate::sql::local_time::local_wall(c, &tz)?;
            if matches!(c.data_type(), DataType::Timestamp(_, None)) {
                c = crate::sql::local_time::timestamp_text(&c)?;
            }
            fields.push(f.as_ref().clone().with_data_type(c.data_type().clone()));
            columns.push(c);
        }
        let schema = Schema::new(fields).with_metadata(batch.schema().metadata().clone());
        flink_booleans(&RecordBatch::try_new(std::sync::Arc::new(schema), columns)?)
    }

    /// `text` cut to the width limit.
    pub fn cut(&self, text: String) -> String {
        if self.max_width == 0 || text.chars().count() <= self.max_width {
            return text;
        }
        let keep = self.max_width.saturating_sub(3);
        let mut out: String = text.chars().take(keep).collect();
        out.push_str(&".".repeat(self.max_width.min(3)));
        out
    }
}

impl Default for Display {
    fn default() -> Self {
        Display {
            max_width: Display::DEFAULT_MAX_WIDTH,
            expanded: false,
            timed: false,
            mode: ResultMode::default(),
            zone: None,
            max_rows: 0,
            max_table_rows: Display::DEFAULT_MAX_TABLE_ROWS,
        }
    }
}

/// Rows in the expanded form (psql's `\x`): per row a `-[ RECORD n ]-` line (n from
/// `first`, 1-based), then `name | value` per column, names padded to the longest.
pub fn expanded_rows(names: &[String], rows: &[Vec<String>], first: usize) -> String {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let head = format!("-[ RECORD {} ]", first + i);
        let rule = (width + 3).saturating_sub(head.chars().count()).max(1);
        out.push_str(&head);
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for (n, v) in names.iter().zip(r) {
            let pad = width - n.chars().count();
            out.push_str(&format!("{n}{} | {v}\n", " ".repeat(pad)));
        }
    }
    out
}

/// `batches` drawn as `display` draws a result: a boxed table of their cells (as
/// [`format_options`] writes them), each cut to the width limit, or psql's expanded rows.
pub fn display_table(batches: &[RecordBatch], display: &Display) -> Result<String> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let Some(first) = batches.first() else {
        return Ok(String::new());
    };
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let opts = table_options();
    let mut rows: Vec<Vec<String>> = vec![];
    for b in batches {
        rows.extend(
            cell_texts(&flink_booleans(b)?, &opts)?
                .into_iter()
                .map(|r| r.into_iter().map(|c| display.cut(c)).collect()),
        );
    }
    if display.expanded {
        return Ok(expanded_rows(&names, &rows, 1));
    }
    let schema = std::sync::Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            std::sync::Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as ArrayRef
        })
        .collect();
    let table = RecordBatch::try_new(schema, columns)?;
    Ok(format!(
        "{}\n",
        datafusion::arrow::util::pretty::pretty_format_batches(&[table])?
    ))
}

/// The first `n` rows of `batches` (all of them when there are fewer).
pub fn first_rows(batches: &[RecordBatch], n: usize) -> Vec<RecordBatch> {
    let mut left = n;
    let mut out = vec![];
    for b in batches {
        if left == 0 {
            break;
        }
        let take = b.num_rows().min(left);
        out.push(b.slice(0, take));
        left -= take;
    }
    out
}

/// `batches` as a text table at most `width` characters wide, as the shell draws a
/// statement's result (`SET;`, `SHOW …`, `DESCRIBE`) that would be wider than its
/// terminal: the same box as [`write_results`] draws, its widest cells wrapped onto more
/// lines (psql's `\pset format wrapped`), so nothing is cut and no line wraps on screen.
pub fn wrapped_table(batches: &[RecordBatch], width: u16) -> Result<String> {
    use comfy_table::{Cell, ColumnConstraint, ContentArrangement, Table};
    let mut table = Table::new();
    // arrow's pretty printer's box, so a wrapped table looks like the others.
    table.load_preset("||--+-++|    ++++++");
    table.set_content_arrangement(ContentArrangement::Dynamic);
    table.set_width(width);
    let names: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let opts = table_options();
    let mut rows = vec![];
    for b in batches {
        rows.extend(cell_texts(&flink_booleans(b)?, &opts)?);
    }
    // Each column's widest text; the widest column alone is wrapped when the others,
    // whole, leave it room enough (a key beside its value stays on one line).
    let text_width = |s: &String| s.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..names.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .chain([&names[i]])
                .map(text_width)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let widest = (0..widths.len()).max_by_key(|i| widths[*i]);
    let others: usize =
        widths.iter().map(|w| w + 3).sum::<usize>() + 4 - widest.map_or(0, |i| widths[i]);
    let keep_others_whole = others + 12 <= width as usize;
    table.set_header(names.iter().map(Cell::new));
    for row in rows {
        table.add_row(row);
    }
    if keep_others_whole {
        for (i, col) in table.column_iter_mut().enumerate() {
            if Some(i) != widest {
                col.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
    Ok(format!("{table}\n"))
}

/// Writes one chunk of results; `first` says whether a CSV header is due.
pub fn write_results(
    w: &mut dyn Write,
    format: OutputFormat,
    batches: &[RecordBatch],
    first: bool,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let opts = table_options();
            // As the shell's tables show them (timestamps, collections, booleans and
            // intervals as Flink's client writes them), on UTC's clock unless the caller
            // has localized the batches to the session zone already.
            let display = Display::default();
            let batches = batches
                .iter()
                .map(|b| java_floats(&display.localize(b)?))
                .collect::<Result<Vec<_>>>()?;
            let t = datafusion::arrow::util::pretty::pretty_format_batches_with_options(
                &batches, &opts,
            )?;
            writeln!(w, "{t}")?;
        }
        // Each batch is encoded into memory, then written: arrow's CSV writer turns an I/O
        // error into text, and a closed pipe must stay one (`WeirError::OutputClosed`).
        OutputFormat::Csv => {
            let mut buf = Vec::new();
            for (i, b) in batches.iter().enumerate() {
                buf.clear();
                let mut wr = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(first && i == 0)
                    .build(&mut buf);
                wr.write(&nested_as_text(&java_floats(b)?)?)?;
                drop(wr);
                w.write_all(&buf)?;
            }
        }
        // NULLs are written (`"k":null`), as Flink's JSON format writes them.
        OutputFormat::Json => {
            let mut wr = datafusion::arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut *w);
            let batches = batches
                .iter()
                .map(json_map_keys)
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            wr.write_batches(&refs)?;
            wr.finish()?;
            writeln!(w)?;
        }
        OutputFormat::Ndjson => {
            let mut wr = ndjson_writer(&mut *w);
            let batches = batches
                .iter()
                .map(json_map_keys)
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            wr.write_batches(&refs)?;
            wr.finish()?;
        }
    }
    Ok(())
}

/// `batch` with each nested column (ARRAY, MAP, ROW) as the text Flink's `CAST(… AS
/// STRING)` gives it (`[1, 2]`, `{a=1}`, `(1, x)`; [`crate::sql::local_time::flink_text`],
/// a `TIMESTAMP_LTZ` inside on UTC's clock), for the tables and the CSV output of `weir
/// query` and the shell's statements (a CSV writer takes only scalars); NULL stays NULL.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    let utc = utc()?;
    map_columns(
        batch,
        |t| t.is_nested(),
        |c| Ok(crate::sql::local_time::flink_text(c, &utc)?),
    )
}

/// UTC as a zone for [`crate::sql::local_time::flink_text`].
fn utc() -> Result<datafusion::arrow::array::timezone::Tz> {
    "UTC"
        .parse()
        .map_err(|e| WeirError::internal(format!("time zone UTC: {e}")))
}

/// `batch` ready for the JSON output of `weir query`, `--format json`/`ndjson` and the
/// shell: the keys of every `MAP` whose keys are not strings, nested ones too, as Flink's
/// `CAST(… AS STRING)` text of them (`{"1": "a"}`, `{"(1, x)": 2}`), since a JSON object's
/// keys are strings. Other columns are unchanged. Errors: a timestamp key outside chrono's
/// range of dates.
pub fn json_map_keys(batch: &RecordBatch) -> Result<RecordBatch> {
    let utc = utc()?;
    map_columns(
        batch,
        crate::format::nested::holds_non_string_map_key,
        |c| {
            Ok(crate::format::nested::rewrite(c, &mut |a| {
                map_keys_as_text(a, &utc)
            })?)
        },
    )
}

/// A `MAP` array with its keys as text when they are not strings (and the same done to
/// maps inside its values); None for any other array (see [`json_map_keys`]).
fn map_keys_as_text(
    a: &datafusion::arrow::array::ArrayRef,
    utc: &datafusion::arrow::array::timezone::Tz,
) -> std::result::Result<
    Option<datafusion::arrow::array::ArrayRef>,
    datafusion::arrow::error::ArrowError,
> {
    use datafusion::arrow::array::{Array, AsArray, MapArray, StructArray};
    use datafusion::arrow::datatypes::{DataType, Fields};
    use std::sync::Arc;
    let DataType::Map(field, sorted) = a.data_type() else {
        return Ok(None);
    };
    let m = a.as_map();
    let keys = match m.keys().data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => m.keys().clone(),
        _ => crate::sql::local_time::flink_text(m.keys(), utc).map_err(|e| {
            datafusion::arrow::error::ArrowError::ComputeError(format!("a MAP key as text: {e}"))
        })?,
    };
    let values = crate::format::nested::rewrite(m.values(), &mut |v| map_keys_as_text(v, utc))?;
    let fields: Fields = m
        .entries()
        .fields()
        .iter()
        .zip([keys.data_type(), values.data_type()])
        .map(|(f, t)| Arc::new(f.as_ref().clone().with_data_type(t.clone())))
        .collect();
    let entries = StructArray::try_new(fields, vec![keys, values], m.entries().nulls().cloned())?;
    let field = Arc::new(
        field
            .as_ref()
            .clone()
            .with_data_type(entries.data_type().clone()),
    );
    Ok(Some(Arc::new(MapArray::try_new(
        field,
        m.offsets().clone(),
        entries,
        m.nulls().cloned(),
        *sorted,
    )?)))
}

/// A JSON-lines writer into `w` that writes NULLs (`"k":null`), as Flink's JSON format.
pub fn ndjson_writer<W: Write>(
    w: W,
) -> datafusion::arrow::json::Writer<W, datafusion::arrow::json::writer::LineDelimited> {
    datafusion::arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, datafusion::arrow::json::writer::LineDelimited>(w)
}

/// A CSV writer with `delimiter` and, when `header`, a header line. Timestamps reach it
/// as text already (see [`csv_ready`]).
pub fn csv_writer<W: std::io::Write>(
    w: W,
    delimiter: u8,
    header: bool,
) -> datafusion::arrow::csv::Writer<W> {
    datafusion::arrow::csv::WriterBuilder::new()
        .with_header(header)
        .with_delimiter(delimiter)
        .build(w)
}

/// Each timestamp of `array` as Flink's CSV format writes it (its `RowDataToCsvConverters`
/// with `TimeFormats.SQL_TIMESTAMP_FORMAT`): `2024-03-10 00:30:00.25`, the fraction with as
/// many digits as it needs (none when it is zero), as Weir's JSON writer writes it; a
/// `TIMESTAMP_LTZ` as its UTC instant so, then `Z`. Other arrays come back as they are.
/// Errors: a value outside chrono's range of dates.
pub fn sql_timestamp_text(
    array: &datafusion::arrow::array::ArrayRef,
) -> Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{AsArray, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
    let DataType::Timestamp(unit, tz) = array.data_type() else {
        return Ok(array.clone());
    };
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let ints = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 24);
    for v in ints.as_primitive::<Int64Type>().iter() {
        let Some(v) = v else {
            out.append_null();
            continue;
        };
        let nanos = (v.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32;
        let t = chrono::DateTime::from_timestamp(v.div_euclid(per_second), 0)
            .ok_or_else(|| WeirError::user(format!("timestamp {v} is out of range")))?;
        let mut text = t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string();
        crate::format::json_out::fraction(nanos, &mut text);
        if tz.is_some() {
            text.push('Z');
        }
        out.append_value(text);
    }
    Ok(std::sync::Arc::new(out.finish()))
}

/// Each value of `array` as Flink's CSV format writes it where Arrow's CSV writer would
/// write another text: a timestamp as [`sql_timestamp_text`], a DOUBLE or FLOAT as Java's
/// `Double.toString` ([`crate::format::json_out::java_float_text`]), a BYTES value in base64 with
/// padding (Jackson's `binaryNode`, which Flink's `RowDataToCsvConverters` writes; its
/// reader and Weir's decode that). Other arrays come back as they are. Errors: a timestamp
/// outside chrono's range of dates.
fn csv_value_text(
    array: &datafusion::arrow::array::ArrayRef,
) -> Result<datafusion::arrow::array::ArrayRef> {
    use base64::Engine;
    use datafusion::arrow::array::{Array, AsArray, BinaryArray, StringArray};
    use datafusion::arrow::datatypes::DataType;
    match array.data_type() {
        DataType::Timestamp(..) => sql_timestamp_text(array),
        DataType::Float64 | DataType::Float32 => {
            let single = matches!(array.data_type(), DataType::Float32);
            let v = datafusion::arrow::compute::cast(array, &DataType::Float64)?;
            let text: StringArray = v
                .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                .iter()
                .map(|v| v.map(|v| crate::format::json_out::java_float_text(v, single)))
                .collect();
            Ok(std::sync::Arc::new(text))
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let bytes = datafusion::arrow::compute::cast(array, &DataType::Binary)?;
            let bytes = bytes
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or_else(|| WeirError::internal("a BYTES column that is not binary"))?;
            let text: StringArray = bytes
                .iter()
                .map(|b| b.map(|b| base64::engine::general_purpose::STANDARD.encode(b)))
                .collect();
            Ok(std::sync::Arc::new(text))
        }
        _ => Ok(array.clone()),
    }
}

/// Flink's default `csv.array-element-delimiter`.
pub const CSV_ARRAY_DELIMITER: &str = ";";

/// `batch` ready for a CSV writer, which takes no nested values: each ARRAY column as the
/// text of its elements joined by `array_delimiter` (Flink's `csv.array-element-delimiter`,
/// default `;`), a NULL element as `null` (`csv.null-literal`, default empty), a NULL
/// array NULL; each timestamp and BYTES value (a column's, or an element's) as
/// [`csv_value_text`] writes it. Other columns are unchanged.
pub fn csv_ready(batch: &RecordBatch, array_delimiter: &str, null: &str) -> Result<RecordBatch> {
    use datafusion::arrow::array::{Array, AsArray, StringBuilder};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    if !batch.schema().fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::List(_)
                | DataType::Timestamp(..)
                | DataType::Float64
                | DataType::Float32
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::FixedSizeBinary(_)
        )
    }) {
        return Ok(batch.clone());
    }
    let opts = FormatOptions::default();
    let mut fields = vec![];
    let mut cols = vec![];
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if !matches!(f.data_type(), DataType::List(_)) {
            let text = csv_value_text(c)?;
            fields.push(f.as_ref().clone().with_data_type(text.data_type().clone()));
            cols.push(text);
            continue;
        }
        let list = c.as_list::<i32>();
        let items = csv_value_text(list.values())?;
        let values = ArrayFormatter::try_new(items.as_ref(), &opts)?;
        let mut out = StringBuilder::new();
        for row in 0..list.len() {
            if list.is_null(row) {
                out.append_null();
                continue;
            }
            let (start, end) = (
                list.value_offsets()[row] as usize,
                list.value_offsets()[row + 1] as usize,
            );
            let text: Vec<String> = (start..end)
                .map(|i| {
                    if items.is_null(i) {
                        null.to_string()
                    } else {
                        values.value(i).to_string()
                    }
                })
                .collect();
            out.append_value(text.join(array_delimiter));
        }
        fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
        cols.push(std::sync::Arc::new(out.finish()) as datafusion::arrow::array::ArrayRef);
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        cols,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BYTES in a CSV file are base64 with padding, a column's and an array element's, as
    /// Flink's CSV format writes them (Jackson's `binaryNode`) and Weir's CSV reader reads
    /// them; a NULL stays NULL.
    #[test]
    fn csv_bytes_are_written_in_base64() {
        use datafusion::arrow::array::{Array, AsArray, BinaryArray, ListArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let bytes = BinaryArray::from(vec![Some(&b"ab"[..]), None, Some(&[0xff, 0x00][..])]);
        let items = Arc::new(BinaryArray::from(vec![&b"xyz"[..], &b"a"[..]]));
        let field = Arc::new(Field::new("item", DataType::Binary, true));
        let list = ListArray::new(
            field.clone(),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths([2, 0, 0]),
            items,
            None,
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Binary, true),
            Field::new("a", DataType::List(field), true),
        ]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(bytes), Arc::new(list)]).expect("batch");
        let out = csv_ready(&batch, ";", "").expect("ready");
        let b = out.column(0).as_string::<i32>();
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            [Some("YWI="), None, Some("/wA=")]
        );
        let a = out.column(1).as_string::<i32>();
        assert_eq!(a.value(0), "eHl6;YQ==");
        assert!(a.is_valid(1));
    }
}
