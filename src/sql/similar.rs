//! `string SIMILAR TO pattern [ESCAPE char]` as Flink evaluates it: the pattern, a SQL
//! regular expression, is translated into a regular expression as Calcite's
//! `Like.sqlToRegexSimilar` does (`_` one character, `%` any text including line breaks,
//! `$` and `\` literal, an escaped special character literal, everything else as in
//! regular expressions), and must match the whole string (`Pattern.matches`).
//! [`super::rewrite`] calls it `weir_similar(string, pattern[, escape])`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The characters special in a SQL regular expression (SQL:2003 Part 2, 8.6).
const SQL_SPECIALS: &str = "[]()|^-+*_%?{}";
/// The characters special in a regular expression, escaped when written literally.
const REGEX_SPECIALS: &str = "[]()|^-+*?{}$\\.";

/// `pattern` (escape character `escape`) as an anchored regular expression. Errors: an
/// escape character before a character that is not special, a trailing one, or an
/// unbalanced `]`.
pub fn to_regex(pattern: &str, escape: Option<char>) -> Result<String, String> {
    let bad = |i: usize| format!("invalid SIMILAR TO pattern '{pattern}' at index {i}");
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^(?:");
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if Some(c) == escape {
            let next = *chars.get(i + 1).ok_or_else(|| bad(i))?;
            if SQL_SPECIALS.contains(next) || Some(next) == escape {
                if REGEX_SPECIALS.contains(next) {
                    out.push('\\');
                }
                out.push(next);
            } else {
                return Err(bad(i));
            }
            i += 2;
            continue;
        }
        match c {
            '_' if !in_class => out.push('.'),
            '%' if !in_class => out.push_str("(?s:.*)"),
            '[' => {
                in_class = true;
                out.push('[');
            }
            ']' => {
                if !in_class {
                    return Err(bad(i));
                }
                in_class = false;
                out.push(']');
            }
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
        i += 1;
    }
    if in_class {
        return Err(bad(chars.len()));
    }
    out.push_str(")$");
    Ok(out)
}

/// Compiled patterns, by pattern and escape character.
type Compiled = HashMap<(String, Option<char>), Arc<regex::Regex>>;

/// `weir_similar(string, pattern[, escape])`.
#[derive(Debug)]
pub struct Similar {
    signature: Signature,
    cache: Mutex<Compiled>,
}

impl PartialEq for Similar {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Similar {}
impl std::hash::Hash for Similar {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "weir_similar".hash(state);
    }
}

impl Similar {
    /// The function, to register with a DataFusion context.
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(Similar {
            signature: Signature::variadic_any(Volatility::Immutable),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn compiled(
        &self,
        pattern: &str,
        escape: Option<char>,
    ) -> datafusion::error::Result<Arc<regex::Regex>> {
        let key = (pattern.to_string(), escape);
        if let Ok(c) = self.cache.lock()
            && let Some(r) = c.get(&key)
        {
            return Ok(r.clone());
        }
        let re = to_regex(pattern, escape).map_err(DataFusionError::Execution)?;
        let re = Arc::new(regex::Regex::new(&re).map_err(|e| {
            DataFusionError::Execution(format!("invalid SIMILAR TO pattern '{pattern}': {e}"))
        })?);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 1000 {
                c.clear();
            }
            c.insert(key, re.clone());
        }
        Ok(re)
    }
}

impl ScalarUDFImpl for Similar {
    fn name(&self) -> &str {
        "weir_similar"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = super::functions::all_scalar(&args);
        let utf8 = |i: usize| super::functions::arg_as(&args, i, &DataType::Utf8);
        let (s, p) = (utf8(0)?, utf8(1)?);
        let e = if args.args.len() > 2 {
            Some(utf8(2)?)
        } else {
            None
        };
        let (s, p) = (s.as_string::<i32>(), p.as_string::<i32>());
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if s.is_null(i) || p.is_null(i) {
                out.push(None);
                continue;
            }
            let escape = match &e {
                None => None,
                Some(e) if e.is_null(i) => {
                    out.push(None);
                    continue;
                }
                Some(e) => {
                    let e = e.as_string::<i32>().value(i);
                    let mut chars = e.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(c),
                        _ => {
                            return Err(DataFusionError::Execution(format!(
                                "the ESCAPE of SIMILAR TO must be one character, not '{e}'"
                            )));
                        }
                    }
                }
            };
            out.push(Some(
                self.compiled(p.value(i), escape)?.is_match(s.value(i)),
            ));
        }
        super::functions::shaped(Arc::new(BooleanArray::from(out)), scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn similar(s: &str, p: &str, e: Option<char>) -> bool {
        let re = regex::Regex::new(&to_regex(p, e).expect("pattern")).expect("regex");
        re.is_match(s)
    }

    #[test]
    fn calcite_rules() {
        assert!(similar("abc", "a%", None));
        assert!(!similar("xabc", "a%", None));
        assert!(similar("a\nb", "a%b", None));
        assert!(similar("abc", "a.c", None));
        assert!(similar("abc", "(a|x)b_", None));
        assert!(similar("a%", "a\\%", Some('\\')));
        assert!(!similar("ab", "a\\%", Some('\\')));
        assert!(similar("a$", "a$", None));
        assert!(similar("b", "[abc]", None));
        assert!(to_regex("a\\b", Some('\\')).is_err());
        assert!(to_regex("a]", None).is_err());
    }
}
