//! cargo-fuzz target `pblockdb_file`: the body is `pounds_fuzz_targets::pblockdb_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pounds_fuzz_targets::pblockdb_file(data));
