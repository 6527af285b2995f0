//! Fuzz target: see `weir::fuzz::kafka_record` for what it drives and its input layout.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::kafka_record(data));
