//! Rewriting the leaves of nested arrays (`ROW`, `ARRAY`, `MAP`): one walk for every pass
//! that changes values inside collections (a `TIMESTAMP_LTZ` shown on the zone's clock,
//! `TIME` cut to the second when read from JSON, a `MAP`'s keys as text for JSON output).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, MapArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::arrow::error::ArrowError;

/// `array` rebuilt with `f` applied: `f` is asked first of `array` itself; where it answers
/// `Some`, that array takes its place, and where it answers `None`, a `ROW`'s children, an
/// `ARRAY`'s values and a `MAP`'s entries are rewritten the same way (any other array stays
/// as it is). Field types follow the rewritten children, and nulls and offsets are kept, so
/// `f` may change a leaf's type but must keep its length.
///
/// Errors: `f`'s, or Arrow's when a rewritten child no longer fits (another length).
pub fn rewrite(
    array: &ArrayRef,
    f: &mut dyn FnMut(&ArrayRef) -> Result<Option<ArrayRef>, ArrowError>,
) -> Result<ArrayRef, ArrowError> {
    if let Some(done) = f(array)? {
        return Ok(done);
    }
    let retyped = |field: &Field, t: &DataType| Arc::new(field.clone().with_data_type(t.clone()));
    Ok(match array.data_type() {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let children = s
                .columns()
                .iter()
                .map(|c| rewrite(c, f))
                .collect::<Result<Vec<_>, _>>()?;
            let fields: Fields = fields
                .iter()
                .zip(&children)
                .map(|(field, c)| retyped(field, c.data_type()))
                .collect();
            Arc::new(StructArray::try_new(fields, children, s.nulls().cloned())?)
        }
        DataType::List(_) | DataType::LargeList(_) => {
            crate::sql::local_time::list_values(array, |values| rewrite(values, f))
                .unwrap_or_else(|| Ok(array.clone()))?
        }
        DataType::Map(field, sorted) => {
            let m = array.as_map();
            let entries: ArrayRef = Arc::new(m.entries().clone());
            let entries = rewrite(&entries, f)?;
            Arc::new(MapArray::try_new(
                retyped(field, entries.data_type()),
                m.offsets().clone(),
                entries.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?)
        }
        _ => array.clone(),
    })
}

/// Whether `t` is or holds (in a `ROW`, `ARRAY` or `MAP`) a type `is` accepts: a rewrite
/// that finds nothing to do can then be skipped.
pub fn holds(t: &DataType, is: &dyn Fn(&DataType) -> bool) -> bool {
    if is(t) {
        return true;
    }
    let field = |f: &FieldRef| holds(f.data_type(), is);
    match t {
        DataType::Struct(fs) => fs.iter().any(field),
        DataType::List(f) | DataType::LargeList(f) | DataType::Map(f, _) => field(f),
        _ => false,
    }
}

/// Whether `t` is or holds a `MAP` whose key is not a string (JSON objects have string
/// keys only).
pub fn holds_non_string_map_key(t: &DataType) -> bool {
    holds(t, &|t| match t {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) => kv.first().is_some_and(|k| {
                !matches!(
                    k.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            }),
            _ => false,
        },
        _ => false,
    })
}
