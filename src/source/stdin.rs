//! The `stdin` source: JSON-lines or CSV records from standard input, until it closes.
//!
//! A reader thread feeds lines through a small channel so that a slow or quiet pipe still
//! delivers what it has: a batch goes out when it is full or when its first line has
//! waited 100 ms (a linger, as Kafka producers' `linger.ms`), whichever comes first. A
//! steady trickle of lines therefore waits at most 100 ms, never until a batch fills.

use std::io::BufRead;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

/// How long a line waits for more to batch with.
const LINGER: Duration = Duration::from_millis(100);

use super::{Source, SourceContext, line_body};
use crate::error::{Result, WeirError};
use crate::format::Decoder;

pub struct StdinSource {
    decoder: Decoder,
    batch_size: usize,
}

impl StdinSource {
    pub fn new(decoder: Decoder, batch_size: usize) -> Self {
        StdinSource {
            decoder,
            batch_size,
        }
    }
}

impl Source for StdinSource {
    fn kind(&self) -> &'static str {
        "stdin"
    }

    fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(self.batch_size.max(1024));
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            loop {
                let mut s = Vec::new();
                match lock.read_until(b'\n', &mut s) {
                    Ok(0) => break,
                    Ok(_) => {
                        if tx.send(Ok(s)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        let mut lines = vec![];
        let mut first_line = 1;
        let mut line_no = 0;
        let mut skip_header = self.decoder.header;
        // When the oldest line of the batch being filled came.
        let mut oldest: Option<Instant> = None;
        loop {
            let wait = oldest.map_or(LINGER, |t| LINGER.saturating_sub(t.elapsed()));
            let (flush, done) = match rx.recv_timeout(wait) {
                Ok(Ok(l)) => {
                    line_no += 1;
                    if skip_header {
                        skip_header = false;
                        first_line += 1;
                        continue;
                    }
                    let l = line_body(&l, line_no);
                    let text = ctx.text_line(&self.decoder, l, &|| format!("stdin:{line_no}"))?;
                    lines.push(text);
                    let first = *oldest.get_or_insert_with(Instant::now);
                    (
                        lines.len() >= self.batch_size || first.elapsed() >= LINGER,
                        false,
                    )
                }
                Ok(Err(e)) => return Err(WeirError::external(format!("cannot read stdin: {e}"))),
                Err(RecvTimeoutError::Timeout) => (!lines.is_empty(), false),
                Err(RecvTimeoutError::Disconnected) => (!lines.is_empty(), true),
            };
            if flush {
                let d = self.decoder.decode(&lines, "stdin", first_line)?;
                ctx.bad_lines(&d, &lines, &|i| format!("stdin:{}", first_line + i))?;
                lines.clear();
                oldest = None;
                first_line = line_no + 1;
                if let Some(b) = d.batch
                    && !ctx.emit(b)?
                {
                    ctx.finish(self, false)?;
                    return Ok(());
                }
            }
            if done {
                ctx.finish(self, true)?;
                return Ok(());
            }
            if ctx.should_stop() {
                ctx.finish(self, false)?;
                return Ok(());
            }
        }
    }
}
