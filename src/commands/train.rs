//! `deepspark train`: fit the risk model on labelled changes (see `train.rs`).

use crate::cli::TrainArgs;
use crate::model::device::device;
use crate::train::{TrainOptions, train};
use anyhow::Result;

pub fn run(args: TrainArgs) -> Result<u8> {
    let dev = device(args.device)?;
    let opts = TrainOptions {
        data: args.data,
        out: args.out.clone(),
        epochs: args.epochs,
        seed: args.seed,
        d_model: args.d_model,
        n_layers: args.layers,
        n_heads: args.heads,
        d_ff: args.d_ff,
        max_len: args.max_len,
        vocab: args.vocab,
        batch: args.batch,
        lr: args.lr,
        weight_decay: args.weight_decay,
        dropout: args.dropout,
        holdout: args.holdout,
        max_train: args.max_train,
        resume: args.resume,
        checkpoint_every: args.checkpoint_every.max(1),
        change_features: !args.hunk_features_only,
    };
    let report = train(&opts, &dev)?;
    super::eval::print_text(&report, &mut std::io::stdout())?;
    eprintln!("deepspark: model written to {}", args.out.display());
    Ok(crate::exit::PASS)
}
