//! deepspark's entry point: parse the command line, run the subcommand, map the outcome
//! to an exit code (see `exit.rs`), print an error once with a hint.

use clap::Parser;
use deepspark::{cli, commands, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    deepspark::lm::default_quantized_threads();
    deepspark::model::kernels::tune_allocator();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Review(a) => commands::review::run(a),
        cli::Command::Train(a) => commands::train::run(a),
        cli::Command::Eval(a) => commands::eval::run(a),
        cli::Command::EvalSuggest(a) => commands::eval_suggest::run(a),
        cli::Command::Scan(a) => commands::scan::run(a),
        cli::Command::Hook(c) => commands::hook::run(c),
        cli::Command::Model(c) => commands::model::run(c),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::from(exit::ERROR);
            }
            eprintln!("deepspark: error: {err:#}");
            if let Some(hint) = commands::hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(exit::ERROR)
        }
    }
}
