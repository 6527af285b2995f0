//! Java's regular expressions (`java.util.regex.Pattern`), which Flink's functions take, on
//! the `fancy-regex` crate: look-around, back-references (`\1`, `\k<name>`), atomic groups
//! and possessive quantifiers work as in Java. Where the two syntaxes read the same text
//! differently, the pattern is translated first ([`translate`]):
//!
//! - `\d`, `\w`, `\s` (and `\D`, `\W`, `\S`) are ASCII, as Java's are without
//!   `UNICODE_CHARACTER_CLASS`: `[0-9]`, `[a-zA-Z_0-9]`, `[ \t\n\x0B\f\r]`.
//! - `\h` is Java's horizontal white space (in `fancy-regex` a hex digit), `\v` its vertical
//!   white space and `\R` a line break.
//! - `\Q…\E` quotes its text; `\0n`, `\0nn`, `\0mnn` are octal and `\cX` a control character.
//! - `.` stops at every Java line terminator (`\n`, `\r`, `\u0085`, `\u2028`, `\u2029`),
//!   and `$` matches at the end and before a line terminator that ends the text, unless an
//!   inline flag (`(?s)`, `(?m)`, `(?d)`) changes what they mean.
//! - The POSIX classes `\p{Lower}`, `\p{Alpha}`, `\p{Punct}`, … are ASCII, as in Java, and
//!   `\p{javaLowerCase}`, `\p{IsAlphabetic}`, `\p{L}`, … their Unicode properties.
//!
//! Matching is bounded: a pattern that backtracks more than [`BACKTRACK_LIMIT`] times on one
//! text stops with an error, which each function treats as it treats a bad pattern.

use std::fmt::Write;

/// How many backtracking steps one match may take before it is given up (`fancy-regex`'s
/// default): about a second of work at worst, where Java would run on.
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// A Java regular expression, compiled ([`compile`]).
#[derive(Debug, Clone)]
pub struct JavaRegex {
    /// For texts that do not end with a line terminator, where Java's `$` is the end.
    plain: fancy_regex::Regex,
    /// For texts that do, where Java's `$` also matches before it: the pattern with each
    /// `$` a look-ahead, which runs on `fancy-regex`'s slower backtracking engine, so only
    /// for such texts. None when the pattern has no `$` (or one in multi-line mode).
    line_end: Option<fancy_regex::Regex>,
}

impl JavaRegex {
    /// The compiled pattern to match `text` with.
    pub fn on(&self, text: &str) -> &fancy_regex::Regex {
        match &self.line_end {
            Some(r) if text.ends_with(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) => r,
            _ => &self.plain,
        }
    }

    /// How many groups the pattern has, the whole match counted as group 0.
    pub fn captures_len(&self) -> usize {
        self.plain.captures_len()
    }

    /// Every match in `text` with its groups, in order, as Java's `Matcher.find` loop finds
    /// them: each search starts where the last match ended, one character further after an
    /// empty match — so an empty match right after a longer one counts (`o*` matches `foo`
    /// three times: empty, `oo`, empty), where `regex` skips it. Errors when a match runs
    /// past the backtracking limit.
    pub fn captures_all<'t>(
        &self,
        text: &'t str,
    ) -> Result<Vec<fancy_regex::Captures<'t>>, String> {
        let re = self.on(text);
        let mut all = vec![];
        let mut pos = 0;
        while pos <= text.len() {
            let Some(caps) = re.captures_from_pos(text, pos).map_err(|e| e.to_string())? else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            pos = match m.end() > m.start() {
                true => m.end(),
                false => match text[m.end()..].chars().next() {
                    Some(c) => m.end() + c.len_utf8(),
                    None => text.len() + 1,
                },
            };
            all.push(caps);
        }
        Ok(all)
    }

    /// Where every match is (byte ranges), as [`JavaRegex::captures_all`] finds them.
    pub fn find_all(&self, text: &str) -> Result<Vec<std::ops::Range<usize>>, String> {
        Ok(self
            .captures_all(text)?
            .iter()
            .filter_map(|c| c.get(0).map(|m| m.range()))
            .collect())
    }

    /// Java's `String.replaceAll(regex, Matcher.quoteReplacement(with))`: every match
    /// replaced by `with` as it is.
    pub fn replace_all(&self, text: &str, with: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in self.find_all(text)? {
            out.push_str(&text[last..m.start]);
            out.push_str(with);
            last = m.end;
        }
        out.push_str(&text[last..]);
        Ok(out)
    }
}

/// `pattern`, a Java regular expression, compiled; or why it is not one (`'(' is not a
/// regular expression: …`).
pub fn compile(pattern: &str) -> Result<JavaRegex, String> {
    let bad = |e: &dyn std::fmt::Display| format!("'{pattern}' is not a regular expression: {e}");
    let build = |translated: &str| {
        fancy_regex::RegexBuilder::new(translated)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| bad(&e))
    };
    let (plain, dollar) = translate(pattern, false).map_err(|e| bad(&e))?;
    let line_end = match dollar {
        true => Some(build(&translate(pattern, true).map_err(|e| bad(&e))?.0)?),
        false => None,
    };
    Ok(JavaRegex {
        plain: build(&plain)?,
        line_end,
    })
}

/// Java's `String.split(regex)`: the pieces of `text` between the matches of `re`, without
/// the empty pieces at the end, and without an empty first piece where a match of no width
/// starts the text. Errors if a match runs past the backtracking limit.
pub fn split<'t>(re: &JavaRegex, text: &'t str) -> Result<Vec<&'t str>, String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for m in re.find_all(text)? {
        if m.end == 0 {
            continue;
        }
        pieces.push(&text[start..m.start]);
        start = m.end;
    }
    pieces.push(&text[start..]);
    while pieces.len() > 1 && pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    // Java: a text of separators alone gives no pieces (an empty text, one empty piece).
    if pieces.len() == 1 && pieces[0].is_empty() && !text.is_empty() {
        pieces.clear();
    }
    Ok(pieces)
}

/// Java's `String.split(regex, 2)`: the text before the first match of `re` (one that is
/// not an empty match at the start) and the rest after it, or the whole text when none.
pub fn split_once<'t>(re: &JavaRegex, text: &'t str) -> Result<(&'t str, Option<&'t str>), String> {
    for m in re.find_all(text)? {
        if m.end == 0 {
            continue;
        }
        return Ok((&text[..m.start], Some(&text[m.end..])));
    }
    Ok((text, None))
}

const DIGIT: &str = "0-9";
const WORD: &str = "a-zA-Z_0-9";
const SPACE: &str = r" \t\n\x0B\f\r";
const HORIZONTAL: &str = r" \t\xA0\x{1680}\x{180E}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}";
const VERTICAL: &str = r"\n\x0B\f\r\x{85}\x{2028}\x{2029}";

/// The members of a Java `\p{…}` class whose meaning differs from `fancy-regex`'s, as the
/// inside of a bracket class (ASCII ones, from `java.util.regex.Pattern`'s table), or the
/// Unicode property it names.
fn property(name: &str) -> Option<&'static str> {
    Some(match name {
        "Lower" => "a-z",
        "Upper" => "A-Z",
        "ASCII" => r"\x00-\x7F",
        "Alpha" => "a-zA-Z",
        "Digit" => DIGIT,
        "Alnum" => "a-zA-Z0-9",
        "Punct" => r"!-/:-@\[-`{-~",
        "Graph" => "!-~",
        "Print" => " -~",
        "Blank" => r" \t",
        "Cntrl" => r"\x00-\x1F\x7F",
        "XDigit" => "0-9a-fA-F",
        "Space" => SPACE,
        "javaLowerCase" => r"\p{Lowercase}",
        "javaUpperCase" => r"\p{Uppercase}",
        "javaWhitespace" => r"\t\n\x0B\f\r\x1C-\x1F\p{Zs}\p{Zl}\p{Zp}",
        "javaAlphabetic" => r"\p{Alphabetic}",
        "javaDigit" => r"\p{Nd}",
        "javaLetter" => r"\p{L}",
        "javaLetterOrDigit" => r"\p{L}\p{Nd}",
        "javaSpaceChar" => r"\p{Zs}\p{Zl}\p{Zp}",
        "javaTitleCase" => r"\p{Lt}",
        "javaISOControl" => r"\x00-\x1F\x7F-\x{9F}",
        "javaDefined" => r"\P{Cn}",
        "javaIdeographic" => r"\p{Ideographic}",
        _ => return None,
    })
}

/// `c` as a literal character of a pattern, inside or outside a bracket class, and in
/// the `(?x)` mode that ignores blanks: punctuation escaped (but `<` and `>`, which escaped
/// are word boundaries in `fancy-regex`), blanks as hex escapes.
fn push_literal(out: &mut String, c: char) {
    if c.is_whitespace() {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
        return;
    }
    if c.is_ascii_punctuation() && !matches!(c, '<' | '>') {
        out.push('\\');
    }
    out.push(c);
}

/// Java's line modes (inline flags) in force at a point of a pattern.
#[derive(Debug, Clone, Copy, Default)]
struct Modes {
    /// DOTALL, `s`: `.` matches a line terminator too.
    dotall: bool,
    /// MULTILINE, `m`: `$` matches before every line terminator.
    multiline: bool,
    /// UNIX_LINES, `d`: `\n` alone ends a line.
    unix: bool,
}

impl Modes {
    /// Turns flag `flag` on or off (others leave the modes as they are).
    fn set(&mut self, flag: char, on: bool) {
        match flag {
            's' => self.dotall = on,
            'm' => self.multiline = on,
            'd' => self.unix = on,
            _ => {}
        }
    }
}

/// A class of `members` (the inside of a bracket class), negated or not, written so that it
/// reads the same inside another bracket class as outside one.
fn class(out: &mut String, members: &str, negated: bool) {
    out.push('[');
    if negated {
        out.push('^');
    }
    out.push_str(members);
    out.push(']');
}

/// A Java pattern as a `fancy-regex` pattern of the same meaning (see the module's
/// documentation), and whether a `$` in it means more than the end: with `line_end`, each
/// such `$` is written as Java's (also before a line terminator that ends the text); errors
/// on an escape Java would refuse where the two differ (`\c` at the end, an octal escape
/// without digits, an unclosed `\p{`).
pub fn translate(java: &str, line_end: bool) -> Result<(String, bool), String> {
    // The line modes in force, and those of each enclosing group, restored at its end.
    let mut modes = Modes::default();
    let mut groups: Vec<Modes> = vec![];
    let mut dollar = false;
    let mut out = String::with_capacity(java.len() + 8);
    let mut chars = java.char_indices().peekable();
    // How deep inside bracket classes the next character is.
    let mut depth = 0usize;
    while let Some((ci, c)) = chars.next() {
        match c {
            '\\' => {
                let Some((at, e)) = chars.next() else {
                    return Err("a '\\' ends the pattern".into());
                };
                match e {
                    'd' | 'D' => class(&mut out, DIGIT, e == 'D'),
                    'w' | 'W' => class(&mut out, WORD, e == 'W'),
                    's' | 'S' => class(&mut out, SPACE, e == 'S'),
                    'h' | 'H' => class(&mut out, HORIZONTAL, e == 'H'),
                    'v' | 'V' => class(&mut out, VERTICAL, e == 'V'),
                    'R' if depth == 0 => {
                        out.push_str(r"(?:\r\n|[");
                        out.push_str(VERTICAL);
                        out.push_str("])");
                    }
                    'Q' => {
                        // Quoted to the next `\E`, or to the end.
                        let rest = &java[at + 1..];
                        let (quoted, len) = match rest.find(r"\E") {
                            Some(end) => (&rest[..end], end + 2),
                            None => (rest, rest.len()),
                        };
                        for q in quoted.chars() {
                            push_literal(&mut out, q);
                        }
                        while chars.peek().is_some_and(|(i, _)| *i < at + 1 + len) {
                            chars.next();
                        }
                    }
                    'p' | 'P' => {
                        let negated = e == 'P';
                        let name = match chars.peek() {
                            Some((_, '{')) => {
                                let open = chars.next().map(|(i, _)| i).unwrap_or(at);
                                let mut name = String::new();
                                loop {
                                    match chars.next() {
                                        Some((_, '}')) => break,
                                        Some((_, ch)) => name.push(ch),
                                        None => {
                                            return Err(format!(
                                                "unclosed character family at {open}"
                                            ));
                                        }
                                    }
                                }
                                name
                            }
                            Some(&(_, ch)) => {
                                chars.next();
                                ch.to_string()
                            }
                            None => return Err("a '\\p' ends the pattern".into()),
                        };
                        // Java's POSIX classes are ASCII; any other name (`L`, `IsLatin`,
                        // `Alphabetic`) is a Unicode property, as `regex` reads it.
                        match property(&name) {
                            Some(members) => class(&mut out, members, negated),
                            None => {
                                let _ = write!(out, "\\{e}{{{name}}}");
                            }
                        }
                    }
                    '0' => {
                        // Octal: one to three digits, the value at most 0o377.
                        let mut value = 0u32;
                        let mut digits = 0;
                        while let Some(&(_, d)) = chars.peek() {
                            let Some(v) = d.to_digit(8) else { break };
                            if digits == 3 || (digits == 2 && value > 0o37) {
                                break;
                            }
                            value = value * 8 + v;
                            digits += 1;
                            chars.next();
                        }
                        if digits == 0 {
                            return Err("an octal escape '\\0' has no digits".into());
                        }
                        let _ = write!(out, "\\x{{{value:X}}}");
                    }
                    // `\x{h…h}`: a code point in hex.
                    'x' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                        chars.next();
                        let mut hex = String::new();
                        loop {
                            match chars.next() {
                                Some((_, '}')) => break,
                                Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 8 => {
                                    hex.push(h)
                                }
                                _ => return Err(format!("a bad escape \\x{{{hex} at {at}")),
                            }
                        }
                        let ok = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .is_some();
                        if !ok {
                            return Err(format!("\\x{{{hex}}} at {at} names no character"));
                        }
                        let _ = write!(out, "\\x{{{hex}}}");
                    }
                    'N' => {
                        return Err(format!(
                            "\\N{{…}} at {at}, a character by its name, is not taken here: write \\x{{…}}"
                        ));
                    }
                    'c' => {
                        let Some((_, x)) = chars.next() else {
                            return Err("a '\\c' ends the pattern".into());
                        };
                        let _ = write!(out, "\\x{{{:X}}}", (x as u32) ^ 64);
                    }
                    // Java reads any other escaped symbol as itself (`\<` is `<`, a word
                    // boundary in `fancy-regex`); letters and digits as `fancy-regex` does
                    // (`\n`, `\b`, `\1`).
                    other if !other.is_ascii_alphanumeric() => {
                        push_literal(&mut out, other);
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            '[' => {
                depth += 1;
                out.push('[');
                if chars.peek().is_some_and(|(_, n)| *n == '^') {
                    chars.next();
                    out.push('^');
                }
                match chars.peek().map(|(_, n)| *n) {
                    // A `]` first is a member in Java (`[]a]`, `[^]a]`).
                    Some(']') => {
                        chars.next();
                        out.push_str("\\]");
                    }
                    // `[:` is no POSIX class in Java (`[[:alpha:]]` is a set of `:alph`).
                    // (`fancy-regex` writes an escaped `:` back bare, so it goes as the
                    // range `:-:`, which `regex` does not take for a class name.)
                    Some(':') => {
                        chars.next();
                        out.push_str(":-:");
                    }
                    _ => {}
                }
            }
            // No set operation in Java (`regex` reads `~~` as one).
            '~' if depth > 0 => out.push_str("\\~"),
            // A repetition, or an error in Java (`regex` reads a stray `{` as itself).
            '{' if depth == 0 => {
                static REPETITION: std::sync::LazyLock<Option<regex::Regex>> =
                    std::sync::LazyLock::new(|| regex::Regex::new(r"^\{[0-9]+(,[0-9]*)?\}").ok());
                if !REPETITION.as_ref().is_some_and(|r| r.is_match(&java[ci..])) {
                    return Err(format!(
                        "illegal repetition at {ci}: a '{{' starts {{n}}, {{n,}} or {{n,m}} (write \\{{ for the character)"
                    ));
                }
                out.push('{');
            }
            '(' if depth == 0 && chars.peek().is_some_and(|(_, n)| *n == '?') => {
                let rest = &java[ci + 2..];
                if rest.starts_with('P') {
                    return Err(format!(
                        "(?P at {ci} is not Java's syntax: name a group (?<name>…)"
                    ));
                }
                if let Some(named) = rest.strip_prefix('<')
                    && !named.starts_with(['=', '!'])
                {
                    let name: String = named.chars().take_while(|c| *c != '>').collect();
                    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
                        && name.chars().all(|c| c.is_ascii_alphanumeric());
                    if !valid {
                        return Err(format!(
                            "a group's name is a letter, then letters or digits, not '{name}'"
                        ));
                    }
                    groups.push(modes);
                    out.push('(');
                    continue;
                }
                // Inline flags, `(?is-m)` or `(?i:…)`: Java's `d` (UNIX_LINES, where `\n`
                // alone ends a line, as in `fancy-regex`), `u` (Unicode case folding, which
                // `fancy-regex` always does) and `U` (Unicode classes; in `fancy-regex` a
                // swap of greed) are dropped.
                let letters = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic() || *c == '-')
                    .count();
                let after = rest[letters..].chars().next();
                if letters == 0 || !matches!(after, Some(')' | ':')) {
                    groups.push(modes);
                    out.push('(');
                    continue;
                }
                chars.next();
                let (mut on, mut off, mut negative) = (String::new(), String::new(), false);
                let mut next = modes;
                for _ in 0..letters {
                    match chars.next().map(|(_, f)| f) {
                        Some('-') => negative = true,
                        Some(f) => {
                            next.set(f, !negative);
                            match (f, negative) {
                                ('d' | 'u' | 'U', _) => {}
                                (f, true) => off.push(f),
                                (f, false) => on.push(f),
                            }
                        }
                        None => {}
                    }
                }
                let flags = match off.is_empty() {
                    true => on,
                    false => format!("{on}-{off}"),
                };
                if after == Some(':') {
                    // `(?s:…)`: the group's own modes; its `:` comes next.
                    groups.push(modes);
                    modes = next;
                    out.push_str("(?");
                    out.push_str(&flags);
                } else {
                    // `(?s)`: the modes from here to the end of the enclosing group.
                    modes = next;
                    chars.next();
                    if !flags.is_empty() {
                        let _ = write!(out, "(?{flags})");
                    }
                }
            }
            '(' if depth == 0 => {
                groups.push(modes);
                out.push('(');
            }
            ')' if depth == 0 => {
                if let Some(m) = groups.pop() {
                    modes = m;
                }
                out.push(')');
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            // Java's `.` stops at every line terminator (with UNIX_LINES, at `\n` alone, as
            // `fancy-regex`'s does; with DOTALL at none, the `s` flag passed on).
            '.' if depth == 0 && !modes.dotall && !modes.unix => {
                out.push_str(r"[^\n\r\x{85}\x{2028}\x{2029}]");
            }
            // Java's `$` also matches before a line terminator that ends the text (`\r\n`
            // as one; with UNIX_LINES, `\n` alone).
            '$' if depth == 0 && !modes.multiline => {
                dollar = true;
                match (line_end, modes.unix) {
                    (true, false) => {
                        out.push_str(r"(?=(?:\r\n|(?<!\r)\n|[\r\x{85}\x{2028}\x{2029}])?\z)")
                    }
                    (true, true) => out.push_str(r"(?=\n?\z)"),
                    (false, _) => out.push('$'),
                }
            }
            other => out.push(other),
        }
    }
    Ok((out, dollar))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(pattern: &str, text: &str) -> Option<String> {
        let re = compile(pattern).expect("pattern");
        re.on(text)
            .find(text)
            .expect("match")
            .map(|m| m.as_str().to_string())
    }

    #[test]
    fn character_classes_are_asciis_as_in_java() {
        // Java's \d, \w and \s match ASCII only; `regex`'s match Unicode digits and letters.
        assert_eq!(first(r"\d+", "x١٢3"), Some("3".into()));
        assert_eq!(first(r"\w+", "é_a1"), Some("_a1".into()));
        assert_eq!(first(r"[\w-]+", "é-a"), Some("-a".into()));
        assert_eq!(first(r"[^\d]+", "12ab"), Some("ab".into()));
        assert_eq!(first(r"\S+", "\u{2003}x"), Some("\u{2003}x".into()));
        assert_eq!(first(r"\p{Alpha}+", "éab"), Some("ab".into()));
        assert_eq!(first(r"\P{Digit}", "1a"), Some("a".into()));
        assert_eq!(first(r"\p{L}+", "éa1"), Some("éa".into()));
        assert_eq!(first(r"\p{IsLatin}+", "éa1"), Some("éa".into()));
        // \h is horizontal white space in Java (a hex digit in fancy-regex).
        assert_eq!(first(r"\h", "a\u{a0}"), Some("\u{a0}".into()));
        assert_eq!(first(r"a\Rb", "a\r\nb"), Some("a\r\nb".into()));
    }

    #[test]
    fn javas_own_syntax_is_read() {
        // The quantifier takes the last quoted character alone, as in Java.
        assert_eq!(first(r"\Q.*\E+", "a.**."), Some(".**".into()));
        assert_eq!(first(r"a\Q(", "a("), Some("a(".into()));
        assert_eq!(first(r"\0101\x42", "AB"), Some("AB".into()));
        assert_eq!(first(r"\0400", "\u{20}0"), Some(" 0".into()));
        assert_eq!(first(r"\cA", "\u{1}"), Some("\u{1}".into()));
        assert_eq!(first(r"(?<=a)b", "ab"), Some("b".into()));
        assert_eq!(first(r"(\w)\1", "abb"), Some("bb".into()));
        assert_eq!(first(r"(?<x>a)\k<x>", "aa"), Some("aa".into()));
        assert_eq!(first(r"a++a", "aaa"), None);
        assert_eq!(first(r"(?>ab|a)c", "ac"), Some("ac".into()));
    }

    #[test]
    fn dot_and_dollar_are_javas() {
        // `.` stops at \r too; `$` matches before a line break that ends the text.
        assert_eq!(first(r"a.b", "a\rb"), None);
        assert_eq!(first(r"(?s)a.b", "a\rb"), Some("a\rb".into()));
        assert_eq!(first(r"\d+$", "12\n"), Some("12".into()));
        assert_eq!(first(r"\d+$", "12\r\n"), Some("12".into()));
        assert_eq!(first(r"\d+$", "12\nx"), None);
        assert_eq!(first(r"^\d+$", "12"), Some("12".into()));
        assert_eq!(first(r"[$.]+", "a$."), Some("$.".into()));
        assert_eq!(first(r"\$\.", "$."), Some("$.".into()));
    }

    #[test]
    fn empty_matches_after_a_match_count_as_in_java() {
        let re = compile("o*").expect("pattern");
        assert_eq!(re.replace_all("foo", "X").expect("replace"), "XfXX");
        assert_eq!(re.find_all("foo").expect("find").len(), 3);
        let b = compile("b*").expect("pattern");
        assert_eq!(b.replace_all("abc", "x").expect("replace"), "xaxxcx");
        let any = compile("").expect("pattern");
        assert_eq!(any.replace_all("ab", "x").expect("replace"), "xaxbx");
        assert_eq!(any.replace_all("é", "x").expect("replace"), "xéx");
    }

    #[test]
    fn javas_reading_of_symbols_flags_and_names() {
        // An escaped symbol is itself (`\<` is no word boundary), quoted ones too.
        assert_eq!(first(r"a\<b\>", "a<b>"), Some("a<b>".into()));
        assert_eq!(first(r"\Q<\E", "a<b"), Some("<".into()));
        assert_eq!(first(r"(?x)\Qa b\E", "a b"), Some("a b".into()));
        // An escaped space or non-ASCII letter is itself (in `(?x)` too).
        assert_eq!(first(r"(?x)a\ b", "a b"), Some("a b".into()));
        assert_eq!(first(r"\é", "é"), Some("é".into()));
        // `[[:alpha:]]` is a set of characters; `~~` no set operation.
        assert_eq!(first(r"[[:alpha:]]+", "x:ab"), Some(":a".into()));
        assert_eq!(first(r"[a~~b]", "x~"), Some("~".into()));
        // Java's flags `d`, `u` and `U` are taken (and dropped).
        assert_eq!(first(r"(?d)a", "a"), Some("a".into()));
        assert_eq!(first(r"(?iu)A", "a"), Some("a".into()));
        assert_eq!(first(r"(?d:a)b", "ab"), Some("ab".into()));
        assert_eq!(first(r"\p{javaSpaceChar}", "a b"), Some(" ".into()));
    }

    #[test]
    fn line_modes_follow_the_flags_where_they_apply() {
        // Escaped or quoted `(?` is no flag group; `.` stays Java's.
        assert_eq!(first(r"\(?members\)? a.b", "members a\rb"), None);
        assert_eq!(first(r"\d$|\(?m", "1\n"), Some("1".into()));
        // A scoped flag ends with its group; `(?-s)` turns DOTALL off.
        assert_eq!(first(r"(?s:a.)b.", "a\rb\r"), None);
        assert_eq!(first(r"(?s:a.)b.", "a\rbx"), Some("a\rbx".into()));
        assert_eq!(first(r"(?s)(?-s)a.", "a\r"), None);
        // UNIX_LINES: `$` before a final `\n`; `.` stops at `\n` alone.
        assert_eq!(first(r"(?d)a$", "a\n"), Some("a".into()));
        assert_eq!(first(r"(?d)a.", "a\r"), Some("a\r".into()));
        // `$` is not between `\r` and `\n`.
        assert_eq!(first(r"a\r$", "a\r\n"), None);
        assert_eq!(first(r"a$", "a\r\n"), Some("a".into()));
    }

    #[test]
    fn hex_code_points_and_leading_brackets() {
        assert_eq!(first(r"\x{E9}\x{1F600}", "é😀"), Some("é😀".into()));
        assert_eq!(first(r"[].]", "a"), None);
        assert_eq!(first(r"[].]", "]"), Some("]".into()));
        assert_eq!(first(r"[^]a]+", "]ab"), Some("b".into()));
        assert!(compile(r"\x{D800}").is_err());
        assert!(compile(r"\N{LATIN SMALL LETTER A}").is_err());
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "(",
            r"\",
            r"\p{Alpha",
            r"\0",
            r"\c",
            r"\p{NoSuchClass}",
            "{",
            "a{,2}",
            "a{",
            "a{}",
            "(?P<n>a)",
            "(?<a_b>a)",
            "(?<1a>a)",
        ] {
            let e = compile(bad).expect_err(bad);
            assert!(e.contains("is not a regular expression"), "{bad}: {e}");
        }
    }

    #[test]
    fn catastrophic_backtracking_stops_with_an_error() {
        // A back-reference makes fancy-regex backtrack; the limit ends it.
        let re = compile(r"^(\w+\s?)*\1$").expect("pattern");
        let text = format!("{}!", "a".repeat(40));
        assert!(re.on(&text).is_match(&text).is_err());
    }

    #[test]
    fn split_is_javas_string_split() {
        let comma = compile(",").expect("pattern");
        assert_eq!(split(&comma, "a,b,,").expect("split"), vec!["a", "b"]);
        assert_eq!(split(&comma, ",a").expect("split"), vec!["", "a"]);
        assert_eq!(split(&comma, ",,").expect("split"), Vec::<&str>::new());
        assert_eq!(split(&comma, "").expect("split"), vec![""]);
        let nothing = compile("").expect("pattern");
        assert_eq!(split(&nothing, "ab").expect("split"), vec!["a", "b"]);
        let eq = compile("=").expect("pattern");
        assert_eq!(split_once(&eq, "a=b=c").expect("split"), ("a", Some("b=c")));
        assert_eq!(split_once(&eq, "a=").expect("split"), ("a", Some("")));
        assert_eq!(split_once(&eq, "a").expect("split"), ("a", None));
    }
}
