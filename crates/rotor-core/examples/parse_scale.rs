//! Times `Config::parse` over a large inventory (issue 14.2): the same file
//! `scripts/bench-scale` generates, `SECRETS` random secrets (default 10000). Prints the
//! median and the fastest of `RUNS` parses (default 15); asserts nothing.
//!
//!     cargo run --release -p rotor-core --example parse_scale [SECRETS] [RUNS]

use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let mut text = String::from(
        "[store]\npath = \"rotor.db\"\nmaster_key_file = \"rotor.key\"\n\n[server]\nlisten = \"127.0.0.1:0\"\npublic = [\"health\", \"metrics\"]\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[secrets.secret-{i:05}]\nkind = \"random\"\ntier = \"high\"\ngrace = \"0s\"\n"
        ));
    }
    let env = |_: &str| None;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let config = rotor_core::config::parse(&text, Path::new("/tmp/rotor.toml"), &env);
        times.push(start.elapsed());
        match config {
            Ok(c) => assert_eq!(c.secrets.len(), n),
            Err(e) => panic!("{e}"),
        }
    }
    times.sort();
    println!(
        "{n} secrets, {} KB: parse median {:.1} ms, fastest {:.1} ms ({runs} runs)",
        text.len() / 1024,
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    );
}
