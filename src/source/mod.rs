//! Sources: where rows enter a standing query.
//!
//! A [`Source`] runs on a blocking thread of its own and pushes Arrow batches of its table's
//! *physical* columns (those the connector supplies) into a [`SourceContext`]. The context
//! owns everything that is the same for every connector, in one place:
//!
//! 1. computed columns (`c AS expr`) are evaluated, giving the table's full schema;
//! 2. the watermark (`WATERMARK FOR c AS expr`) is advanced — see [`watermark`];
//! 3. the batch goes down the bounded channel, blocking when the query is behind
//!    (backpressure reaches the connector here).
//!
//! When `run` returns because the input is exhausted, the context sends a final
//! `Watermark(i64::MAX)` and `End`; when it returns because the job was stopped, only `End`.

pub mod batch;
pub mod datagen;
pub mod filesystem;
pub mod kafka;
pub mod memory;
pub mod nexmark;
pub mod parquet;
pub mod stdin;
pub mod watermark;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::mpsc::Sender;

use crate::checkpoint::Checkpointer;
use crate::error::{Result, WeirError};
use crate::job::{JobMetrics, Message, OperatorMetrics};
use watermark::SourceStage;

pub trait Source: Send {
    /// Produces batches until the input ends, `ctx.emit` returns false, or an error.
    /// Between batches it calls [`SourceContext::checkpoint`], and it ends with
    /// [`SourceContext::finish`].
    fn run(&mut self, ctx: &mut SourceContext) -> Result<()>;

    /// True when the source can save its position and replay from it (see
    /// [`Source::snapshot`]); a job with checkpointing refuses to start otherwise.
    fn checkpointable(&self) -> bool {
        false
    }

    /// The source's position after the last batch it emitted, as Arrow batches, for a
    /// checkpoint.
    fn snapshot(&self) -> Result<Vec<RecordBatch>> {
        Ok(vec![])
    }

    /// Moves the source to a position taken by [`Source::snapshot`], before `run`.
    fn restore(&mut self, _state: Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// The source as `n` subtasks that together read exactly what it reads, each a part
    /// (Flink's source splits), for a job of parallelism `n`; `None` when it reads on one
    /// task. A split source's checkpoints hold one state per subtask, and after a restore
    /// at another parallelism each new subtask's [`Source::restore`] gets the states of
    /// every old one, to take its part of what is left.
    fn split(&self, _n: usize) -> Option<Vec<Box<dyn Source>>> {
        None
    }

    /// True when each subtask of [`Source::split`] gives its rows in the order of event
    /// time whenever the whole stream does (the Nexmark generator's every `n`-th event):
    /// then no row is late at parallelism `n` that is not at 1, and a table with a
    /// watermark may be split. False (a file cut into byte ranges) keeps a table with a
    /// watermark on one task, where which rows are late is decided as at parallelism 1.
    fn split_keeps_time_order(&self) -> bool {
        false
    }

    /// What the source is, for errors (`nexmark`, `kafka`).
    fn kind(&self) -> &'static str;

    /// What the source reads (`filesystem '/data/in'`, `kafka topics 'a,b'`),
    /// kept in a checkpoint's manifest with the source's task: a restore into a source that
    /// reads something else is refused, since the saved position means nothing there.
    fn origin(&self) -> String {
        self.kind().to_string()
    }
}

/// The state source task `task` restores: its own; or, restored at another parallelism,
/// the states of every subtask the source ran as (`<base>.<k>`), each one's source batches
/// in turn, then one watermark state — the one furthest behind (no subtask is moved past
/// what it had sent), finished only when every one was.
fn restored_state(
    r: &crate::checkpoint::Restored,
    task: &str,
    rescaled: bool,
) -> Option<Result<Vec<RecordBatch>>> {
    // Its own state when it has one and the job's parallelism is the same; else (also
    // when the source ran as another number of subtasks than the job's keyed operators
    // show, as in a checkpoint of a version that did not split it) every subtask's.
    if !rescaled && let Some(own) = r.take(task) {
        return Some(Ok(own));
    }
    let base = match task.rsplit_once('.') {
        Some((b, k)) if k.parse::<usize>().is_ok() => b,
        _ => task,
    };
    let states = r.states_of(base);
    if states.len() <= 1 {
        return states.into_iter().next().map(Ok);
    }
    let mut batches = vec![];
    let mut stages = vec![];
    for mut s in states {
        match s.pop() {
            Some(stage) => stages.push(stage),
            None => {
                return Some(Err(WeirError::user(format!(
                    "the checkpoint's state of a subtask of {base} is empty"
                ))));
            }
        }
        batches.extend(s);
    }
    let meta = |b: &RecordBatch, k: &str| b.schema_ref().metadata().get(k).cloned();
    let all_finished = stages
        .iter()
        .all(|b| meta(b, "finished").as_deref() == Some("true"));
    let behind = stages.into_iter().min_by_key(|b| {
        meta(b, "emitted")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(i64::MIN)
    })?;
    let mut meta_map = behind.schema_ref().metadata().clone();
    meta_map.insert("finished".into(), all_finished.to_string());
    let schema = Arc::new(behind.schema_ref().as_ref().clone().with_metadata(meta_map));
    Some(
        RecordBatch::try_new(schema, behind.columns().to_vec())
            .map(|stage| {
                batches.push(stage);
                batches
            })
            .map_err(WeirError::from),
    )
}

pub struct SourceContext {
    tx: Sender<Message>,
    /// The job's checkpoints and this source's task id, when it checkpoints.
    checkpoint: Option<(Arc<Checkpointer>, String)>,
    /// The id of the last barrier sent.
    last_barrier: u64,
    stop: Arc<AtomicBool>,
    stage: SourceStage,
    metrics: Arc<OperatorMetrics>,
    job: Arc<JobMetrics>,
    closed: bool,
    /// Rows emitted, and after how many to wait for the stop (see
    /// [`crate::checkpoint::CheckpointConfig::pause_sources_after`]).
    rows: u64,
    pause_after: Option<u64>,
    /// The job's dead-letter table this source's bad records go to
    /// (`'dead-letter.sink'`), and those not sent yet.
    dead_letter: Option<usize>,
    letters: crate::sink::dead_letter::Letters,
}

/// The byte order mark some editors put at the start of a UTF-8 file; skipped there.
pub(crate) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Line `line_no` (from 1) of a text input as read, without its line end (`\n` or
/// `\r\n`) and, on the first line, without a UTF-8 byte order mark.
pub fn line_body(raw: &[u8], line_no: usize) -> &[u8] {
    let l = raw.strip_suffix(b"\n").unwrap_or(raw);
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if line_no == 1 {
        l.strip_prefix(UTF8_BOM).unwrap_or(l)
    } else {
        l
    }
}

/// Bad records a source holds before it sends them on anyway (they also go with its next
/// batch or barrier).
const LETTERS_PER_MESSAGE: usize = 4096;

impl SourceContext {
    pub fn new(
        tx: Sender<Message>,
        stop: Arc<AtomicBool>,
        stage: SourceStage,
        metrics: Arc<OperatorMetrics>,
        job: Arc<JobMetrics>,
    ) -> Self {
        SourceContext {
            tx,
            checkpoint: None,
            last_barrier: 0,
            stop,
            stage,
            metrics,
            job,
            closed: false,
            rows: 0,
            pause_after: None,
            dead_letter: None,
            letters: Default::default(),
        }
    }

    /// Sends this source's bad records to the job's dead-letter table `table` (see
    /// [`crate::sink::dead_letter`]) instead of only counting them.
    pub fn with_dead_letters(&mut self, table: usize) {
        self.dead_letter = Some(table);
    }

    /// Makes the source take part in the job's checkpoints as task `task`; the restored
    /// state, if any, is put back into `source` and the watermark generator. Returns true
    /// when the restored source had already read its whole input.
    pub fn attach_checkpoints(
        &mut self,
        checkpointer: Arc<Checkpointer>,
        task: String,
        source: &mut dyn Source,
    ) -> Result<bool> {
        let mut finished = false;
        if let Some(mut state) = checkpointer
            .restored()
            .and_then(|r| restored_state(r, &task, checkpointer.is_rescaled()))
            .transpose()?
        {
            let saved = state.clone();
            let stage = state.pop().ok_or_else(|| {
                WeirError::user(format!("the checkpoint's state of {task} is empty"))
            })?;
            finished = self.stage.restore(&stage)?;
            source.restore(state)?;
            self.job.observe_watermark(self.stage_emitted());
            if finished {
                // It stays finished in every checkpoint this run takes.
                checkpointer.task_finished(&task, Some(saved));
            }
        }
        self.last_barrier = checkpointer.start_id();
        self.pause_after = checkpointer.config.pause_sources_after;
        self.checkpoint = Some((checkpointer, task));
        Ok(finished)
    }

    /// True when the job takes checkpoints.
    pub fn checkpointing(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// True when a checkpoint was requested and this source has not sent its barrier yet.
    pub fn checkpoint_due(&self) -> bool {
        self.checkpoint
            .as_ref()
            .is_some_and(|(cp, _)| cp.requested() > self.last_barrier)
    }

    /// The newest checkpoint id requested.
    pub fn checkpoint_requested(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |(cp, _)| cp.requested())
    }

    /// The id of the newest completed checkpoint of the job, if any.
    pub fn last_completed(&self) -> Option<u64> {
        self.checkpoint.as_ref()?.0.last().map(|s| s.id)
    }

    fn stage_emitted(&self) -> i64 {
        self.stage.emitted()
    }

    /// Sends the barriers of the checkpoints requested since the last one, after saving
    /// `source`'s position and the watermark generator's state for each. Sources call it
    /// between batches, when everything they have read has been emitted.
    pub fn checkpoint(&mut self, source: &dyn Source) -> Result<()> {
        // Bad records read before the position saved belong before the barrier.
        self.send_letters()?;
        let Some((cp, task)) = &self.checkpoint else {
            return Ok(());
        };
        let requested = cp.requested();
        if requested <= self.last_barrier {
            return Ok(());
        }
        let mut state = source.snapshot()?;
        state.push(self.stage.snapshot(false)?);
        let (cp, task) = (cp.clone(), task.clone());
        // Every id in between gets its barrier, so that all inputs of a join or union see
        // the same ids.
        for id in self.last_barrier + 1..=requested {
            cp.store(id, &task, Some(state.clone()));
            self.send(Message::Barrier(id));
        }
        self.last_barrier = requested;
        Ok(())
    }

    /// The job's metrics (a source that measures more, such as Kafka's consumer lag, keeps
    /// it there).
    pub fn job_metrics(&self) -> Arc<JobMetrics> {
        self.job.clone()
    }

    /// True when the job was asked to stop or nobody reads the output any more.
    pub fn should_stop(&self) -> bool {
        self.closed || self.stop.load(Ordering::Relaxed)
    }

    /// Sends one batch of physical columns downstream (blocking while the channel is
    /// full). Returns false when the source should stop producing.
    pub fn emit(&mut self, batch: RecordBatch) -> Result<bool> {
        if batch.num_rows() == 0 {
            return Ok(!self.should_stop());
        }
        self.send_letters()?;
        let rows = batch.num_rows();
        let messages = self.stage.apply(batch)?;
        self.metrics.add_in(rows);
        self.metrics.add_out(rows);
        // What follows was caused by this batch (see `Message::Origin`).
        self.send(Message::Origin(std::time::Instant::now()));
        for m in messages {
            if let Message::Watermark(w) = m {
                self.job.observe_watermark(w);
            }
            self.send(m);
        }
        self.rows += rows as u64;
        if self.pause_after.is_some_and(|n| self.rows >= n) {
            while !self.should_stop() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        Ok(!self.should_stop())
    }

    /// Sends `m`, blocking while the channel is full (that time counts as backpressure).
    fn send(&mut self, m: Message) {
        use tokio::sync::mpsc::error::TrySendError;
        if self.closed {
            return;
        }
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Closed(_)) => self.closed = true,
            Err(TrySendError::Full(m)) => {
                let from = std::time::Instant::now();
                if self.tx.blocking_send(m).is_err() {
                    self.closed = true;
                }
                self.metrics.add_backpressured(from.elapsed());
            }
        }
    }

    /// Declares that the source reads `n` partitions, each with its own watermark; the
    /// source's watermark is their minimum (see [`SourceContext::emit_from`]).
    pub fn set_partitions(&mut self, n: usize) {
        self.stage.set_partitions(n);
    }

    /// Adds a partition after the start (a group rebalance assigned it); returns its index.
    pub fn add_partition(&mut self) -> usize {
        self.stage.add_partition()
    }

    /// Emits a batch of one partition's rows.
    pub fn emit_from(&mut self, partition: usize, batch: RecordBatch) -> Result<bool> {
        self.stage.set_partition(partition);
        self.emit(batch)
    }

    /// A partition reached its end, went idle or was taken away: it stops holding the
    /// watermark back until its next row.
    pub fn partition_ended(&mut self, partition: usize) {
        if let Some(w) = self.stage.partition_ended(partition) {
            self.job.observe_watermark(w);
            self.send(Message::Origin(std::time::Instant::now()));
            self.send(Message::Watermark(w));
        }
    }

    /// While held, batches go out without watermarks (see `FileSource`); releasing the hold
    /// starts the watermark afresh from the rows that follow.
    pub fn hold_watermark(&mut self, hold: bool) {
        self.stage.hold(hold);
    }

    /// Counts a record the source could not read and skipped (`*.ignore-parse-errors`,
    /// `'dead-letter.sink'`); with a dead-letter table, the record (`raw`, as read), the
    /// reason and its place go there.
    pub fn bad_record(&mut self, raw: &[u8], error: &str, place: String) -> Result<()> {
        self.job
            .bad_records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .bad_records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.dead_letter.is_some() {
            self.letters.push(raw, error, place);
            if self.letters.len() >= LETTERS_PER_MESSAGE {
                self.send_letters()?;
            }
        }
        Ok(())
    }

    /// `raw` (one record, without its line end) as text for `decoder`: itself when it is
    /// UTF-8. Otherwise it is a bad record — counted and skipped (with a dead-letter
    /// table, sent there), or the error when bad records fail the query — and an empty
    /// line takes its place, which gives no row but keeps the numbering. `place` names it.
    pub fn text_line(
        &mut self,
        decoder: &crate::format::Decoder,
        raw: &[u8],
        place: &dyn Fn() -> String,
    ) -> Result<String> {
        match std::str::from_utf8(raw) {
            Ok(t) => Ok(t.to_string()),
            Err(e) => {
                self.bad_input(decoder, raw, &format!("invalid UTF-8 ({e})"), place())?;
                Ok(String::new())
            }
        }
    }

    /// A record `decoder` cannot take for `reason` (`raw` as read, `place` where): the
    /// error when bad records fail the query, else counted and skipped (with a dead-letter
    /// table, sent there now).
    pub fn bad_input(
        &mut self,
        decoder: &crate::format::Decoder,
        raw: &[u8],
        reason: &str,
        place: String,
    ) -> Result<()> {
        if !decoder.skips_bad_records() {
            return Err(decoder.malformed(reason, &place));
        }
        self.bad_record(raw, reason, place)?;
        self.send_letters()
    }

    /// Counts (and with a dead-letter table, sends there) the records of `lines` that
    /// `decoded` skipped; `place(i)` names line `i`.
    pub fn bad_lines(
        &mut self,
        decoded: &crate::format::decode::Decoded,
        lines: &[String],
        place: &dyn Fn(usize) -> String,
    ) -> Result<()> {
        for (i, reason) in &decoded.bad {
            let raw = lines.get(*i).map_or(&b""[..], |l| l.as_bytes());
            self.bad_record(raw, reason, place(*i))?;
        }
        // Sent now, not with the next good row or barrier: a source may go on for long
        // with neither (stdin, Kafka between checkpoints).
        self.send_letters()
    }

    /// Sends the bad records held (see [`SourceContext::bad_record`]) downstream, in their
    /// place before the next batch or barrier.
    fn send_letters(&mut self) -> Result<()> {
        if let Some(table) = self.dead_letter
            && !self.letters.is_empty()
        {
            let b = self.letters.take()?;
            self.send(Message::DeadLetters(table, b));
        }
        Ok(())
    }

    /// Ends the stream: a final watermark when the input was exhausted, then `End`. With
    /// checkpoints, a savepoint requested by a stop gets its barrier first, and the source's
    /// final position is recorded for the checkpoints that follow.
    pub fn finish(&mut self, source: &dyn Source, exhausted: bool) -> Result<()> {
        self.checkpoint(source)?;
        let exhausted = exhausted && !self.stop.load(Ordering::Relaxed);
        if let Some((cp, task)) = &self.checkpoint {
            let mut state = source.snapshot()?;
            state.push(self.stage.snapshot(exhausted)?);
            cp.task_finished(task, Some(state));
        }
        self.end(exhausted);
        Ok(())
    }

    /// Ends the stream of a source whose input was read to its end before the restored
    /// checkpoint: the final watermark and `End`, nothing else.
    pub fn end(&mut self, exhausted: bool) {
        if exhausted {
            self.job.observe_watermark(i64::MAX);
            self.send(Message::Origin(std::time::Instant::now()));
            self.send(Message::Watermark(i64::MAX));
        }
        self.send(Message::End);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CheckpointConfig, Checkpointer};

    /// A stop right after the start asks for a savepoint before a source is up: the source
    /// must still send that savepoint's barrier before its end (a source that skipped it
    /// made a join take another input's stop for the end of its input).
    #[test]
    fn a_source_up_after_a_savepoint_request_still_sends_its_barrier() {
        let dir = tempfile::tempdir().expect("tmp");
        let cp = Checkpointer::open(CheckpointConfig {
            job: "late".into(),
            interval: Some(std::time::Duration::from_secs(1)),
            dir: dir.path().to_path_buf(),
            exactly_once: true,
            retained: 1,
            tolerable_failures: 0,
            restore_path: None,
            from_scratch: false,
            pause_sources_after: None,
        })
        .expect("checkpointer");
        let savepoint = cp.stop_with_savepoint();
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let job = Arc::new(JobMetrics::default());
        let mut ctx = SourceContext::new(
            tx,
            Arc::new(AtomicBool::new(true)),
            SourceStage::new(None, None),
            job.register("source"),
            job,
        );
        let mut source = memory::MemorySource::new(Arc::new(vec![]));
        let finished = ctx
            .attach_checkpoints(cp, "source-0".into(), &mut source)
            .expect("attach");
        assert!(!finished);
        ctx.finish(&source, false).expect("finish");
        assert!(matches!(rx.try_recv(), Ok(Message::Barrier(id)) if id == savepoint));
        assert!(matches!(rx.try_recv(), Ok(Message::End)));
    }
}
