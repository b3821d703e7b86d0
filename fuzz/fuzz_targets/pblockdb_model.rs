//! cargo-fuzz target `pblockdb_model`: the body is `pounds_fuzz_targets::pblockdb_model`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pounds_fuzz_targets::pblockdb_model(data));
