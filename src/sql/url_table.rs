//! `FROM '<path>'`: a quoted path is a table, its format taken from its files' extension.
//!
//! DataFusion's own resolver (`SessionContext::enable_url_table`) takes the format from the
//! *first* file listed under a folder. An archive being written holds hidden files — a
//! sink's `.part-….parquet.inprogress`, a partition's `_SUCCESS` — and when one of them
//! comes first the folder is "not found". Weir skips hidden files (names starting with `.`
//! or `_`, as Hive and Flink's filesystem readers do) when it picks the format; the table
//! then lists only files with that extension, so an in-progress file (`….inprogress`) or a
//! success file is never read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{DynamicFileCatalog, TableProvider, UrlTableFactory};
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::Result;
use datafusion::execution::context::{SessionContext, SessionState};

/// Resolves quoted paths: local folders by their first visible file, anything else as
/// DataFusion does.
#[derive(Debug, Default)]
struct UrlTables {
    inner: DynamicListTableFactory,
}

/// A session context that resolves `FROM '<path>'` as described in the module docs.
pub fn with_url_tables(ctx: SessionContext) -> SessionContext {
    let current = Arc::clone(ctx.state().catalog_list());
    let factory = Arc::new(UrlTables::default());
    let catalogs = Arc::new(DynamicFileCatalog::new(
        current,
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let ctx: SessionContext = ctx
        .into_state_builder()
        .with_catalog_list(catalogs)
        .with_type_planner(Arc::new(crate::sql::types::FlinkTypes))
        .build()
        .into();
    factory
        .inner
        .session_store()
        .with_state(ctx.state_weak_ref());
    ctx
}

/// True for names a reader skips: `.hidden` and `_SUCCESS`-like files and folders.
fn hidden(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') || n.starts_with('_')
}

/// The first file under `dir` (depth first, in name order) that is not hidden and not in a
/// hidden folder; None when there is none.
fn first_visible_file(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| !hidden(&e.file_name()))
        .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, kind) in entries {
        // Links are not followed (a link to a parent folder would never end).
        if kind.is_file() {
            return Some(path);
        }
        if kind.is_dir()
            && let Some(f) = first_visible_file(&path)
        {
            return Some(f);
        }
    }
    None
}

#[async_trait]
impl UrlTableFactory for UrlTables {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let local = Path::new(url.strip_prefix("file://").unwrap_or(url));
        let first = if local.is_dir() {
            first_visible_file(local)
        } else {
            None
        };
        let Some(first) = first else {
            return self.inner.try_new(url).await;
        };
        let Ok(table_url) = ListingTableUrl::parse(url) else {
            return Ok(None);
        };
        let Some(state) = self
            .inner
            .session_store()
            .get_session()
            .upgrade()
            .and_then(|s| s.read().as_any().downcast_ref::<SessionState>().cloned())
        else {
            return self.inner.try_new(url).await;
        };
        let Ok((extension, compression)) =
            ListingTableConfig::infer_file_extension_and_compression_type(&first.to_string_lossy())
        else {
            return Ok(None);
        };
        let Some(format) = state.get_file_format_factory(&extension) else {
            return Ok(None);
        };
        let mut options = HashMap::new();
        if let Some(c) = &compression {
            options.insert("format.compression".to_string(), c.clone());
        }
        let format = format.create(&state, &options)?;
        let extension = match compression {
            Some(c) => format!("{extension}.{c}"),
            None => extension,
        };
        let config = ListingTableConfig::new(table_url)
            .with_listing_options(ListingOptions::new(format).with_file_extension(extension))
            .infer_partitions_from_path(&state)
            .await?
            .infer_schema(&state)
            .await?;
        Ok(Some(Arc::new(ListingTable::try_new(config)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder whose first file is a sink's hidden in-progress file (and whose partitions
    /// hold `_SUCCESS`) is still a table of its visible files.
    #[tokio::test]
    async fn hidden_files_do_not_hide_a_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        let part = dir.path().join("dt=2026-01-01");
        std::fs::create_dir_all(&part).expect("mkdir");
        std::fs::write(part.join(".a.csv.inprogress"), "half a li").expect("write");
        std::fs::write(part.join("_SUCCESS"), "").expect("write");
        std::fs::write(part.join("b.csv"), "x,y\n1,2\n3,4\n").expect("write");
        let ctx = with_url_tables(SessionContext::new());
        let sql = format!(
            "SELECT SUM(x) AS s, MIN(dt) AS dt FROM '{}'",
            dir.path().display()
        );
        let batches = ctx
            .sql(&sql)
            .await
            .expect("a table")
            .collect()
            .await
            .expect("runs");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string();
        assert!(text.contains("| 4 | 2026-01-01 |"), "{text}");
    }
}
