//! cargo-fuzz target `stream_model`: the body is `pounds_fuzz_targets::stream_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pounds_fuzz_targets::stream_model(data));
