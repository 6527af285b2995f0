//! `WITH ('key' = 'value')` options: lookup, validation against what a connector accepts,
//! and Flink's value syntaxes (durations such as `'10 s'`, sizes such as `'128MB'`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Pos, Result, WeirError, did_you_mean};

/// A table's options, with where each was written.
#[derive(Debug, Clone, Default)]
pub struct Options {
    values: BTreeMap<String, (String, Option<Pos>)>,
    /// Where an option set by the session rather than the table came from (`--set k=v`,
    /// `SET 'k' = 'v'`): a bad value is reported there, not at the statement.
    origins: BTreeMap<String, String>,
}

/// Whether option `key` holds a secret, whose value Weir never shows (in errors, `\d`,
/// `SHOW CREATE TABLE`, `SET`, logs): a name that contains `password`, `passwd`, `secret`,
/// `token`, `credential`, `apikey`, `api-key`, `jaas`, `auth-params`, `basic-auth` or
/// `http-headers` anywhere (`clientSecret`, `s3.secretkey`; as Flink's
/// `GlobalConfiguration.isSensitive` matches its list), a part `auth`, a part `key` after the
/// first (`ssl.key.pem`, `fs.azure.account.key`; the leading `key.` of
/// `key.format`/`key.fields` names the message key), or any `sasl.` property.
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.starts_with("sasl.") || k.contains(".sasl.") {
        return true;
    }
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "apikey",
        "api-key",
        "api_key",
        "jaas",
        "auth-params",
        "basic-auth",
        "http-headers",
    ];
    WORDS.iter().any(|w| k.contains(w))
        || k.split(['.', '-', '_'])
            .enumerate()
            .any(|(i, part)| part == "auth" || (part == "key" && i > 0))
}

/// `value` of option `key` as Weir shows it: `******` for a secret ([`is_sensitive`]).
pub fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_sensitive(key) { "******" } else { value }
}

/// `text` (SQL as written) with the value of every sensitive `'key' = 'value'` pair
/// ([`is_sensitive`]) replaced by as many `*` (so a caret under the line still points at
/// the same column).
pub fn scrub_sql(text: &str) -> String {
    static PAIR: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"'((?:[^']|'')*)'(\s*=\s*)'((?:[^']|'')*)'").ok()
    });
    let Some(re) = PAIR.as_ref() else {
        return text.to_string();
    };
    re.replace_all(text, |c: &regex::Captures<'_>| {
        let (key, eq, value) = (&c[1], &c[2], &c[3]);
        if is_sensitive(&key.replace("''", "'")) {
            format!("'{key}'{eq}'{}'", "*".repeat(value.chars().count()))
        } else {
            c[0].to_string()
        }
    })
    .into_owned()
}

impl Options {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>, pos: Option<Pos>) {
        self.values.insert(key.into(), (value.into(), pos));
    }

    /// Sets `key` from the session (`origin`: the `--set` flag or `SET` statement that
    /// gave it), overriding the table's value.
    pub fn insert_setting(&mut self, key: &str, value: &str, origin: &str) {
        self.values
            .insert(key.to_string(), (value.to_string(), None));
        self.origins.insert(key.to_string(), origin.to_string());
    }

    /// An error about `key`'s value: at the option in the table's `WITH`, or, for a value
    /// the session set, naming the flag or statement that set it.
    fn bad(&self, key: &str, message: String) -> WeirError {
        match self.origins.get(key) {
            Some(origin) => WeirError::user(format!("{origin}: {message}")),
            None => WeirError::sql(message, self.pos(key)),
        }
    }

    /// Forgets `key`; true when it was set.
    pub fn remove(&mut self, key: &str) -> bool {
        self.values.remove(key).is_some()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    pub fn pos(&self, key: &str) -> Option<Pos> {
        self.values.get(key).and_then(|(_, p)| *p)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .map(|(k, (v, _))| (k.as_str(), v.as_str()))
    }

    /// The value of `key`, which must be present. Errors: the key missing, pointed at the
    /// table's `'connector'` option when it has a place.
    pub fn require(&self, key: &str, table: &str) -> Result<&str> {
        self.get(key).ok_or_else(|| {
            let msg = format!("table '{table}' needs the option '{key}'");
            match self.pos("connector") {
                Some(p) => WeirError::sql(msg, Some(p)),
                None => WeirError::user(msg),
            }
        })
    }

    /// The value of `key` parsed as `T`, or `default` when absent.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => self.parse_value(key, v),
        }
    }

    /// The value of `key` parsed as `T`, if present.
    pub fn parse_opt<T: FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.get(key).map(|v| self.parse_value(key, v)).transpose()
    }

    fn parse_value<T: FromStr>(&self, key: &str, v: &str) -> Result<T> {
        v.trim().parse::<T>().map_err(|_| {
            self.bad(
                key,
                format!(
                    "option '{key}' = '{v}' is not a valid {}",
                    std::any::type_name::<T>()
                        .rsplit("::")
                        .next()
                        .unwrap_or("value")
                ),
            )
        })
    }

    /// A boolean option (`'true'` / `'false'`).
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(self.bad(
                key,
                format!("option '{key}' = '{v}' must be 'true' or 'false'"),
            )),
        }
    }

    /// A duration option in Flink's syntax.
    pub fn duration_opt(&self, key: &str) -> Result<Option<Duration>> {
        self.get(key)
            .map(|v| parse_duration(v).map_err(|m| self.bad(key, format!("option '{key}': {m}"))))
            .transpose()
    }

    /// A single character option, such as a CSV delimiter (`'\t'` is accepted for tab).
    pub fn char_or(&self, key: &str, default: u8) -> Result<u8> {
        match self.get(key) {
            None => Ok(default),
            Some("\\t") => Ok(b'\t'),
            Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
            Some(v) => Err(self.bad(
                key,
                format!("option '{key}' = '{v}' must be a single character"),
            )),
        }
    }

    /// Checks every key against what a connector (and its format) accepts. `accepted`
    /// entries ending in `.` or `#` are prefixes (`properties.`, `fields.#`).
    pub fn validate(&self, table: &str, what: &str, accepted: &[&str]) -> Result<()> {
        for (key, (_, pos)) in &self.values {
            let ok = accepted.iter().any(|a| {
                if let Some(prefix) = a.strip_suffix('#') {
                    key.starts_with(prefix)
                } else if a.ends_with('.') {
                    key.starts_with(a)
                } else {
                    key == a
                }
            });
            if !ok {
                let names: Vec<&str> = accepted.to_vec();
                let mut e = WeirError::sql(
                    format!("unknown option '{key}' for {what} in table '{table}'"),
                    *pos,
                );
                e = match did_you_mean(key, names.iter().copied()) {
                    Some(s) => e.with_hint(format!(
                        "did you mean '{s}'? valid options: {}",
                        names.join(", ")
                    )),
                    None => e.with_hint(format!("valid options: {}", names.join(", "))),
                };
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Parses a duration as Flink's `TimeUtils.parseDuration` reads one: a number and a unit
/// (`'10 s'`, `'10s'`, `'500 ms'`, `'1 min'`, `'2 h'`, `'1 d'`; Flink's units `d`/`day`,
/// `h`/`hour`, `min`/`m`/`minute`, `s`/`sec`/`second`, `ms`/`milli`/`millisecond`,
/// `µs`/`micro`/`microsecond`, `ns`/`nano`/`nanosecond`, with plurals, in any case), or a
/// bare number of milliseconds. Parsed by `humantime`, which also takes sums (`'1h 30min'`)
/// and fractions (`'1.5 s'`). Errors: not a duration, an unknown unit, or more than
/// `u64::MAX` seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim().to_lowercase();
    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("'{s}' is too long a duration"));
    }
    // Flink's long unit names that humantime spells otherwise.
    let mut words = String::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find(|c: char| c.is_alphabetic()) {
        let end = rest[start..]
            .find(|c: char| !c.is_alphabetic())
            .map_or(rest.len(), |e| start + e);
        words.push_str(&rest[..start]);
        words.push_str(match &rest[start..end] {
            "milli" | "millisecond" | "milliseconds" => "ms",
            "micro" | "micros" | "microsecond" | "microseconds" => "us",
            "nano" | "nanosecond" | "nanoseconds" => "ns",
            other => other,
        });
        rest = &rest[end..];
    }
    words.push_str(rest);
    humantime::parse_duration(&words).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("'{s}' is too long a duration"),
        humantime::DurationError::UnknownUnit { unit, .. } => {
            format!("unknown time unit '{unit}' in '{s}' (use ms, s, min, h or d)")
        }
        _ => format!("'{s}' is not a duration such as '10 s' or '500 ms'"),
    })
}

/// Parses a memory size as Flink's `MemorySize` reads one: a number and a unit, binary
/// (`'128mb'` is 128 × 2^20 bytes; Flink's units `b`/`bytes`, `k`/`kb`/`kibibytes`,
/// `m`/`mb`/`mebibytes`, `g`/`gb`/`gibibytes`, `t`/`tb`/`tebibytes`, in any case), or a bare
/// number of bytes. Parsed by `parse-size`. Errors: not a size, or more than `u64::MAX`
/// bytes (`'99999999999999999gb'`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_lowercase();
    let split = t.find(|c: char| c.is_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = match unit.trim() {
        "bytes" => "b",
        "kibibytes" => "kib",
        "mebibytes" => "mib",
        "gibibytes" => "gib",
        "tebibytes" => "tib",
        u @ ("" | "b" | "k" | "kb" | "kib" | "m" | "mb" | "mib" | "g" | "gb" | "gib" | "t"
        | "tb" | "tib") => u,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use b, kb, mb, gb or tb)"
            ));
        }
    };
    parse_size::Config::new()
        .with_binary()
        .parse_size(format!("{}{unit}", num.trim()))
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => {
                format!("'{s}' is larger than the largest size, 16 EiB")
            }
            _ => format!("'{s}' is not a size such as '128mb'"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1min"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten s").is_err());
        assert_eq!(
            parse_duration("2 Milliseconds"),
            Ok(Duration::from_millis(2))
        );
        assert_eq!(parse_duration("1 d"), Ok(Duration::from_secs(86400)));
        let long = parse_duration("99999999999999999999 d").expect_err("overflow");
        assert!(long.contains("too long"), "{long}");
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_size("128MB"), Ok(128 << 20));
        assert_eq!(parse_size("64 kibibytes"), Ok(64 << 10));
        assert_eq!(parse_size("1 tb"), Ok(1 << 40));
        assert_eq!(parse_size("4096"), Ok(4096));
        // Flink's example of an option too large for its type: an error naming it, no
        // wrapping or panic.
        let big = parse_size("99999999999999999gb").expect_err("overflow");
        assert!(big.contains("larger than"), "{big}");
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn secrets_are_recognised_by_name_and_scrubbed_from_sql() {
        for k in [
            "properties.sasl.jaas.config",
            "properties.sasl.password",
            "properties.ssl.key.password",
            "properties.ssl.key.pem",
            "fs.azure.account.key",
            "password",
            "s3.secret-key",
            "http.api_token",
            "basic-auth",
            "clientSecret",
            "accessToken",
            "s3.secretkey",
            "dbPassword",
        ] {
            assert!(is_sensitive(k), "{k}");
        }
        for k in [
            "key.format",
            "key.fields",
            "topic",
            "format",
            "value.format",
        ] {
            assert!(!is_sensitive(k), "{k}");
        }
        // Across lines too (a long JAAS string on its own line).
        assert_eq!(
            scrub_sql("'properties.sasl.jaas.config' =\n  'org.x required;'"),
            "'properties.sasl.jaas.config' =\n  '***************'"
        );
        let sql = "WITH ('topic' = 't', 'properties.sasl.password' = 'hunter2', 'x' = 'y')";
        assert_eq!(
            scrub_sql(sql),
            "WITH ('topic' = 't', 'properties.sasl.password' = '*******', 'x' = 'y')"
        );
    }

    #[test]
    fn unknown_option_is_named_with_a_suggestion() {
        let mut o = Options::new();
        o.insert("event.num", "1", Some(Pos { line: 1, col: 40 }));
        let e = o
            .validate("t", "connector 'nexmark'", &["connector", "events.num"])
            .expect_err("unknown");
        let s = e.to_string();
        assert!(s.contains("unknown option 'event.num'"), "{s}");
        assert!(s.contains("did you mean 'events.num'"), "{s}");
    }
}
