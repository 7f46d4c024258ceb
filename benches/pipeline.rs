//! Benchmarks of each pipeline stage on fixtures built here: a temporary repository with
//! one commit changing 50, 500 or 5,000 lines. Run with `cargo bench`.
//! `syntax_read` is the syntax stage's cost (reading both sides and parsing them); the
//! end-to-end review includes it.
//!
//! The model benchmarks use the embedded default model (weights/). The model's FLOP
//! count per hunk is printed first so GFLOP/s can be read off hunks/s.

use deepspark::commands::{scoring, settings};
use deepspark::git;
use deepspark::model::weights::ModelFiles;
use deepspark::model::{RiskModel, ScoreInput};
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use std::sync::OnceLock;

const SIZES: [usize; 3] = [50, 500, 5000];

struct Fixture {
    dir: tempfile::TempDir,
}

/// A repository whose last commit changes about `lines` lines across files of 50 lines.
fn fixture(lines: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let sig = git2::Signature::new("b", "b@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let files = lines.div_ceil(50);
    let write = |version: usize| {
        for f in 0..files {
            let body: String = (0..50)
                .map(|i| {
                    if version == 1 && i % 2 == 0 {
                        format!("    let value_{i} = compute({f}, {i}).unwrap_or_default(); // changed\n")
                    } else {
                        format!("    let value_{i} = compute({f}, {i});\n")
                    }
                })
                .collect();
            std::fs::write(dir.path().join(format!("f{f}.rs")), format!("fn f{f}() {{\n{body}}}\n")).unwrap();
        }
    };
    let commit = |msg: &str| {
        let mut index = repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let parents: Vec<git2::Commit> = repo
            .head()
            .ok()
            .map(|h| h.peel_to_commit().unwrap())
            .into_iter()
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs).unwrap();
    };
    write(0);
    commit("base");
    write(1);
    commit("change");
    drop(repo);
    Fixture { dir }
}

/// Opens the repository and reads the last commit's change, as `review HEAD~1..HEAD` does.
fn change(fx: &Fixture) -> git::Change {
    let repo = git::open(Some(fx.dir.path())).unwrap();
    let req = git::Request {
        revs: vec!["HEAD~1..HEAD".into()],
        context: 3,
        ..Default::default()
    };
    git::diff(&repo, &req).unwrap()
}

fn model() -> &'static RiskModel {
    static M: OnceLock<RiskModel> = OnceLock::new();
    M.get_or_init(|| {
        let files = ModelFiles::embedded().expect("benchmarks need the embedded model in weights/");
        RiskModel::load(&files, &candle_core::Device::Cpu).unwrap()
    })
}

/// Every hunk of the change, as the review scores them.
fn inputs(c: &git::Change) -> Vec<ScoreInput<'_>> {
    let change = deepspark::tokenize::ChangeStats::of(&c.files);
    c.files
        .iter()
        .flat_map(|f| {
            f.hunks.iter().map(move |h| ScoreInput {
                path: f.display_path(),
                hunk: h,
                change,
            })
        })
        .collect()
}

fn main() {
    deepspark::model::kernels::tune_allocator();
    let m = model();
    let fx = fixture(500);
    let c = change(&fx);
    let enc = m.encode(&inputs(&c)).unwrap();
    let mean_len = enc.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / enc.len() as f64;
    eprintln!(
        "model: {} parameters; {:.1} MFLOP per hunk at the fixture's mean length of {mean_len:.0} tokens \
         (GFLOP/s = hunks/s x this / 1000); {} hunks in the 500-line fixture",
        m.config.param_count(),
        m.config.flops(mean_len.round() as usize) / 1e6,
        enc.len()
    );
    divan::main();
}

#[divan::bench(args = SIZES, sample_count = 20)]
fn git_read_hunks(b: Bencher, lines: usize) {
    let fx = fixture(lines);
    b.bench(|| black_box(change(&fx)));
}

#[divan::bench(args = SIZES, sample_count = 20)]
fn tokenize(b: Bencher, lines: usize) {
    let fx = fixture(lines);
    let c = change(&fx);
    let inputs = inputs(&c);
    b.counter(ItemsCount::new(inputs.len()))
        .bench(|| black_box(model().encode(&inputs).unwrap()));
}

#[divan::bench(args = [1, 32, 256], sample_count = 20)]
fn model_forward(b: Bencher, hunks: usize) {
    let fx = fixture(5000);
    let c = change(&fx);
    let inputs: Vec<ScoreInput> = inputs(&c).into_iter().cycle().take(hunks).collect();
    let enc = model().encode(&inputs).unwrap();
    b.counter(ItemsCount::new(hunks))
        .bench(|| black_box(model().forward_encoded(&enc).unwrap()));
}

/// The wide path alone, over already-encoded hunks (the transformer's share excluded).
#[divan::bench(args = [256], sample_count = 20)]
fn wide_path(b: Bencher, hunks: usize) {
    let fx = fixture(5000);
    let c = change(&fx);
    let inputs: Vec<ScoreInput> = inputs(&c).into_iter().cycle().take(hunks).collect();
    let enc = model().encode(&inputs).unwrap();
    let Some(wide) = &model().wide else {
        eprintln!("wide_path: the embedded model has no wide path");
        return;
    };
    b.counter(ItemsCount::new(hunks))
        .bench(|| black_box(enc.iter().map(|e| wide.logit(e)).sum::<f32>()));
}

/// git -> skip -> tokens -> model (loaded from the embedded bytes each time) -> verdict.
#[divan::bench(args = SIZES, sample_count = 10)]
fn review_end_to_end(b: Bencher, lines: usize) {
    let fx = fixture(lines);
    let gate = deepspark::cli::GateArgs {
        device: deepspark::model::device::DeviceChoice::Cpu,
        ..Default::default()
    };
    let settings = settings::Settings::resolve(&gate, &Default::default()).unwrap();
    let repo = git::open(Some(fx.dir.path())).unwrap();
    b.bench_local(|| {
        let c = change(&fx);
        let sides = git::Sides {
            old_tree: c.old_tree,
            old_commit: c.old_commit,
            new: c.new_side,
        };
        black_box(
            scoring::score_files(&repo, sides, c.files, &settings)
                .unwrap()
                .0
                .p_clean,
        )
    });
}

/// The syntax stage: both sides of every changed file read from git and parsed by its
/// grammar (here Rust), each hunk's kind and context found.
#[divan::bench(args = SIZES, sample_count = 20)]
fn syntax_read(b: Bencher, lines: usize) {
    let fx = fixture(lines);
    let repo = git::open(Some(fx.dir.path())).unwrap();
    let c = change(&fx);
    let sides = git::Sides {
        old_tree: c.old_tree,
        old_commit: c.old_commit,
        new: c.new_side,
    };
    b.counter(ItemsCount::new(c.files.len())).bench_local(|| {
        let texts = sides.texts(&repo, &c.files, deepspark::syntax::wants_text).unwrap();
        black_box(deepspark::syntax::read(&c.files, &texts))
    });
}

/// The suggestion generator on one 10-line hunk, given no file (names from the hunk only) or
/// a file of 500 or 5,000 lines (its names are also tried): the cost of reading the file.
#[divan::bench(args = [0, 500, 5000], sample_count = 20)]
fn generator_propose(b: Bencher, file_lines: usize) {
    use deepspark::model::Generator;
    let Some(generator) = settings::generator(None).unwrap() else {
        eprintln!("generator_propose: this build embeds no generator");
        return;
    };
    let body: String = (0..10)
        .map(|i| format!("+    let total_{i} = compute_len(items[{i}], &config) + offset;\n"))
        .collect();
    let hunk = deepspark::diff::Hunk::parse("@@ -1,0 +1,10 @@", &body).unwrap();
    let file: String = (0..file_lines)
        .map(|i| {
            format!(
                "    let value_{} = compute_{}(item_{}, &config_{});\n",
                i,
                i % 97,
                i % 13,
                i % 7
            )
        })
        .collect();
    let file = (file_lines > 0).then_some(file.as_str());
    b.bench(|| black_box(generator.propose(&hunk, file, 5).unwrap().len()));
}
