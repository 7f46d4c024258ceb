//! `deepspark score --jsonl`: a stream filter for batch engines (Spark's `RDD.pipe`, GNU
//! parallel, a shell pipe).
//!
//! Reads records in the schema of the training data from stdin, one JSON object per line,
//! and writes each back, in input order, with the model's scores added:
//! - a **hunk record** (`file`, `hunk_header`, `hunk`) gets `risk` and `logit`; the change
//!   features come from the run of consecutive records of the same `project` and
//!   `commit_id`, exactly as `eval` computes them when a commit's hunks are contiguous;
//! - a **commit record** (`diff`: `git show` text) gets `risk` and `logit` of the change,
//!   `p_clean`, `verdict`, `hunks` (scored) and `max_hunk_risk`, with `review`'s skip rules
//!   and thresholds; a truncated diff (`diff_truncated: true`) can never be LGTM.
//!
//! A line that cannot be scored becomes `{"line": N, "error": "..."}` and the stream goes
//! on. Records are scored in batches of a few hundred hunks, so memory stays constant
//! whatever the input length. Nothing but records reaches stdout, nothing at all reaches
//! stderr unless the run fails; no repository is read.

use super::settings::{Settings, model_files};
use crate::cli::{GateArgs, ScoreArgs};
use crate::config::Config;
use crate::diff::{FileDiff, FileStatus, Hunk, Skip, language_of, parse_patch};
use crate::model::device::device;
use crate::model::{HunkScore, RiskModel, ScoreInput, Scorer};
use crate::review::judge;
use crate::tokenize::ChangeStats;
use crate::{exit, skip};
use anyhow::{Context, Result};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::{BufRead, Write};

/// Hunks scored together: full length-sorted batches, little memory.
const BATCH_HUNKS: usize = 256;
/// Records held before a flush, whatever their hunk count.
const BATCH_RECORDS: usize = 256;
/// A run of one commit's hunk records longer than this is cut, and its change features
/// come from the part seen (a bound on memory; the training data's largest commits stay under it).
const MAX_RUN: usize = 4096;

/// The keys this filter adds; a record that already has one is rewritten without it.
const ADDED_KEYS: &[&str] = &["risk", "logit", "p_clean", "verdict", "hunks", "max_hunk_risk"];

pub fn run(args: ScoreArgs) -> Result<u8> {
    let (cfg, _) = Config::load(args.config.as_deref(), None)?;
    let gate = GateArgs {
        verdict: args.verdict.clone(),
        limits: args.limits.clone(),
        model: args.model.clone(),
        device: args.device,
        config: args.config.clone(),
        ..GateArgs::default()
    };
    let settings = Settings::resolve(&gate, &cfg)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    let mut filter = Filter::new(&settings, std::io::BufWriter::new(stdout));
    match filter.run(stdin) {
        Err(e) if is_broken_pipe(&e) => return Ok(exit::PASS),
        other => other?,
    }
    Ok(if filter.failed > 0 { exit::GATE } else { exit::PASS })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One input line, parsed and waiting for its batch to be scored.
enum Pending {
    Hunk {
        raw: String,
        record: Map<String, Value>,
        path: String,
        hunk: Hunk,
        /// Index of its run of same-commit records in `Filter::runs`.
        run: usize,
    },
    Commit {
        raw: String,
        record: Map<String, Value>,
        files: Vec<FileDiff>,
    },
    Error {
        line: usize,
        msg: String,
    },
}

/// Consecutive hunk records of one commit: their key and the change features they share.
struct Run {
    key: Option<(String, String)>,
    stats: ChangeStats,
    files: HashSet<String>,
}

struct Filter<'s, W: Write> {
    settings: &'s Settings,
    out: W,
    model: Option<RiskModel>,
    pending: Vec<Pending>,
    runs: Vec<Run>,
    /// The run the last line belonged to, if it was a hunk record: the next hunk record
    /// of the same commit continues it. Its records are always at the end of `pending`.
    open: Option<usize>,
    /// Hunks waiting in `pending`.
    hunks: usize,
    /// Lines that became error records.
    failed: usize,
}

impl<'s, W: Write> Filter<'s, W> {
    fn new(settings: &'s Settings, out: W) -> Self {
        Filter {
            settings,
            out,
            model: None,
            pending: Vec::new(),
            runs: Vec::new(),
            open: None,
            hunks: 0,
            failed: 0,
        }
    }

    fn run(&mut self, mut input: impl BufRead) -> Result<()> {
        let mut buf = Vec::new();
        let mut line = 0usize;
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf).context("cannot read stdin")? == 0 {
                break;
            }
            line += 1;
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim_end_matches(['\n', '\r']),
                Err(_) => {
                    self.push_error(line, "not UTF-8".into())?;
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            self.push(line, text)?;
        }
        self.open = None;
        self.flush_prefix(self.pending.len())?;
        self.out.flush().context("cannot write stdout")?;
        Ok(())
    }

    fn push_error(&mut self, line: usize, msg: String) -> Result<()> {
        self.open = None;
        self.pending.push(Pending::Error { line, msg });
        self.maybe_flush()
    }

    fn push(&mut self, line: usize, text: &str) -> Result<()> {
        let record = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return self.push_error(line, "not a JSON object".into()),
            Err(e) => return self.push_error(line, format!("not JSON: {e}")),
        };
        let str_field = |k: &str| record.get(k).and_then(Value::as_str);
        if let (Some(header), Some(body)) = (str_field("hunk_header"), str_field("hunk")) {
            let Some(path) = str_field("file").map(str::to_string) else {
                return self.push_error(line, "a hunk record needs a `file`".into());
            };
            let hunk = match Hunk::parse(header, body) {
                Ok(h) => h,
                Err(e) => return self.push_error(line, e.to_string()),
            };
            let key = str_field("commit_id").map(|c| (str_field("project").unwrap_or("").to_string(), c.to_string()));
            let run = self.run_for(key);
            let r = &mut self.runs[run];
            r.stats.hunks += 1;
            r.stats.added += hunk.added();
            r.files.insert(path.clone());
            self.hunks += 1;
            self.pending.push(Pending::Hunk {
                raw: text.to_string(),
                record,
                path,
                hunk,
                run,
            });
        } else if let Some(diff) = str_field("diff") {
            let mut files = files_of(diff);
            if record.get("diff_truncated").and_then(Value::as_bool) == Some(true) {
                files.push(truncated_marker(self.settings.rules.max_change_lines));
            }
            skip::apply(&mut files, &self.settings.rules);
            self.hunks += files
                .iter()
                .filter(|f| f.skip.is_none())
                .map(|f| f.hunks.len())
                .sum::<usize>();
            self.open = None;
            self.pending.push(Pending::Commit {
                raw: text.to_string(),
                record,
                files,
            });
        } else {
            return self.push_error(
                line,
                "neither a hunk record (file, hunk_header, hunk) nor a commit record (diff)".into(),
            );
        }
        self.maybe_flush()
    }

    /// The open run, when this hunk record continues it (same commit, not at its cap), else a new one.
    fn run_for(&mut self, key: Option<(String, String)>) -> usize {
        if let Some(r) = self.open
            && key.is_some()
            && self.runs[r].key == key
            && self.runs[r].stats.hunks < MAX_RUN
        {
            return r;
        }
        self.runs.push(Run {
            key,
            stats: ChangeStats::default(),
            files: HashSet::new(),
        });
        let r = self.runs.len() - 1;
        self.open = Some(r);
        r
    }

    /// When the batch is full, writes everything but the open run's records (their change
    /// features are not final yet). A batch that is all one open run waits for it to close,
    /// which it does within `MAX_RUN` records.
    fn maybe_flush(&mut self) -> Result<()> {
        if self.hunks < BATCH_HUNKS && self.pending.len() < BATCH_RECORDS {
            return Ok(());
        }
        let split = match self.open {
            Some(r) => self
                .pending
                .iter()
                .position(|p| matches!(p, Pending::Hunk { run, .. } if *run == r))
                .unwrap_or(self.pending.len()),
            None => self.pending.len(),
        };
        if split == 0 {
            return Ok(());
        }
        self.flush_prefix(split)
    }

    /// Scores the first `n` pending records and writes them out, in order; what stays is
    /// the open run's records, renumbered as run 0.
    fn flush_prefix(&mut self, n: usize) -> Result<()> {
        let rest = self.pending.split_off(n);
        let batch = std::mem::replace(&mut self.pending, rest);
        self.write(batch)?;
        let open = self.open.map(|r| self.runs.swap_remove(r));
        self.runs.clear();
        self.runs.extend(open);
        self.open = self.open.map(|_| 0);
        for p in &mut self.pending {
            if let Pending::Hunk { run, .. } = p {
                *run = 0;
            }
        }
        self.hunks = self.pending.len();
        Ok(())
    }

    fn write(&mut self, pending: Vec<Pending>) -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let stats_of = |r: &Run| ChangeStats {
            files: r.files.len(),
            ..r.stats
        };
        let mut inputs: Vec<ScoreInput> = Vec::new();
        for p in &pending {
            match p {
                Pending::Hunk { path, hunk, run, .. } => inputs.push(ScoreInput {
                    path,
                    hunk,
                    change: stats_of(&self.runs[*run]),
                }),
                Pending::Commit { files, .. } => {
                    let change = ChangeStats::of(files);
                    for f in files.iter().filter(|f| f.skip.is_none()) {
                        inputs.extend(f.hunks.iter().map(|h| ScoreInput {
                            path: f.display_path(),
                            hunk: h,
                            change,
                        }));
                    }
                }
                Pending::Error { .. } => {}
            }
        }
        if self.model.is_none() && !inputs.is_empty() {
            self.model = Some(RiskModel::load(
                &model_files(self.settings.model.as_deref())?,
                &device(self.settings.device)?,
            )?);
        }
        // Logits only, as `eval` computes them: a stream has no use for per-line attribution.
        let scores: Vec<HunkScore> = match &self.model {
            Some(m) if !inputs.is_empty() => m
                .logits(&m.encode(&inputs)?)?
                .into_iter()
                .map(|logit| HunkScore {
                    risk: m.config.calibration.apply(logit),
                    logit,
                    line_weights: Vec::new(),
                    pair_logit: None,
                })
                .collect(),
            _ => Vec::new(),
        };
        drop(inputs);
        let mut scores = scores.into_iter();
        for p in pending {
            let line = match p {
                Pending::Hunk { raw, record, .. } => {
                    let s = scores.next().expect("one score per hunk input");
                    with_fields(&raw, record, [("risk", num(s.risk)), ("logit", num(s.logit))])
                }
                Pending::Commit { raw, record, files } => {
                    let per_file = super::scoring::split_by_file(&files, &mut scores);
                    let all: Vec<HunkScore> = per_file.iter().flatten().cloned().collect();
                    let risk = match &self.model {
                        Some(m) if !all.is_empty() => m.change_risk(&all)?,
                        _ => 0.0,
                    };
                    let max = all.iter().map(|s| s.risk).fold(0f32, f32::max);
                    let n = all.len();
                    let review = judge(files, per_file, risk as f64, self.settings.thresholds, None);
                    let p = risk.clamp(1e-7, 1.0 - 1e-7);
                    with_fields(
                        &raw,
                        record,
                        [
                            ("risk", num(risk)),
                            ("logit", num((p / (1.0 - p)).ln())),
                            ("p_clean", Value::from(review.p_clean)),
                            ("verdict", serde_json::to_value(review.verdict)?),
                            ("hunks", Value::from(n)),
                            ("max_hunk_risk", num(max)),
                        ],
                    )
                }
                Pending::Error { line, msg } => {
                    self.failed += 1;
                    serde_json::json!({ "line": line, "error": msg }).to_string()
                }
            };
            writeln!(self.out, "{line}").context("cannot write stdout")?;
        }
        self.out.flush().context("cannot write stdout")?;
        Ok(())
    }
}

/// An `f32` as JSON, written with the digits that identify it as an `f32` (`0.30308649`,
/// not the `f64` expansion `0.3030864894390106`).
fn num(v: f32) -> Value {
    format!("{v}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// The input line with the fields appended, byte for byte otherwise; a record that already
/// carries one of the added keys is re-serialised without the old values.
fn with_fields<const N: usize>(raw: &str, mut record: Map<String, Value>, fields: [(&str, Value); N]) -> String {
    let trimmed = raw.trim_end();
    let mut out = String::with_capacity(raw.len() + 96);
    if ADDED_KEYS.iter().any(|k| record.contains_key(*k)) || !trimmed.ends_with('}') {
        for k in ADDED_KEYS {
            record.remove(*k);
        }
        let body = Value::Object(record).to_string();
        out.push_str(&body[..body.len() - 1]);
        if body.len() > 2 {
            out.push(',');
        }
    } else {
        out.push_str(&trimmed[..trimmed.len() - 1]);
        // An object with at least one field (a record always has several) gets a comma.
        if !record.is_empty() {
            out.push(',');
        }
    }
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// The files of a `git show` text as the review sees them (no modes, renames by path).
fn files_of(diff: &str) -> Vec<FileDiff> {
    parse_patch(diff)
        .into_iter()
        .map(|p| {
            let status = match (&p.path.old, &p.path.new) {
                (None, Some(_)) => FileStatus::Added,
                (Some(_), None) => FileStatus::Deleted,
                (Some(a), Some(b)) if a != b => FileStatus::Renamed,
                _ => FileStatus::Modified,
            };
            let shown = p.path.new.clone().or(p.path.old.clone()).unwrap_or_default();
            FileDiff {
                language: language_of(&shown),
                path: p.path,
                status,
                mode: Default::default(),
                hunks: p.hunks,
                skip: None,
            }
        })
        .collect()
}

/// Stands for the part of a change cut off the record: not reviewed, so never LGTM.
fn truncated_marker(limit: usize) -> FileDiff {
    FileDiff {
        path: Default::default(),
        status: FileStatus::Modified,
        mode: Default::default(),
        language: None,
        hunks: Vec::new(),
        skip: Some(Skip::ChangeTooLarge { limit }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_appended_to_the_line_as_it_was() {
        let raw = r#"{"b":1, "a":"x"}"#;
        let rec: Map<String, Value> = serde_json::from_str(raw).expect("test json");
        assert_eq!(
            with_fields(raw, rec, [("risk", Value::from(0.5))]),
            r#"{"b":1, "a":"x","risk":0.5}"#
        );
    }

    #[test]
    fn an_old_score_is_replaced_not_duplicated() {
        let raw = r#"{"risk":0.9,"a":1}"#;
        let rec: Map<String, Value> = serde_json::from_str(raw).expect("test json");
        let out = with_fields(raw, rec, [("risk", Value::from(0.25))]);
        assert_eq!(out, r#"{"a":1,"risk":0.25}"#);
    }
}
