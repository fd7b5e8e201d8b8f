#![no_main]

libfuzzer_sys::fuzz_target!(
    init: tessera::fuzzing::init(),
    |data: &[u8]| {
        tessera::fuzzing::key_file(data);
    }
);
