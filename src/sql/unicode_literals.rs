//! Flink's Unicode string literals, `U&'…'` with an optional `UESCAPE 'c'` (Calcite's
//! `SqlParserUtil.unescapeUnicode`), read before the SQL is tokenized: sqlparser's
//! tokenizer refuses a UTF-16 surrogate pair (`U&'\D83D\DE00'`, one character past the Basic
//! Multilingual Plane) and does not know `UESCAPE`. Each such literal is replaced in the text
//! by an empty string literal `''` at the same place, padded with the spaces (and line
//! breaks) it took so that every later token keeps its line and column, and its text is put
//! back into that token after tokenizing ([`restore`]).
//!
//! In the literal, the escape character (`\` unless `UESCAPE` names another) followed by
//! four hex digits is a UTF-16 unit, two of which may make a surrogate pair; followed by `+`
//! and six hex digits, a code point; doubled, itself. Anything else after it is an error,
//! as is a lone surrogate.

use std::borrow::Cow;

use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::error::{Pos, Result, WeirError};

/// The literals [`decode`] took out: where each starts (its `U`, now its `''`), where it
/// ends (past its closing quote, or its `UESCAPE` clause), and its text.
pub type Decoded = Vec<(Pos, Pos, String)>;

/// `sql` with every Unicode literal replaced as the module says, and their texts; `sql` as
/// it is when it has none. Errors: a bad escape, a lone surrogate, an unclosed literal or a
/// `UESCAPE` that is not one character other than a hex digit, `+`, a quote or a space.
pub fn decode(sql: &str) -> Result<(Cow<'_, str>, Decoded)> {
    if !sql.contains("&'") {
        return Ok((Cow::Borrowed(sql), vec![]));
    }
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut decoded = vec![];
    let (mut line, mut col) = (1u64, 1u64);
    let mut i = 0;
    // Moves past `chars[i]`, copying it into `out`.
    macro_rules! copy {
        () => {{
            let c = chars[i];
            out.push(c);
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            // A comment to the end of the line, or a block comment.
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    copy!();
                }
            }
            '/' if next == Some('*') => {
                copy!();
                copy!();
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    copy!();
                }
                if i < chars.len() {
                    copy!();
                    copy!();
                }
            }
            // A string or a quoted name, copied whole.
            '\'' | '"' | '`' => {
                copy!();
                while i < chars.len() {
                    if chars[i] == c {
                        copy!();
                        if chars.get(i).copied() == Some(c) {
                            copy!();
                            continue;
                        }
                        break;
                    }
                    copy!();
                }
            }
            'u' | 'U'
                if next == Some('&')
                    && chars.get(i + 2) == Some(&'\'')
                    && !(i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) =>
            {
                let at = Pos { line, col };
                let (text, end) = literal(&chars, i + 3, at)?;
                let taken = &chars[i..end];
                out.push_str("''");
                // The rest of what the literal took, as blanks.
                let mut blank = 2;
                for &t in taken {
                    if t == '\n' {
                        out.push('\n');
                        line += 1;
                        col = 1;
                        blank = 0;
                    } else if blank > 0 {
                        blank -= 1;
                        col += 1;
                    } else {
                        out.push(' ');
                        col += 1;
                    }
                }
                decoded.push((at, Pos { line, col }, text));
                i = end;
            }
            _ => copy!(),
        }
    }
    Ok((Cow::Owned(out), decoded))
}

/// The text of the literal whose body starts at `chars[from]` (after `U&'`), and where the
/// literal (with its `UESCAPE` clause) ends.
fn literal(chars: &[char], from: usize, at: Pos) -> Result<(String, usize)> {
    let bad = |m: String| WeirError::sql(m, Some(at));
    // The body, with '' read as one quote.
    let mut body = vec![];
    let mut i = from;
    loop {
        match chars.get(i) {
            None => return Err(bad("a Unicode literal U&'…' is not closed".into())),
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                body.push('\'');
                i += 2;
            }
            Some('\'') => {
                i += 1;
                break;
            }
            Some(&c) => {
                body.push(c);
                i += 1;
            }
        }
    }
    // `UESCAPE 'c'` after blanks.
    let mut j = i;
    while chars.get(j).is_some_and(|c| c.is_whitespace()) {
        j += 1;
    }
    let word: String = chars.iter().skip(j).take(7).collect();
    let mut escape = '\\';
    let mut end = i;
    if word.eq_ignore_ascii_case("UESCAPE")
        && !chars
            .get(j + 7)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    {
        let mut k = j + 7;
        while chars.get(k).is_some_and(|c| c.is_whitespace()) {
            k += 1;
        }
        match (chars.get(k), chars.get(k + 1), chars.get(k + 2)) {
            (Some('\''), Some(&e), Some('\''))
                if !e.is_ascii_hexdigit()
                    && !matches!(e, '+' | '\'' | '"')
                    && !e.is_whitespace() =>
            {
                escape = e;
                end = k + 3;
            }
            _ => {
                return Err(bad(
                    "UESCAPE takes one character in quotes, not a hex digit, '+', a quote or a space (as in UESCAPE '#')"
                        .into(),
                ));
            }
        }
    }
    let hex = |k: usize, n: usize| -> Option<u32> {
        let digits: String = body.get(k..k + n)?.iter().collect();
        if digits.len() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(&digits, 16).ok()
    };
    let mut text = String::with_capacity(body.len());
    let mut k = 0;
    while k < body.len() {
        let c = body[k];
        if c != escape {
            text.push(c);
            k += 1;
            continue;
        }
        if body.get(k + 1) == Some(&escape) {
            text.push(escape);
            k += 2;
            continue;
        }
        let (unit, len) = match body.get(k + 1) {
            Some('+') => (hex(k + 2, 6), 8),
            _ => (hex(k + 1, 4), 5),
        };
        let Some(unit) = unit else {
            return Err(bad(format!(
                "a Unicode literal's escape {escape} is followed by four hex digits, + and six, or {escape} again"
            )));
        };
        k += len;
        let ch = if (0xD800..0xDC00).contains(&unit) && len == 5 {
            // A high surrogate: the low one must follow.
            let low = match body.get(k) {
                Some(&e) if e == escape => hex(k + 1, 4),
                _ => None,
            }
            .filter(|l| (0xDC00..0xE000).contains(l));
            let Some(low) = low else {
                return Err(bad(format!(
                    "a Unicode literal's surrogate {unit:04X} is not followed by a low surrogate"
                )));
            };
            k += 5;
            char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
        } else {
            char::from_u32(unit)
        };
        let Some(ch) = ch else {
            return Err(bad(format!(
                "a Unicode literal's escape names no character: {unit:04X}"
            )));
        };
        text.push(ch);
    }
    Ok((text, end))
}

/// `sql`'s tokens, with their places (lines and columns in `sql`), Unicode literals read as
/// the module says. Errors: a bad Unicode literal, or text the tokenizer refuses (an
/// unclosed string), each at its place.
pub fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    let (text, decoded) = decode(sql)?;
    let tokens = Tokenizer::new(&GenericDialect {}, &text)
        .tokenize_with_location()
        .map_err(|e| {
            WeirError::sql(
                e.message,
                Some(Pos {
                    line: e.location.line,
                    col: e.location.column,
                }),
            )
        })?;
    Ok(restore(tokens, &decoded))
}

/// `tokens` with each literal [`decode`] took out put back: the empty string token at its
/// place takes its text.
pub fn restore(mut tokens: Vec<TokenWithSpan>, decoded: &Decoded) -> Vec<TokenWithSpan> {
    if decoded.is_empty() {
        return tokens;
    }
    for t in &mut tokens {
        if let Token::SingleQuotedString(s) = &t.token
            && s.is_empty()
            && let Some((_, end, text)) = decoded
                .iter()
                .find(|(p, _, _)| p.line == t.span.start.line && p.col == t.span.start.column)
        {
            t.token = Token::SingleQuotedString(text.clone());
            // The token spans the literal as written, so text cut by spans keeps it whole.
            t.span.end = datafusion::sql::sqlparser::tokenizer::Location::new(end.line, end.col);
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_decoded_and_later_tokens_keep_their_places() {
        let sql = "SELECT U&'a\\D83D\\DE00b' AS x, 1";
        let (text, decoded) = decode(sql).expect("decode");
        assert_eq!(text.chars().count(), sql.chars().count());
        assert_eq!(text.find("AS x"), sql.find("AS x"));
        assert_eq!(decoded[0].2, "a😀b");
        assert_eq!((decoded[0].0.line, decoded[0].0.col), (1, 8));
        // It ends past its closing quote: column 8 + 16 characters.
        assert_eq!((decoded[0].1.line, decoded[0].1.col), (1, 24));
    }

    #[test]
    fn uescape_names_the_escape() {
        let (text, decoded) =
            decode("SELECT U&'#0041\\###+01F600''' UESCAPE '#'\n, 2").expect("decode");
        assert_eq!(decoded[0].2, "A\\#😀'");
        assert!(text.ends_with("\n, 2"), "{text}");
        assert!(!text.contains("UESCAPE"), "{text}");
    }

    #[test]
    fn strings_and_comments_are_left_alone() {
        let sql = "SELECT 'U&''x''', \"U&'y'\" -- U&'\\D800'\n/* U&'\\D800' */";
        let (text, decoded) = decode(sql).expect("decode");
        assert_eq!(text, sql);
        assert!(decoded.is_empty());
    }

    #[test]
    fn bad_literals_say_why() {
        for (sql, want) in [
            ("SELECT U&'\\D83D'", "not followed by a low surrogate"),
            ("SELECT U&'\\DE00'", "names no character"),
            ("SELECT U&'\\12'", "four hex digits"),
            ("SELECT U&'abc", "not closed"),
            ("SELECT U&'a' UESCAPE 'ab'", "UESCAPE takes one character"),
            ("SELECT U&'a' UESCAPE '+'", "UESCAPE takes one character"),
        ] {
            let e = decode(sql).expect_err(sql).to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }
}
