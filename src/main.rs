//! deepspark's entry point: parse the command line, run the subcommand, map the outcome
//! to an exit code (see `exit.rs`), print an error once with a hint, sanitised.

use clap::Parser;
use deepspark::render::sanitize::clean;
use deepspark::{cli, commands, exit};
use std::process::ExitCode;

fn main() -> ExitCode {
    deepspark::model::kernels::pin_thread_count();
    deepspark::model::kernels::tune_allocator();
    deepspark::git::trust_object_ids();
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Review(a) => commands::review::run(a),
        cli::Command::Train(a) => commands::train::run(a),
        cli::Command::Eval(a) => commands::eval::run(a),
        cli::Command::EvalSuggest(a) => commands::eval_suggest::run(a),
        cli::Command::EvalPairs(a) => commands::eval_pairs::run(a),
        cli::Command::Fix(a) => commands::fix::run(a),
        cli::Command::Scan(a) => commands::scan::run(a),
        cli::Command::Score(a) => commands::score::run(a),
        cli::Command::Mine(a) => commands::mine::run(a),
        cli::Command::Learn(a) => commands::learn::run(a),
        cli::Command::Dismiss(a) => commands::dismiss::run(a),
        cli::Command::Hook(c) => commands::hook::run(c),
        cli::Command::Completions(a) => commands::completions::run(a),
        cli::Command::Man(a) => commands::man::run(a),
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
            // The one place errors reach the terminal, so the one place they are sanitised:
            // the stages report paths, revisions and model text raw.
            eprintln!("deepspark: error: {}", clean(&format!("{err:#}")));
            if let Some(hint) = commands::hint(&err) {
                eprintln!("hint: {}", clean(&hint));
            }
            ExitCode::from(exit::ERROR)
        }
    }
}
