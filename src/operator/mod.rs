//! Operators: what a standing query does to batches between its sources and its sink.
//!
//! An [`Operator`] is synchronous and owns its state; the async plumbing (channels, the run
//! loop, barrier alignment, metrics, checkpoints) lives once, in [`run_task`], for every
//! operator — single-input ones, joins (two inputs) and unions (any number). A stateless
//! operator turns each batch into at most one batch; a stateful one (windows) keeps state
//! across batches and emits rows when a watermark passes. Consecutive single-input
//! operators are fused into one task by [`Chain`], so a filter and a projection cost one
//! channel hop, not two.

pub mod arrival;
pub mod exchange;
pub mod expand;
pub mod filter;
pub mod group;
pub(crate) mod group_columns;
pub mod join;
pub mod lag;
pub mod limit;
pub mod minmax;
pub mod normalize;
pub mod over;
pub mod proctime;
pub mod project;
pub mod rank;
pub mod session;
pub mod sort;
pub mod temporal;
pub mod topn;
pub mod ttl;
pub mod union;
pub mod unnest;
pub mod window;

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_plan::PhysicalExpr;
use tokio::sync::mpsc::Receiver;

use crate::changelog::ChangelogMode;
use crate::checkpoint::Checkpointer;
use crate::error::{Result, WeirError};
use crate::job::{Message, OperatorMetrics, TaskMetrics};

/// How an operator's input reaches it when the job runs with a parallelism above 1
/// (`'parallelism.default'`), as Flink's partitioners route records between subtasks.
pub enum Distribution {
    /// Row by row, nothing kept across rows: the operator runs beside its input, as many
    /// subtasks as it (Flink's `forward`).
    Forward,
    /// Every row must meet one instance (a global aggregate, a LIMIT, a clock of its own):
    /// one subtask reads all the input's subtasks (Flink's `global`).
    Single,
    /// Keyed state: each input's rows go to the subtask owning their key's key group (one
    /// key list per input, over that input's schema; Flink's `hash`). See
    /// [`exchange`].
    Hash(Vec<Vec<Arc<dyn PhysicalExpr>>>),
}

/// One operator of a job. The run loop ([`run_task`]) calls, in order: `restore` (with a
/// checkpoint), `open`, then per message `process_input_batch` / `input_watermark` /
/// `process_watermark` / `end_input`, at each barrier `prepare_snapshot` then `snapshot`,
/// `finish` when every input has ended, and — for an operator that
/// [`Operator::awaits_final_checkpoint`] — `notify_checkpoint_complete` as checkpoints
/// complete and `close` once the job's sink has ended.
pub trait Operator: Send {
    /// A short name for metrics and EXPLAIN, such as `filter` or `project`.
    fn name(&self) -> String;

    /// Gives the operator the job's metrics (late rows are counted there).
    fn attach(&mut self, _metrics: &TaskMetrics) {}

    /// Handles one batch, pushing whatever it produces to `out`.
    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()>;

    /// Handles one batch of input `input` (0 for a single-input operator; a join's left
    /// input is 0, its right 1; a union's in the order of its branches).
    fn process_input_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        self.process_batch(batch, out)
    }

    /// Notes the watermark input `input` sent, before the run loop merges the inputs'
    /// watermarks (their minimum goes to [`Operator::process_watermark`]).
    /// Whatever it pushes to `out` goes downstream before the merged watermark (a statement
    /// set's union passes each INSERT's watermark on to its sink this way).
    fn input_watermark(
        &mut self,
        _input: usize,
        _watermark: i64,
        _out: &mut Vec<Message>,
    ) -> Result<()> {
        Ok(())
    }

    /// Input `input` has ended while others may go on; [`Operator::finish`] follows when
    /// every input has ended. Rows it releases (a lookup join's left rows that waited for
    /// its table) go to `out`.
    fn end_input(&mut self, _input: usize, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }

    /// Handles a watermark; stateless operators pass it on.
    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        out.push(Message::Watermark(watermark));
        Ok(())
    }

    /// Called once when every input has ended, before `End` goes downstream.
    fn finish(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }

    /// The operator's state as Arrow record batches, for a checkpoint (None: it keeps none).
    /// Taking a snapshot does not change what the operator will emit.
    fn snapshot(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(None)
    }

    /// Called once by the run loop before the first message, after the restored state is
    /// back ([`Operator::restore`]), with the job's checkpoints when it takes them: where
    /// an operator that writes outside the sink (a window's `'late-data.sink'`) opens that
    /// output. As Flink's `open()` after `initializeState()`.
    fn open(&mut self, _checkpointer: Option<&Arc<Checkpointer>>) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `checkpoint`'s barrier has reached the operator; its
    /// [`Operator::snapshot`] follows. An operator with output of its own prepares it for
    /// the commit here (Flink's `prepareSnapshotPreBarrier`).
    fn prepare_snapshot(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// Every checkpoint up to `checkpoint` has completed: output prepared for them may
    /// become visible. The run loop calls it as it notices (Flink's
    /// `notifyCheckpointComplete`), and once more after the job's sink has ended when
    /// [`Operator::awaits_final_checkpoint`] says so.
    fn notify_checkpoint_complete(&mut self, _checkpoint: u64) -> Result<()> {
        Ok(())
    }

    /// True when the operator has output of its own to commit with the job's final
    /// checkpoint (or a stop's savepoint): its task then outlives its input until the sink
    /// has ended, and learns which checkpoint completed last.
    fn awaits_final_checkpoint(&self) -> bool {
        false
    }

    /// The job's sink has ended; `completed` is the last checkpoint that completed. Output
    /// prepared for later ones is thrown away (a restart writes it again).
    fn close(&mut self, _completed: u64) -> Result<()> {
        Ok(())
    }

    /// Puts back state taken by [`Operator::snapshot`] of an operator of the same plan.
    /// After a change of parallelism it gets the batches of every subtask that saved them,
    /// each keyed batch cut to the keys this subtask now owns ([`Operator::state_keys`]),
    /// and so must merge several batches of one kind.
    fn restore(&mut self, _state: Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// For one batch of this operator's [`Operator::snapshot`]: the key of each row, as
    /// the hash exchange in front of it evaluates it (same columns, same types), so a
    /// checkpoint taken at one parallelism restores at another, each subtask taking the
    /// rows of its key groups. `None`: the batch is not split by key (a watermark, the
    /// rows still to come of a stream's progress) and every subtask gets it whole. An
    /// operator whose [`Operator::distribution`] is by hash must say; the default refuses.
    fn state_keys(&self, _batch: &RecordBatch) -> Result<Option<Vec<ArrayRef>>> {
        match self.distribution() {
            Distribution::Hash(_) => Err(WeirError::user(format!(
                "the state of '{}' cannot be split between a different number of subtasks",
                self.name()
            ))),
            _ => Ok(None),
        }
    }

    /// What the operator's saved state depends on, to tell at restore whether a checkpoint
    /// fits a changed query: its name, and for aggregates the calls and key types.
    fn signature(&self) -> String {
        self.name()
    }

    /// False for an operator that keeps state it cannot yet save in a checkpoint; a job
    /// with checkpointing refuses to start with one.
    fn checkpointable(&self) -> bool {
        true
    }

    /// True when the operator's output is a changelog whatever its input (see
    /// [`crate::changelog`]).
    fn emits_changes(&self) -> bool {
        false
    }

    /// The row kinds the operator's output may hold, given its inputs' (one per input):
    /// Flink's changelog mode, as `EXPLAIN CHANGELOG_MODE` shows it. By default every kind
    /// when it [emits changes](Operator::emits_changes), else its inputs' kinds (a
    /// stateless operator passes each row's kind on).
    fn changelog_mode(&self, inputs: &[ChangelogMode]) -> ChangelogMode {
        if self.emits_changes() {
            ChangelogMode::ALL
        } else {
            ChangelogMode::merged(inputs)
        }
    }

    /// How the operator's input must be split among its parallel subtasks. The default,
    /// [`Distribution::Single`], is always correct; stateless operators say `Forward` and
    /// keyed ones the keys their state is kept by.
    fn distribution(&self) -> Distribution {
        Distribution::Single
    }

    /// True when the operator's output, for the rows of one key, does not depend on the
    /// order they arrive in from its input channels (counts, sums, extremes, joins): then
    /// its input may come from a source split into subtasks (see
    /// [`crate::source::Source::split`]), whose rows of one key interleave at random. False
    /// (the default) where ties go by arrival — a Top-N or deduplication, `LISTAGG`,
    /// `FIRST_VALUE`, an OVER frame of rows.
    fn order_insensitive(&self) -> bool {
        false
    }

    /// True when the last step left output still to produce (a watermark that completes
    /// more windows than one chunk holds): the run loop sends what came so far, then
    /// calls [`Operator::resume`] until this is false, before anything else — so the
    /// output of one message is never all held at once, and no barrier or snapshot comes
    /// between its chunks.
    fn has_more(&self) -> bool {
        false
    }

    /// Produces the next chunk of the output [`Operator::has_more`] announced.
    fn resume(&mut self, _out: &mut Vec<Message>) -> Result<()> {
        Ok(())
    }

    /// True once the operator needs no more input (a satisfied LIMIT).
    fn is_done(&self) -> bool {
        false
    }

    /// The state the operator keeps now, for metrics: `(rows, bytes)` — rows in its
    /// own terms (groups, kept join rows), bytes as Arrow and DataFusion account their
    /// buffers. None for an operator that keeps no state or does not measure it. Called
    /// a few times a second, so it must not walk every row.
    fn state_size(&self) -> Option<(u64, u64)> {
        None
    }

    /// Dispatches one message.
    fn handle(&mut self, msg: Message, out: &mut Vec<Message>) -> Result<()> {
        match msg {
            Message::Batch(b) => self.process_batch(b, out),
            Message::Watermark(w) => self.process_watermark(w, out),
            Message::Barrier(n) => {
                out.push(Message::Barrier(n));
                Ok(())
            }
            Message::End => {
                self.finish(out)?;
                out.push(Message::End);
                Ok(())
            }
            Message::Origin(t) => {
                out.push(Message::Origin(t));
                Ok(())
            }
            m @ Message::DeadLetters(..) => {
                out.push(m);
                Ok(())
            }
        }
    }
}

/// A checkpoint state of a few named numbers (a watermark, a count): one row, one Int64
/// column each.
pub(crate) fn numbers_state(values: &[(&str, i64)]) -> Result<Option<Vec<RecordBatch>>> {
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let schema = Schema::new(
        values
            .iter()
            .map(|(n, _)| Field::new(*n, DataType::Int64, false))
            .collect::<Vec<_>>(),
    );
    let cols = values
        .iter()
        .map(|(_, v)| Arc::new(Int64Array::from(vec![*v])) as _)
        .collect();
    Ok(Some(vec![RecordBatch::try_new(Arc::new(schema), cols)?]))
}

/// The column types of `schema`, comma-separated: the part of an operator's
/// [`Operator::signature`] that says which rows its saved state (Arrow's row format, which
/// only the same types decode) holds.
pub(crate) fn column_types(schema: &datafusion::arrow::datatypes::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The key columns of saved state whose keys are kept in Arrow's row format: column
/// `column` of `batch` (Binary, rows of `conv`), back as arrays for
/// [`Operator::state_keys`]. Errors: no such Binary column.
pub(crate) fn keys_of_rows(
    conv: &datafusion::arrow::row::RowConverter,
    batch: &RecordBatch,
    column: &str,
) -> Result<Vec<ArrayRef>> {
    use datafusion::arrow::array::AsArray;
    let rows = batch
        .column_by_name(column)
        .and_then(|c| c.as_binary_opt::<i32>())
        .ok_or_else(|| {
            WeirError::user(format!(
                "the checkpoint's state has no column '{column}' of keys"
            ))
        })?;
    let parser = conv.parser();
    Ok(conv.convert_rows(rows.iter().flatten().map(|r| parser.parse(r)))?)
}

/// Reads the number `name` of a [`numbers_state`]; `what` names the operator in errors.
pub(crate) fn number_from(state: &[RecordBatch], name: &str, what: &str) -> Result<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    state
        .first()
        .and_then(|b| b.column_by_name(name))
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .filter(|c| c.len() == 1)
        .map(|c| c.value(0))
        .ok_or_else(|| {
            crate::error::WeirError::user(format!(
                "the checkpoint's state of '{what}' has no '{name}'"
            ))
        })
}

/// Several operators run in one task, each one's output feeding the next.
pub struct Chain {
    ops: Vec<Box<dyn Operator>>,
}

impl Chain {
    pub fn new(ops: Vec<Box<dyn Operator>>) -> Self {
        Chain { ops }
    }

    /// The operators of the chain, first to last.
    pub fn ops(&self) -> &[Box<dyn Operator>] {
        &self.ops
    }

    /// Saves every operator's state for checkpoint `id` (the barrier has reached the
    /// chain, so every message before it has passed all of them).
    fn save(&mut self, cp: &TaskCheckpoint, id: Option<u64>) -> Result<()> {
        for (op, task) in self.ops.iter_mut().zip(&cp.tasks) {
            if let Some(id) = id {
                op.prepare_snapshot(id)?;
            }
            let state = op.snapshot()?;
            match id {
                Some(id) => cp.checkpointer.store(id, task, state),
                None => cp.checkpointer.task_finished(task, state),
            }
        }
        Ok(())
    }

    /// Puts back the operators' states from the restored checkpoint.
    fn restore_from(&mut self, cp: &TaskCheckpoint) -> Result<()> {
        let Some(r) = cp.checkpointer.restored() else {
            return Ok(());
        };
        let rescaled = cp.checkpointer.is_rescaled();
        for (op, task) in self.ops.iter_mut().zip(&cp.tasks) {
            if !rescaled {
                if let Some(state) = r.take(task) {
                    op.restore(state)?;
                }
                continue;
            }
            // Taken at another parallelism: every old subtask's state of this operator,
            // keyed batches cut to the key groups this subtask owns.
            let base = match task.rsplit_once('.') {
                Some((base, _)) if cp.parallelism > 1 => base,
                _ => task.as_str(),
            };
            let saved = r.states_of(base);
            if saved.is_empty() {
                continue;
            }
            let mut state = vec![];
            for batch in saved.into_iter().flatten() {
                match op.state_keys(&batch)? {
                    Some(keys) if cp.parallelism > 1 => state.push(exchange::rows_of_subtask(
                        &batch,
                        &keys,
                        cp.subtask,
                        cp.parallelism,
                        cp.max_parallelism,
                    )?),
                    _ => state.push(batch),
                }
            }
            op.restore(state)?;
        }
        Ok(())
    }
}

/// A task's link to its job's checkpoints: the checkpointer and the stable ids of the
/// task's operators (one per operator of a chain).
#[derive(Clone)]
pub struct TaskCheckpoint {
    pub checkpointer: Arc<Checkpointer>,
    pub tasks: Vec<String>,
    /// This task's place among its stage's subtasks: `subtask` of `parallelism`, with the
    /// job's `pipeline.max-parallelism` key groups (for restoring a checkpoint taken at
    /// another parallelism).
    pub subtask: usize,
    pub parallelism: usize,
    pub max_parallelism: usize,
}

fn push_through(ops: &mut [Box<dyn Operator>], msg: Message, out: &mut Vec<Message>) -> Result<()> {
    let Some((first, rest)) = ops.split_first_mut() else {
        out.push(msg);
        return Ok(());
    };
    let mut tmp = Vec::with_capacity(2);
    first.handle(msg, &mut tmp)?;
    for m in tmp {
        push_through(rest, m, out)?;
    }
    Ok(())
}

impl Operator for Chain {
    fn name(&self) -> String {
        self.ops
            .iter()
            .map(|o| o.name())
            .collect::<Vec<_>>()
            .join(" → ")
    }

    fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<Message>) -> Result<()> {
        push_through(&mut self.ops, Message::Batch(batch), out)
    }

    fn process_watermark(&mut self, watermark: i64, out: &mut Vec<Message>) -> Result<()> {
        push_through(&mut self.ops, Message::Watermark(watermark), out)
    }

    fn handle(&mut self, msg: Message, out: &mut Vec<Message>) -> Result<()> {
        push_through(&mut self.ops, msg, out)
    }

    /// The chain's first operator takes the input (a join or a union has several); its
    /// output goes through the rest.
    fn process_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let Some((first, rest)) = self.ops.split_first_mut() else {
            out.push(Message::Batch(batch));
            return Ok(());
        };
        let mut tmp = Vec::with_capacity(2);
        first.process_input_batch(input, batch, &mut tmp)?;
        for m in tmp {
            push_through(rest, m, out)?;
        }
        Ok(())
    }

    fn input_watermark(
        &mut self,
        input: usize,
        watermark: i64,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let Some((first, rest)) = self.ops.split_first_mut() else {
            return Ok(());
        };
        let mut tmp = vec![];
        first.input_watermark(input, watermark, &mut tmp)?;
        for m in tmp {
            push_through(rest, m, out)?;
        }
        Ok(())
    }

    fn end_input(&mut self, input: usize, out: &mut Vec<Message>) -> Result<()> {
        let Some((first, rest)) = self.ops.split_first_mut() else {
            return Ok(());
        };
        let mut tmp = vec![];
        first.end_input(input, &mut tmp)?;
        for m in tmp {
            push_through(rest, m, out)?;
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.ops.iter().any(|o| o.is_done())
    }

    fn has_more(&self) -> bool {
        self.ops.iter().any(|o| o.has_more())
    }

    /// Resumes the last operator with more to produce (its output comes before anything
    /// more an earlier one produces), through the operators after it.
    fn resume(&mut self, out: &mut Vec<Message>) -> Result<()> {
        let Some(j) = self.ops.iter().rposition(|o| o.has_more()) else {
            return Ok(());
        };
        let (head, rest) = self.ops.split_at_mut(j + 1);
        let mut tmp = Vec::with_capacity(2);
        head[j].resume(&mut tmp)?;
        for m in tmp {
            push_through(rest, m, out)?;
        }
        Ok(())
    }

    fn checkpointable(&self) -> bool {
        self.ops.iter().all(|o| o.checkpointable())
    }

    fn emits_changes(&self) -> bool {
        self.ops.iter().any(|o| o.emits_changes())
    }

    fn changelog_mode(&self, inputs: &[ChangelogMode]) -> ChangelogMode {
        let mut ops = self.ops.iter();
        let first = ops
            .next()
            .map_or(ChangelogMode::merged(inputs), |o| o.changelog_mode(inputs));
        ops.fold(first, |mode, o| o.changelog_mode(&[mode]))
    }

    fn attach(&mut self, metrics: &TaskMetrics) {
        for o in &mut self.ops {
            o.attach(metrics);
        }
    }

    fn open(&mut self, checkpointer: Option<&Arc<Checkpointer>>) -> Result<()> {
        self.ops.iter_mut().try_for_each(|o| o.open(checkpointer))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint: u64) -> Result<()> {
        self.ops
            .iter_mut()
            .try_for_each(|o| o.notify_checkpoint_complete(checkpoint))
    }

    fn awaits_final_checkpoint(&self) -> bool {
        self.ops.iter().any(|o| o.awaits_final_checkpoint())
    }

    fn state_size(&self) -> Option<(u64, u64)> {
        self.ops
            .iter()
            .filter_map(|o| o.state_size())
            .reduce(|a, b| (a.0 + b.0, a.1 + b.1))
    }

    fn close(&mut self, completed: u64) -> Result<()> {
        self.ops.iter_mut().try_for_each(|o| o.close(completed))
    }
}

/// Where a task's messages come from: one channel, or several merged (with barrier
/// alignment, see [`union::Merged`]).
enum Inputs {
    One(Receiver<Message>),
    Many(union::Merged),
}

impl Inputs {
    /// The next message and the index of its input; `Some(None)` when `tick` passed
    /// without one (only for several inputs); None when every input is gone.
    async fn next(
        &mut self,
        tick: Option<std::time::Duration>,
    ) -> Option<Option<(usize, Message)>> {
        match self {
            Inputs::One(rx) => rx.recv().await.map(|m| Some((0, m))),
            Inputs::Many(m) => union::next_or_tick(&mut m.rx, tick).await,
        }
    }

    /// Input `i` sent `Barrier(id)`: true when every input not ended has now sent it.
    fn barrier(&mut self, i: usize, id: u64, ended: &[bool]) -> bool {
        match self {
            Inputs::One(_) => true,
            Inputs::Many(m) => m.barrier(i, id, ended),
        }
    }

    fn aligned_after_end(&self, ended: &[bool]) -> Option<u64> {
        match self {
            Inputs::One(_) => None,
            Inputs::Many(m) => m.aligned_after_end(ended),
        }
    }

    fn release(&self, id: u64) {
        if let Inputs::Many(m) = self {
            m.release(id);
        }
    }
}

/// How a task takes its inputs: one channel each, each input's idle timeout (an idle input
/// stops holding the merged watermark back), and whether barriers are aligned
/// (`EXACTLY_ONCE`) or not (`AT_LEAST_ONCE`; see [`union::merge_inputs`]).
///
/// A parallel job gives a subtask one channel from each subtask of its input:
/// `input_of[i]` is the operator's input that channel `i` carries (a join's left is 0, its
/// right 1). The operator sees one input per logical input: its watermark is the minimum
/// over that input's channels, and it ends when all of them have.
pub struct TaskInputs {
    pub receivers: Vec<Receiver<Message>>,
    pub idle: Vec<Option<std::time::Duration>>,
    pub aligned: bool,
    pub input_of: Vec<usize>,
    /// Which subtask of its operators the task is (0 for one that runs alone).
    pub subtask: usize,
}

impl TaskInputs {
    /// One input, never idle.
    pub fn one(rx: Receiver<Message>) -> Self {
        TaskInputs {
            receivers: vec![rx],
            idle: vec![None],
            aligned: true,
            input_of: vec![0],
            subtask: 0,
        }
    }
}

/// The watermark of logical input `l`: the minimum over its channels that have not ended
/// (i64::MIN while one has sent none; i64::MAX once all have ended).
fn logical_watermark(l: usize, input_of: &[usize], watermarks: &[i64], ended: &[bool]) -> i64 {
    input_of
        .iter()
        .enumerate()
        .filter(|(i, of)| **of == l && !ended[*i])
        .map(|(i, _)| watermarks[i])
        .min()
        .unwrap_or(i64::MAX)
}

/// Drives one task — a chain of operators, a join or a union — for every kind alike:
/// receive, handle, send, until `End` (or the downstream goes away).
///
/// - **Watermarks**: each input's is noted ([`Operator::input_watermark`]); their minimum
///   over inputs that have neither ended nor gone idle goes to the operator whenever it
///   rises.
/// - **Barriers**: with several inputs, a barrier is handled once it has come from every
///   input that has not ended. In `EXACTLY_ONCE` mode an input that sent it is held until
///   then (aligned, Flink's exactly-once checkpoints); in `AT_LEAST_ONCE` it flows on. With checkpoints,
///   the operators' states are saved then, before the barrier is passed on, and their final
///   states when every input has ended; the states of the restored checkpoint are put back
///   before the first message.
/// - **End**: each input's end goes to [`Operator::end_input`]; when all have ended, the
///   operator finishes and `End` goes downstream.
///
/// Returns when the task has sent `End`.
pub async fn run_task(
    mut op: Chain,
    inputs: TaskInputs,
    mut tx: exchange::Output,
    metrics: Arc<OperatorMetrics>,
    checkpoint: Option<TaskCheckpoint>,
) -> Result<()> {
    use std::time::Instant;
    if let Some(cp) = &checkpoint {
        op.restore_from(cp)?;
    }
    op.open(checkpoint.as_ref().map(|c| &c.checkpointer))?;
    let notices = op.awaits_final_checkpoint();
    let mut notified = checkpoint
        .as_ref()
        .map_or(0, |c| c.checkpointer.completed_id());
    let n = inputs.receivers.len();
    let input_of = inputs.input_of;
    let subtask = inputs.subtask;
    if input_of.len() != n {
        return Err(crate::error::WeirError::internal(
            "a task's inputs and their logical inputs differ in number",
        ));
    }
    // The watermark each logical input last reported to the operator.
    let mut reported = vec![i64::MIN; input_of.iter().max().map_or(0, |m| m + 1)];
    let idle = inputs.idle;
    let tick = union::idle_tick(&idle);
    let mut inputs = if n == 1 {
        Inputs::One(
            inputs
                .receivers
                .into_iter()
                .next()
                .ok_or_else(|| crate::error::WeirError::internal("a task without input"))?,
        )
    } else {
        Inputs::Many(union::merge_inputs(inputs.receivers, inputs.aligned))
    };
    let mut watermarks = vec![i64::MIN; n];
    let mut ended = vec![false; n];
    // When each input last sent rows or a watermark: a barrier says nothing of its data (a
    // silent source sends them too). The time an input is held at an aligned barrier counts
    // too: alignments take milliseconds, idle timeouts seconds, and a held input that has
    // rows sends them as soon as it is released.
    let mut last_seen = vec![Instant::now(); n];
    let mut emitted = i64::MIN;
    let mut out = Vec::with_capacity(4);
    // End-to-end latency: the origin each input announced last, and the one last sent on.
    let mut origins: Vec<Option<Instant>> = vec![None; n];
    let mut sent_origin: Option<Instant> = None;
    // State size is sampled a few times a second (it sums over slices or segments).
    let mut state_sampled = Instant::now();
    while let Some(next) = inputs.next(tick).await {
        let busy_from = Instant::now();
        if busy_from.duration_since(state_sampled) >= std::time::Duration::from_millis(250) {
            state_sampled = busy_from;
            if let Some((rows, bytes)) = op.state_size() {
                metrics.set_subtask_state(subtask, rows, bytes);
            }
        }
        if notices && let Some(cp) = &checkpoint {
            let c = cp.checkpointer.completed_id();
            if c > notified {
                notified = c;
                op.notify_checkpoint_complete(c)?;
            }
        }
        let mut aligned = None;
        let rise;
        // Time this step spent sending chunks of its output on (see `Operator::resume`).
        let mut waited = std::time::Duration::ZERO;
        // What caused the output of this step: the origin of the input that sent the
        // message, or, for a tick (an input gone idle), the tick itself.
        let cause = match &next {
            Some((i, _)) => origins[*i],
            None => Some(busy_from),
        };
        // Processing latency is kept for batches and watermarks (what does work).
        let measured = matches!(
            &next,
            Some((_, Message::Batch(_))) | Some((_, Message::Watermark(_)))
        );
        // CURRENT_WATERMARK reads the watermark this task had before the message (rows a
        // watermark fires are evaluated under the one before it, as in Flink, where the
        // window sends its results before the watermark); no other task's afterwards.
        let watermark_scope = crate::sql::current_watermark::Scope::enter(emitted);
        match next {
            // A tick: an input may have gone idle.
            None => rise = true,
            Some((i, msg)) => match msg {
                Message::Origin(t) => {
                    origins[i] = Some(t);
                    rise = false;
                }
                // Passed on untouched, in their place among the input's messages.
                m @ Message::DeadLetters(..) => {
                    out.push(m);
                    rise = false;
                }
                Message::Batch(b) => {
                    last_seen[i] = Instant::now();
                    metrics.add_in(b.num_rows());
                    op.process_input_batch(input_of[i], b, &mut out)?;
                    // Another input may have gone idle meanwhile: with messages coming, no
                    // tick comes to notice it.
                    rise = tick.is_some();
                }
                Message::Watermark(w) => {
                    last_seen[i] = Instant::now();
                    watermarks[i] = watermarks[i].max(w);
                    let l = input_of[i];
                    let lw = logical_watermark(l, &input_of, &watermarks, &ended);
                    if lw > reported[l] {
                        reported[l] = lw;
                        op.input_watermark(l, lw, &mut out)?;
                    }
                    rise = true;
                }
                Message::Barrier(id) => {
                    if inputs.barrier(i, id, &ended) {
                        aligned = Some(id);
                    }
                    rise = tick.is_some();
                }
                Message::End => {
                    ended[i] = true;
                    aligned = inputs.aligned_after_end(&ended);
                    let l = input_of[i];
                    if input_of.iter().zip(&ended).all(|(of, e)| *of != l || *e) {
                        op.end_input(l, &mut out)?;
                    } else {
                        // The input's other channels may hold its watermark higher now.
                        let lw = logical_watermark(l, &input_of, &watermarks, &ended);
                        if lw > reported[l] {
                            reported[l] = lw;
                            op.input_watermark(l, lw, &mut out)?;
                        }
                    }
                    rise = !ended.iter().all(|e| *e);
                }
            },
        }
        if rise
            && let Some(min) = union::merged(&watermarks, &ended, &idle, &last_seen)
            && min > emitted
        {
            emitted = min;
            op.handle(Message::Watermark(min), &mut out)?;
            // A watermark that fires more than one chunk: each goes on before the next
            // (the time waiting for room downstream is not busy time).
            while op.has_more() && !op.is_done() {
                if cause != sent_origin
                    && let Some(t) = cause
                    && out.iter().any(|m| matches!(m, Message::Batch(_)))
                {
                    sent_origin = cause;
                    out.insert(0, Message::Origin(t));
                }
                let sending = Instant::now();
                for m in out.drain(..) {
                    if let Message::Batch(b) = &m {
                        metrics.add_out(b.num_rows());
                    }
                    if !tx.send(m, &metrics).await? {
                        // The inputs go first: a source shared with other reads (or a hash exchange)
                        // must not wait on a channel nobody empties while this task waits.
                        drop(inputs);
                        return close(&mut op, &checkpoint, notices).await;
                    }
                }
                waited += sending.elapsed();
                op.resume(&mut out)?;
            }
        }
        if let Some(id) = aligned {
            if let Some(cp) = &checkpoint {
                op.save(cp, Some(id))?;
            }
            op.handle(Message::Barrier(id), &mut out)?;
        }
        let done = ended.iter().all(|e| *e);
        if done {
            op.handle(Message::End, &mut out)?;
            if let Some(cp) = &checkpoint {
                op.save(cp, None)?;
            }
        }
        drop(watermark_scope);
        let took = busy_from.elapsed().saturating_sub(waited);
        metrics.add_busy(took);
        if measured {
            metrics.record_processing(took);
        }
        if cause != sent_origin
            && let Some(t) = cause
            && out
                .iter()
                .any(|m| matches!(m, Message::Batch(_) | Message::Watermark(_)))
        {
            sent_origin = cause;
            out.insert(0, Message::Origin(t));
        }
        for m in out.drain(..) {
            // A batch without columns carries a watermark mark, not rows (see
            // `crate::sink::multi`): not counted as a batch.
            if let Message::Batch(b) = &m
                && b.num_columns() > 0
            {
                metrics.add_out(b.num_rows());
            }
            if !tx.send(m, &metrics).await? {
                // Nobody reads on (a LIMIT downstream): output of this task's own still
                // waits for the checkpoints that cover it.
                // The inputs go first: a source shared with other reads (or a hash exchange)
                // must not wait on a channel nobody empties while this task waits.
                drop(inputs);
                return close(&mut op, &checkpoint, notices).await;
            }
        }
        if let Some(id) = aligned {
            inputs.release(id);
        }
        if done {
            // The inputs go first: a source shared with other reads (or a hash exchange)
            // must not wait on a channel nobody empties while this task waits.
            drop(inputs);
            return close(&mut op, &checkpoint, notices).await;
        }
        if op.is_done() {
            // Nothing more is wanted: end downstream now; dropping the inputs tells
            // upstream.
            let mut tail = vec![];
            op.handle(Message::End, &mut tail)?;
            if let Some(cp) = &checkpoint {
                op.save(cp, None)?;
            }
            for m in tail {
                if let Message::Batch(b) = &m {
                    metrics.add_out(b.num_rows());
                }
                if !tx.send(m, &metrics).await? {
                    break;
                }
            }
            // The inputs go first: a source shared with other reads (or a hash exchange)
            // must not wait on a channel nobody empties while this task waits.
            drop(inputs);
            return close(&mut op, &checkpoint, notices).await;
        }
    }
    // An input went away without End: it failed, and its error is reported there.
    Ok(())
}

/// The end of a task whose operators commit output of their own: waits for the job's sink
/// to end (its final checkpoint, or a stop's savepoint, has then completed or failed),
/// commits what the last completed checkpoint covers, and throws away the rest.
async fn close(op: &mut Chain, checkpoint: &Option<TaskCheckpoint>, notices: bool) -> Result<()> {
    let Some(cp) = checkpoint.as_ref().filter(|_| notices) else {
        return Ok(());
    };
    let completed = cp
        .checkpointer
        .sink_done_notifying(|c| op.notify_checkpoint_complete(c))
        .await?;
    op.notify_checkpoint_complete(completed)?;
    op.close(completed)
}

/// The window end (exclusive, ms) through which windows have fired at watermark `wm`.
///
/// Flink fires a window `[start, end)` once the watermark reaches its last millisecond,
/// `end - 1` (its `window_time`): a watermark `W` promises no more rows at or below `W`.
/// So windows with `end <= fired_through(W)` have fired, and a row all of whose windows
/// have fired is late. Source: Flink's `isWindowFired` (`windowEnd - 1 <= watermark`), used
/// by its window aggregate, window join and window rank operators.
pub fn fired_through(wm: i64) -> i64 {
    wm.saturating_add(1)
}

/// True when aggregate `e`'s result is the same whatever the order of its rows: `COUNT`,
/// `MIN`, `MAX`, the bit and boolean folds, with or without `DISTINCT`, and `SUM` and `AVG`
/// when they add exactly (no floating-point state: a float sum's last digits depend on the
/// order of its terms, so do the variances') (see [`Operator::order_insensitive`]).
pub fn commutative(e: &datafusion::physical_expr::aggregate::AggregateFunctionExpr) -> bool {
    let exact = || {
        e.state_fields().is_ok_and(|fields| {
            fields.iter().all(|f| {
                !matches!(
                    f.data_type(),
                    datafusion::arrow::datatypes::DataType::Float16
                        | datafusion::arrow::datatypes::DataType::Float32
                        | datafusion::arrow::datatypes::DataType::Float64
                )
            })
        })
    };
    match e.fun().name() {
        "count" | "min" | "max" | "max_with_retract" | "min_with_retract" | "bit_and"
        | "bit_or" | "bit_xor" | "bool_and" | "bool_or" => true,
        "sum" | "avg" | "mean" => exact(),
        _ => false,
    }
}
