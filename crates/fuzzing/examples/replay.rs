//! Runs one target on the given files and prints whether each was
//! accepted: `TESSERA_FUZZING_TRACE=1 cargo run -p tessera-fuzzing
//! --example replay -- oauth_forms FILE...` shows what an input reaches.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("a target name, then files");
    for file in args {
        let data = std::fs::read(&file).expect("a readable file");
        match tessera_fuzzing::run(&target, &data) {
            Some(accepted) => println!("{file}: {}", if accepted { "accepted" } else { "refused" }),
            None => panic!(
                "unknown target {target} (known: {:?})",
                tessera_fuzzing::TARGETS
            ),
        }
    }
}
