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
//! - The POSIX classes `\p{Lower}`, `\p{Alpha}`, `\p{Punct}`, … are ASCII, as in Java, and
//!   `\p{javaLowerCase}`, `\p{IsAlphabetic}`, `\p{L}`, … their Unicode properties.
//!
//! Matching is bounded: a pattern that backtracks more than [`BACKTRACK_LIMIT`] times on one
//! text stops with an error, which each function treats as it treats a bad pattern.

use std::fmt::Write;

/// How many backtracking steps one match may take before it is given up (`fancy-regex`'s
/// default): about a second of work at worst, where Java would run on.
pub const BACKTRACK_LIMIT: usize = 1_000_000;

/// `pattern`, a Java regular expression, compiled; or why it is not one (`'(' is not a
/// regular expression: …`).
pub fn compile(pattern: &str) -> Result<fancy_regex::Regex, String> {
    let bad = |e: &dyn std::fmt::Display| format!("'{pattern}' is not a regular expression: {e}");
    let translated = translate(pattern).map_err(|e| bad(&e))?;
    fancy_regex::RegexBuilder::new(&translated)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map_err(|e| bad(&e))
}

/// Java's `String.split(regex)`: the pieces of `text` between the matches of `re`, without
/// the empty pieces at the end, and without an empty first piece where a match of no width
/// starts the text. Errors if a match runs past the backtracking limit.
pub fn split<'t>(re: &fancy_regex::Regex, text: &'t str) -> Result<Vec<&'t str>, String> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for m in re.find_iter(text) {
        let m = m.map_err(|e| e.to_string())?;
        if m.end() == 0 {
            continue;
        }
        pieces.push(&text[start..m.start()]);
        start = m.end();
    }
    pieces.push(&text[start..]);
    while pieces.len() > 1 && pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    // Java: no match at all gives the whole text, even when it is empty.
    if pieces.len() == 1 && pieces[0].is_empty() && !text.is_empty() {
        pieces.clear();
    }
    Ok(pieces)
}

/// Java's `String.split(regex, 2)`: the text before the first match of `re` (one that is
/// not an empty match at the start) and the rest after it, or the whole text when none.
pub fn split_once<'t>(
    re: &fancy_regex::Regex,
    text: &'t str,
) -> Result<(&'t str, Option<&'t str>), String> {
    for m in re.find_iter(text) {
        let m = m.map_err(|e| e.to_string())?;
        if m.end() == 0 {
            continue;
        }
        return Ok((&text[..m.start()], Some(&text[m.end()..])));
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
        _ => return None,
    })
}

/// `c` as a literal character of a pattern, inside or outside a bracket class.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_punctuation() {
        out.push('\\');
    }
    out.push(c);
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
/// documentation); errors on an escape Java would refuse where the two differ (`\c` at the
/// end, an octal escape without digits, an unclosed `\p{`).
pub fn translate(java: &str) -> Result<String, String> {
    let mut out = String::with_capacity(java.len() + 8);
    let mut chars = java.char_indices().peekable();
    // How deep inside bracket classes the next character is.
    let mut depth = 0usize;
    while let Some((_, c)) = chars.next() {
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
                    'c' => {
                        let Some((_, x)) = chars.next() else {
                            return Err("a '\\c' ends the pattern".into());
                        };
                        let _ = write!(out, "\\x{{{:X}}}", (x as u32) ^ 64);
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
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(pattern: &str, text: &str) -> Option<String> {
        let re = compile(pattern).expect("pattern");
        re.find(text)
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
    fn bad_patterns_say_why() {
        for bad in ["(", r"\", r"\p{Alpha", r"\0", r"\c", r"\p{NoSuchClass}"] {
            let e = compile(bad).expect_err(bad);
            assert!(e.contains("is not a regular expression"), "{bad}: {e}");
        }
    }

    #[test]
    fn catastrophic_backtracking_stops_with_an_error() {
        // A back-reference makes fancy-regex backtrack; the limit ends it.
        let re = compile(r"^(\w+\s?)*\1$").expect("pattern");
        let text = format!("{}!", "a".repeat(40));
        assert!(re.is_match(&text).is_err());
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
