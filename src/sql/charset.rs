//! Flink's `ENCODE(string, charset)` and `DECODE(binary, charset)`: text to bytes and back
//! in one of the six character sets Flink names ('US-ASCII', 'ISO-8859-1', 'UTF-8',
//! 'UTF-16BE', 'UTF-16LE', 'UTF-16'), as Java's `String.getBytes(charset)` and
//! `new String(bytes, charset)` do: a character the set cannot hold encodes as `?`, bytes
//! that are not valid text decode as U+FFFD, 'UTF-16' writes a big-endian byte-order mark
//! and reads one (big-endian without). NULL in, NULL out; another charset name is an error
//! that lists the six. [`super::rewrite`] calls them `weir_encode` and `weir_decode`
//! (DataFusion's own `encode`/`decode` are base64 and hex).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BinaryArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Ascii,
    Latin1,
    Utf8,
    Utf16Be,
    Utf16Le,
    Utf16,
}

impl Charset {
    fn parse(name: &str) -> datafusion::error::Result<Charset> {
        Ok(match name.trim().to_ascii_uppercase().as_str() {
            "US-ASCII" => Charset::Ascii,
            "ISO-8859-1" => Charset::Latin1,
            "UTF-8" => Charset::Utf8,
            "UTF-16BE" => Charset::Utf16Be,
            "UTF-16LE" => Charset::Utf16Le,
            "UTF-16" => Charset::Utf16,
            _ => {
                return Err(datafusion::error::DataFusionError::Execution(format!(
                    "unknown character set '{name}': use one of 'US-ASCII', 'ISO-8859-1', 'UTF-8', 'UTF-16BE', 'UTF-16LE', 'UTF-16'"
                )));
            }
        })
    }

    fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Charset::Ascii => s
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect(),
            Charset::Latin1 => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Charset::Utf8 => s.as_bytes().to_vec(),
            Charset::Utf16Be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            Charset::Utf16Le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            // Java writes the byte-order mark before the first character only.
            Charset::Utf16 if s.is_empty() => vec![],
            Charset::Utf16 => [0xFE, 0xFF]
                .into_iter()
                .chain(s.encode_utf16().flat_map(u16::to_be_bytes))
                .collect(),
        }
    }

    fn decode(self, b: &[u8]) -> String {
        let utf16 = |b: &[u8], be: bool| {
            let units: Vec<u16> = b
                .chunks(2)
                .map(|c| match c {
                    [x, y] if be => u16::from_be_bytes([*x, *y]),
                    [x, y] => u16::from_le_bytes([*x, *y]),
                    _ => 0xFFFD,
                })
                .collect();
            String::from_utf16_lossy(&units)
        };
        match self {
            Charset::Ascii => b
                .iter()
                .map(|&x| if x.is_ascii() { x as char } else { '\u{FFFD}' })
                .collect(),
            Charset::Latin1 => b.iter().map(|&x| x as char).collect(),
            Charset::Utf8 => String::from_utf8_lossy(b).into_owned(),
            Charset::Utf16Be => utf16(b, true),
            Charset::Utf16Le => utf16(b, false),
            Charset::Utf16 => match b {
                [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
                [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
                _ => utf16(b, true),
            },
        }
    }
}

/// `weir_encode(string, charset)` (to BYTES) or `weir_decode(bytes, charset)` (to STRING).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CharsetFn {
    encode: bool,
    signature: Signature,
}

impl CharsetFn {
    /// The two functions, to register with a DataFusion context.
    pub fn udfs() -> Vec<ScalarUDF> {
        [true, false]
            .into_iter()
            .map(|encode| {
                ScalarUDF::from(CharsetFn {
                    encode,
                    signature: Signature::any(2, Volatility::Immutable),
                })
            })
            .collect()
    }
}

impl ScalarUDFImpl for CharsetFn {
    fn name(&self) -> &str {
        if self.encode {
            "weir_encode"
        } else {
            "weir_decode"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(if self.encode {
            DataType::Binary
        } else {
            DataType::Utf8
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = super::functions::all_scalar(&args);
        let input = super::functions::arg_as(
            &args,
            0,
            if self.encode {
                &DataType::Utf8
            } else {
                &DataType::Binary
            },
        )?;
        let names = super::functions::arg_as(&args, 1, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let mut charsets = Vec::with_capacity(n);
        for i in 0..n {
            charsets.push(if names.is_null(i) {
                None
            } else {
                Some(Charset::parse(names.value(i))?)
            });
        }
        let out: Arc<dyn Array> = if self.encode {
            let s = input.as_string::<i32>();
            Arc::new(
                (0..n)
                    .map(|i| match charsets[i] {
                        Some(c) if !s.is_null(i) => Some(c.encode(s.value(i))),
                        _ => None,
                    })
                    .collect::<BinaryArray>(),
            )
        } else {
            let b = input.as_binary::<i32>();
            Arc::new(
                (0..n)
                    .map(|i| match charsets[i] {
                        Some(c) if !b.is_null(i) => Some(c.decode(b.value(i))),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            )
        };
        super::functions::shaped(out, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes Java's `String.getBytes(charset)` gave for "aé€" (OpenJDK's jshell).
    #[test]
    fn like_java() {
        let s = "aé€";
        assert_eq!(Charset::Ascii.encode(s), b"a??");
        assert_eq!(Charset::Latin1.encode(s), [0x61, 0xE9, 0x3F]);
        assert_eq!(
            Charset::Utf16.encode(s),
            [0xFE, 0xFF, 0x00, 0x61, 0x00, 0xE9, 0x20, 0xAC]
        );
        assert_eq!(
            Charset::Utf16Le.encode(s),
            [0x61, 0x00, 0xE9, 0x00, 0xAC, 0x20]
        );
        for c in [
            Charset::Utf8,
            Charset::Utf16,
            Charset::Utf16Be,
            Charset::Utf16Le,
        ] {
            assert_eq!(c.decode(&c.encode(s)), s);
        }
        assert_eq!(Charset::Latin1.decode(&[0x61, 0xE9]), "aé");
        assert!(Charset::Utf16.encode("").is_empty());
        assert!(Charset::parse("EBCDIC").is_err());
    }
}
