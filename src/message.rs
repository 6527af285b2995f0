//! Every message Weir writes to stderr has one style, Flink's SQL client's: a tag —
//! `[INFO]`, `[WARNING]` or `[ERROR]` — then the text (`[ERROR] SQL error at q.sql:2:11:
//! …`, `[WARNING] checkpoint 3 … failed`, `[INFO] Job 1 started: …`). The tag is coloured
//! only when stderr is a terminal and `NO_COLOR` is unset ([`crate::colour_stderr`]); log
//! events from `tracing` take the same form (see [`Tagged`]).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The tags, each with its colour.
const TAGS: [(&str, console::Color); 3] = [
    ("[INFO]", console::Color::Green),
    ("[WARNING]", console::Color::Yellow),
    ("[ERROR]", console::Color::Red),
];

/// `text` with its leading tag coloured, when stderr takes colour; else as it is.
pub fn paint(text: &str) -> String {
    paint_if(text, crate::colour_stderr())
}

fn paint_if(text: &str, colour: bool) -> String {
    if !colour {
        return text.to_string();
    }
    for (tag, c) in TAGS {
        if let Some(rest) = text.strip_prefix(tag) {
            return format!(
                "{}{rest}",
                console::style(tag).fg(c).bold().force_styling(true)
            );
        }
    }
    text.to_string()
}

/// Writes `text` (already tagged) as a line on stderr.
pub fn say(text: impl AsRef<str>) {
    eprintln!("{}", paint(text.as_ref()));
}

/// Writes `[INFO] text` on stderr.
pub fn info(text: impl fmt::Display) {
    say(format!("[INFO] {text}"));
}

/// Writes `[WARNING] text` on stderr.
pub fn warning(text: impl fmt::Display) {
    say(format!("[WARNING] {text}"));
}

/// Writes `[ERROR] text` on stderr.
pub fn error(text: impl fmt::Display) {
    say(format!("[ERROR] {text}"));
}

/// A `tracing` event formatter in the same style: `[WARNING] message key=value`, no
/// timestamp (`--log-format json` keeps timestamps for machines). DEBUG and TRACE events
/// are tagged `[DEBUG]` and `[TRACE]`.
pub struct Tagged {
    /// Whether to colour the tag.
    pub colour: bool,
}

impl<S, N> FormatEvent<S, N> for Tagged
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let tag = match *event.metadata().level() {
            Level::ERROR => "[ERROR]",
            Level::WARN => "[WARNING]",
            Level::INFO => "[INFO]",
            Level::DEBUG => "[DEBUG]",
            Level::TRACE => "[TRACE]",
        };
        write!(writer, "{} ", paint_if(tag, self.colour))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `s` on one line (each run of whitespace one space), cut to `max` characters, the last
/// of them `…`, when longer: a statement named in a message.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let keep = max.saturating_sub(1);
        format!("{}…", flat.chars().take(keep).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_leading_tag_is_coloured_and_only_when_asked() {
        assert_eq!(paint_if("[ERROR] x", false), "[ERROR] x");
        let painted = paint_if("[ERROR] x [INFO]", true);
        assert!(painted.starts_with("\u{1b}["), "{painted:?}");
        assert!(
            painted.ends_with("[ERROR]\u{1b}[0m x [INFO]"),
            "{painted:?}"
        );
        assert_eq!(paint_if("plain [INFO]", true), "plain [INFO]");
    }
}
