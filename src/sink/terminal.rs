//! Where a bare `SELECT` goes: the terminal. Tables are drawn as a stream — the header once,
//! then each row as soon as it is emitted, the bottom border when the query ends (so a
//! windowed query shows each window's rows the moment it fires, in one table). Cells are cut
//! to `table.display.max-column-width` (Flink's, default 30); a later row wider than the
//! columns drawn so far closes the table and opens a wider one, so no row breaks its box.
//! With `\x` each row is drawn one field per line. That is the `tableau` result mode, the
//! default; `changelog` prints each change in Flink's print form, and `table` keeps the
//! current result and redraws it in place, a page at a time, the shell's keys turning the
//! pages (see [`table_key`]; a line wider than the terminal wraps, so the redraw is exact
//! only for results that fit its width — which cut cells help). CSV, JSON
//! and NDJSON are written per emitted batch (JSON as one array over the whole run).

use std::io::Write;
use std::sync::{Arc, Mutex};

use datafusion::arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::Result;
use crate::format::encode::{
    Display, OutputFormat, ResultMode, cell_texts, expanded_rows, table_options, write_print_rows,
    write_results,
};

pub struct TerminalSink {
    format: OutputFormat,
    first: bool,
    rows: usize,
    quiet: bool,
    /// Column widths of the table being drawn, once its header is out.
    widths: Option<Vec<usize>>,
    display: Display,
    /// `table` result mode: the current result and the page shown, shared with the
    /// shell's page keys (see [`table_key`]).
    view: Arc<Mutex<TableView>>,
    started: std::time::Instant,
    /// `tableau` rows drawn, at most `display.max_rows` when that is set.
    shown: usize,
}

impl TerminalSink {
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        TerminalSink {
            format,
            first: true,
            rows: 0,
            quiet,
            widths: None,
            display: Display::default(),
            view: Arc::default(),
            started: std::time::Instant::now(),
            shown: 0,
        }
    }

    /// ` in 0.012s` for a footer, or nothing when the shell prints the statement's time
    /// after it (`\timing on`).
    fn took(&self) -> String {
        if self.display.timed {
            String::new()
        } else {
            format!(" in {:.3}s", self.started.elapsed().as_secs_f64())
        }
    }

    /// Draws tables as `display` says (width limit, expanded rows). In the `table` result
    /// mode the sink's result becomes the one the page keys turn (see [`table_key`]).
    pub fn with_display(mut self, display: Display) -> Self {
        if display.mode == ResultMode::Table
            && self.format == OutputFormat::Table
            && let Ok(mut f) = FOREGROUND.lock()
        {
            *f = Some(self.view.clone());
        }
        self.display = display;
        self
    }

    /// Stops this sink's `table` result being the one the page keys turn; true when it was.
    fn leave_foreground(&self) -> bool {
        let Ok(mut f) = FOREGROUND.lock() else {
            return false;
        };
        let was = f.as_ref().is_some_and(|v| Arc::ptr_eq(v, &self.view));
        if was {
            *f = None;
        }
        was
    }

    fn border(widths: &[usize]) -> String {
        let mut s = String::from("+");
        for w in widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    }

    fn line(cells: &[String], widths: &[usize]) -> String {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(widths) {
            let pad = w.saturating_sub(c.chars().count());
            s.push(' ');
            s.push_str(c);
            s.push_str(&" ".repeat(pad));
            s.push_str(" |");
        }
        s
    }

    /// `table` mode: applies a batch's changes to the current result (`+I`/`+U` add a
    /// row, `-U`/`-D` take out an equal one), then redraws it when on a terminal (at most
    /// five times a second).
    ///
    /// Takes the view's lock before stdout's, as the page keys do ([`table_key`],
    /// [`table_tick`]): the other order deadlocked the shell when a key was pressed while a
    /// batch was being drawn.
    fn apply(&mut self, batch: &RecordBatch) -> Result<()> {
        let (data, kinds) = crate::changelog::split(batch);
        let rows = cell_texts(&data, &table_options())?;
        let mut view = lock(&self.view);
        if view.names.is_empty() {
            view.names = data
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        for (i, row) in rows.into_iter().enumerate() {
            let row: Vec<String> = row.into_iter().map(|c| self.display.cut(c)).collect();
            let kind = kinds
                .as_ref()
                .and_then(|k| crate::changelog::RowKind::from_i8(k.value(i)))
                .unwrap_or(crate::changelog::RowKind::Insert);
            match kind {
                crate::changelog::RowKind::Insert | crate::changelog::RowKind::UpdateAfter => {
                    view.current.push_back(row);
                    // Past the limit the oldest row goes, as in Flink's table view.
                    if view.current.len() > self.display.max_table_rows.max(1) {
                        view.current.pop_front();
                    }
                }
                // The newest equal row goes (Flink's table view takes it first, so that
                // fewer pages change).
                _ => {
                    if let Some(at) = view.current.iter().rposition(|r| *r == row) {
                        view.current.remove(at);
                    }
                }
            }
        }
        let due = view
            .drawn_at
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(200));
        view.dirty = true;
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && due {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            view.draw(&mut w)?;
            w.flush()?;
        }
        Ok(())
    }

    fn table_rows(&mut self, batch: &RecordBatch, w: &mut dyn Write) -> Result<()> {
        let rows: Vec<Vec<String>> = cell_texts(batch, &table_options())?
            .into_iter()
            .map(|r| r.into_iter().map(|c| self.display.cut(c)).collect())
            .collect();
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if self.display.expanded {
            write!(w, "{}", expanded_rows(&names, &rows, self.rows + 1))?;
            return Ok(());
        }
        let needed: Vec<usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([n.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let widths = match &self.widths {
            Some(old) if old.iter().zip(&needed).all(|(o, n)| o >= n) => old.clone(),
            old => {
                // The first rows, or rows wider than the table drawn so far: close it and
                // draw a new header as wide as both.
                let widths: Vec<usize> = match old {
                    Some(old) => {
                        writeln!(w, "{}", Self::border(old))?;
                        old.iter().zip(&needed).map(|(o, n)| *o.max(n)).collect()
                    }
                    None => needed,
                };
                writeln!(w, "{}", Self::border(&widths))?;
                writeln!(w, "{}", Self::line(&names, &widths))?;
                writeln!(w, "{}", Self::border(&widths))?;
                self.widths = Some(widths.clone());
                widths
            }
        };
        for r in &rows {
            writeln!(w, "{}", Self::line(r, &widths))?;
        }
        Ok(())
    }
}

/// The `table` result mode's view: the current result (changes applied, cells as shown),
/// paged to the terminal's height as Flink's sql-client pages its table view. The sink
/// applies changes to it; the shell's page keys ([`table_key`]) turn its pages.
#[derive(Default)]
pub struct TableView {
    names: Vec<String>,
    current: std::collections::VecDeque<Vec<String>>,
    /// The page shown, from 0; None: the last, following the result as it grows (Flink's
    /// table view starts on its last page too).
    page: Option<usize>,
    /// The page number typed so far after `G`.
    typing: Option<String>,
    /// The page keys are read (the shell, on a terminal): the status line names them.
    keys: bool,
    /// Lines drawn last (to draw over them) and when.
    drawn: usize,
    drawn_at: Option<std::time::Instant>,
    /// Changed since it was last drawn (a change within 200 ms of the last drawing waits for
    /// the next, or for [`table_tick`]).
    dirty: bool,
    /// Every row, not a page: the result's last drawing, once the query has ended.
    whole: bool,
}

/// The `table` result shown in the foreground, whose pages the keys turn.
static FOREGROUND: Mutex<Option<Arc<Mutex<TableView>>>> = Mutex::new(None);

/// A lock that a panic elsewhere does not poison for good (the view is only text).
fn lock(view: &Mutex<TableView>) -> std::sync::MutexGuard<'_, TableView> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

/// The foreground `table` result, if one shows.
fn foreground() -> Option<Arc<Mutex<TableView>>> {
    FOREGROUND.lock().ok().and_then(|f| f.clone())
}

/// What a key pressed under a `table` result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKey {
    /// `Q`: quit the result (the shell cancels the query, as Flink's table view does).
    Quit,
    /// The view changed and was drawn again, or the key meant nothing.
    Handled,
}

/// Whether a `table` result shows in the foreground (its query has not ended).
pub fn table_showing() -> bool {
    foreground().is_some()
}

/// Draws the foreground `table` result again if it changed since its last drawing and
/// that was 200 ms ago or more: the key reader calls it a few times a second, so the last
/// change before the input falls silent shows too.
pub fn table_tick() {
    if let Some(view) = foreground() {
        let mut v = lock(&view);
        if v.dirty
            && v.drawn_at
                .is_some_and(|t| t.elapsed() >= std::time::Duration::from_millis(200))
        {
            v.redraw();
        }
    }
}

/// Says whether page keys are read for the foreground `table` result (the status line then
/// names them), and draws it again if it is showing.
pub fn table_keys(on: bool) {
    if let Some(view) = foreground() {
        let mut v = lock(&view);
        v.keys = on;
        v.redraw();
    }
}

/// Applies a key pressed while a `table` result shows, Flink's table-view keys: `N` next
/// page, `P` previous page, `L` last page (which then follows the result as it grows), `G`
/// then a page number and Enter to go to that page (Esc cancels), `Q` quit. Other keys are
/// ignored.
pub fn table_key(key: u8) -> TableKey {
    let Some(view) = foreground() else {
        return TableKey::Handled;
    };
    let mut v = lock(&view);
    let pages = v.pages();
    let at = v.page.unwrap_or(pages - 1).min(pages - 1);
    if let Some(typed) = v.typing.as_mut() {
        match key {
            b'0'..=b'9' if typed.len() < 9 => typed.push(key as char),
            0x7f | 0x08 => {
                typed.pop();
            }
            b'\r' | b'\n' => {
                if let Ok(n) = typed.parse::<usize>()
                    && n >= 1
                {
                    v.page = Some((n - 1).min(pages - 1));
                }
                v.typing = None;
            }
            0x1b => v.typing = None,
            _ => return TableKey::Handled,
        }
    } else {
        match key.to_ascii_lowercase() {
            b'q' => return TableKey::Quit,
            b'n' => v.page = if at + 1 >= pages { None } else { Some(at + 1) },
            b'p' => v.page = Some(at.saturating_sub(1)),
            b'l' => v.page = None,
            b'g' => v.typing = Some(String::new()),
            _ => return TableKey::Handled,
        }
    }
    v.redraw();
    TableKey::Handled
}

impl TableView {
    /// Rows a page holds: the terminal's height less the table's borders, header, status
    /// line and the cursor's line (at least 1; every row when the height is unknown, or
    /// once the query has ended).
    fn room(&self) -> usize {
        if self.whole {
            return usize::MAX;
        }
        console::Term::stdout()
            .size_checked()
            .map_or(usize::MAX, |(rows, _)| {
                (rows as usize).saturating_sub(6).max(1)
            })
    }

    /// Pages of the current result (at least 1).
    fn pages(&self) -> usize {
        self.current.len().div_ceil(self.room()).max(1)
    }

    /// Draws the view again at once, if it was drawn before (a key's effect).
    fn redraw(&mut self) {
        if self.drawn > 0 {
            let mut w = std::io::stdout().lock();
            // A terminal that fails a write is gone; the query's own output says so.
            let _ = self.draw(&mut w);
            let _ = w.flush();
        }
    }

    /// Draws the page shown over the one drawn before, then a status line: the page, and
    /// the keys while they are read.
    fn draw(&mut self, w: &mut dyn Write) -> Result<()> {
        if self.drawn > 0 {
            // Up to the first line drawn before, and clear from there down.
            write!(w, "\x1b[{}A\r\x1b[J", self.drawn)?;
        }
        let room = self.room();
        let pages = self.pages();
        let at = self.page.unwrap_or(pages - 1).min(pages - 1);
        let first = at.saturating_mul(room).min(self.current.len());
        let shown: Vec<&Vec<String>> = self
            .current
            .range(first..self.current.len().min(first.saturating_add(room)))
            .collect();
        let widths: Vec<usize> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                shown
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([n.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut lines = vec![
            TerminalSink::border(&widths),
            TerminalSink::line(&self.names, &widths),
            TerminalSink::border(&widths),
        ];
        lines.extend(shown.iter().map(|r| TerminalSink::line(r, &widths)));
        lines.push(TerminalSink::border(&widths));
        let cols = console::Term::stdout()
            .size_checked()
            .map(|(_, c)| c as usize)
            .filter(|c| *c > 0);
        let mut status = match self.page {
            None if pages > 1 => format!("page {pages} of {pages} (last)"),
            _ => format!("page {} of {pages}", at + 1),
        };
        if let Some(typed) = &self.typing {
            status.push_str(&format!(" · go to page: {typed}_ (Enter, Esc)"));
        } else if self.keys {
            let keys = " · N next · P previous · L last · G go to · Q quit";
            let fits = cols.is_none_or(|c| status.chars().count() + keys.chars().count() < c);
            status.push_str(if fits { keys } else { " · N P L G Q" });
        }
        if pages > 1 || self.keys {
            lines.push(status);
        }
        for l in &lines {
            writeln!(w, "{l}")?;
        }
        // A line wider than the terminal takes more than one of its lines: the next
        // drawing goes up over all of them.
        self.drawn = lines
            .iter()
            .map(|l| match cols {
                Some(c) => l.chars().count().div_ceil(c).max(1),
                None => 1,
            })
            .sum();
        self.drawn_at = Some(std::time::Instant::now());
        self.dirty = false;
        Ok(())
    }
}

/// A `table` result whose query failed (its sink is dropped without [`Sink::finish`]) stops
/// being the one the page keys turn, and its last page is drawn again without the keys, so
/// the screen does not offer keys that no longer do anything.
impl Drop for TerminalSink {
    fn drop(&mut self) {
        if !self.leave_foreground() {
            return;
        }
        let mut view = lock(&self.view);
        view.keys = false;
        view.typing = None;
        view.redraw();
    }
}

impl Sink for TerminalSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // In a table, a TIMESTAMP_LTZ shows the session zone's wall clock (Flink's
        // sql-client); CSV and JSON keep the instant (`…Z`), for programs.
        let localized;
        let batch = if self.format == OutputFormat::Table {
            localized = self.display.localize(batch)?;
            &localized
        } else {
            batch
        };
        if (self.format, self.display.mode) == (OutputFormat::Table, ResultMode::Table) {
            // The view's lock first, then stdout's (see `apply`).
            self.apply(batch)?;
            self.first = false;
            self.rows += batch.num_rows();
            return Ok(());
        }
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        match (self.format, self.display.mode) {
            (OutputFormat::Table, ResultMode::Changelog) => write_print_rows(&mut w, batch, "")?,
            (OutputFormat::Table, ResultMode::Tableau) => {
                let room = match self.display.max_rows {
                    0 => batch.num_rows(),
                    max => max.saturating_sub(self.shown).min(batch.num_rows()),
                };
                if room > 0 {
                    let rows = batch.slice(0, room);
                    self.table_rows(&crate::changelog::for_display(&rows)?, &mut w)?;
                    self.shown += room;
                }
            }
            // One JSON array over the whole run (rows come in chunks as windows fire or
            // results change): `[` before the first row, `,` between rows, `]` at the end.
            (OutputFormat::Json, _) => {
                let mut lines = Vec::new();
                let mut wr = crate::format::encode::ndjson_writer(&mut lines);
                wr.write(&crate::format::encode::json_map_keys(
                    &crate::changelog::for_display(batch)?,
                )?)?;
                wr.finish()?;
                for (i, line) in lines
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    let sep: &[u8] = if self.rows == 0 && i == 0 {
                        b"[\n"
                    } else {
                        b",\n"
                    };
                    w.write_all(sep)?;
                    w.write_all(line)?;
                }
            }
            _ => write_results(
                &mut w,
                self.format,
                &[crate::changelog::for_display(batch)?],
                self.first,
            )?,
        }
        w.flush()?;
        self.first = false;
        self.rows += batch.num_rows();
        Ok(())
    }

    fn accepts_changes(&self) -> bool {
        true
    }

    /// What was printed stays printed: the table or the JSON array is closed as at the end.
    fn discard(&mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        let table_mode =
            self.format == OutputFormat::Table && self.display.mode == ResultMode::Table;
        if table_mode {
            // The page keys turn this result no more.
            self.leave_foreground();
            let mut view = lock(&self.view);
            view.keys = false;
            view.typing = None;
            // It cannot be paged any more: all of it stays on the screen.
            view.whole = true;
            if !view.names.is_empty() {
                let mut w = std::io::stdout().lock();
                view.draw(&mut w)?;
                w.flush()?;
                if !self.quiet {
                    eprintln!(
                        "{} row(s), {} change(s){}",
                        view.current.len(),
                        self.rows,
                        self.took()
                    );
                }
                return Ok(());
            }
        }
        if let Some(widths) = &self.widths {
            let mut w = std::io::stdout().lock();
            writeln!(w, "{}", Self::border(widths))?;
            w.flush()?;
        }
        if self.format == OutputFormat::Json {
            let mut w = std::io::stdout().lock();
            w.write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
            w.flush()?;
        }
        if !self.quiet && self.format == OutputFormat::Table {
            let cut = if self.shown < self.rows && self.display.max_rows > 0 {
                format!(
                    " (the first {} shown; \\maxrows 0 shows all)",
                    self.display.max_rows
                )
            } else {
                String::new()
            };
            eprintln!("{} row(s){}{cut}", self.rows, self.took());
        }
        Ok(())
    }
}
