#![no_main]

// The key-file loader needs no running service: no init.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzzing::key_file(data);
});
