//! Fuzz target: see `weir::fuzz::json` for what it drives and its input layout.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::json(data));
