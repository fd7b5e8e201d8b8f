#![no_main]

libfuzzer_sys::fuzz_target!(
    init: tessera_fuzzing::init(),
    |data: &[u8]| {
        tessera_fuzzing::bearer_token(data);
    }
);
