//! cargo-fuzz target `plog_file`: the body is `pounds_fuzz_targets::plog_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pounds_fuzz_targets::plog_file(data));
