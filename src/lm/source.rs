//! Where a language model's weights are: `--lm SPEC` resolved to a GGUF file on disk.
//!
//! A SPEC is one of
//! - a path to a `.gguf` file;
//! - `ollama:NAME[:TAG]`: Ollama's store (`$OLLAMA_MODELS`, else `~/.ollama/models`), the
//!   manifest `manifests/registry.ollama.ai/library/NAME/TAG` (TAG `latest` by default)
//!   naming the blob of its `application/vnd.ollama.image.model` layer, read in place;
//! - `ORG/NAME[@REVISION][:FILE]`: a Hugging Face model repository holding GGUF files or
//!   safetensors weights (the snapshot folder is the model then), looked
//!   up in the hub cache Python's client writes (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//!   `~/.cache/huggingface/hub`: `models--ORG--NAME/snapshots/<sha>/FILE`, the revision
//!   through `refs/<name>`, or the only or newest snapshot when the cache has no refs),
//!   and downloaded into it only when allowed (the `hub` feature, not offline).
//!
//! Offline (`HF_HUB_OFFLINE=1` or `--offline`) nothing touches the network: a missing file
//! is named with the command that fetches it. This module reads directories and manifests;
//! it does not open the weights (`model/` does).

use std::path::{Path, PathBuf};

/// Where to look, from the environment (or set by tests).
#[derive(Debug, Clone, Default)]
pub struct Stores {
    /// The Hugging Face hub cache root (holding `models--ORG--NAME`).
    pub hf_cache: Option<PathBuf>,
    /// Ollama's models folder (holding `manifests/` and `blobs/`).
    pub ollama: Option<PathBuf>,
    /// Never use the network.
    pub offline: bool,
}

impl Stores {
    /// The stores as the process environment names them, like the Hugging Face and Ollama
    /// clients read them.
    pub fn from_env(offline: bool) -> Stores {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME");
        let hf_cache = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface/hub")))
            .or_else(|| home.as_ref().map(|h| h.join(".cache/huggingface/hub")));
        let ollama = var("OLLAMA_MODELS").or_else(|| home.as_ref().map(|h| h.join(".ollama/models")));
        let env_offline =
            std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "yes"));
        Stores {
            hf_cache,
            ollama,
            offline: offline || env_offline,
        }
    }
}

/// What a SPEC names, before it is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    File(PathBuf),
    Ollama {
        name: String,
        tag: String,
    },
    Hub {
        repo: String,
        revision: Option<String>,
        file: Option<String>,
    },
}

/// A SPEC found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    /// Where it came from, for reports: "file", "ollama", or "huggingface@<sha>".
    pub origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("`{0}` is not a model: give a .gguf path, ollama:NAME[:TAG] or ORG/NAME[@REVISION][:FILE]")]
    BadSpec(String),
    #[error("{0} does not exist")]
    NoFile(PathBuf),
    #[error("Ollama has no model {name}:{tag} (no manifest {manifest})")]
    NoOllamaModel {
        name: String,
        tag: String,
        manifest: PathBuf,
    },
    #[error("the Ollama manifest {0} is not valid: {1}")]
    BadManifest(PathBuf, String),
    #[error("{what} is not in the Hugging Face cache ({cache}){offline}")]
    NotCached {
        what: String,
        cache: String,
        offline: &'static str,
        fetch: String,
    },
    #[error("{repo} has several GGUF files ({files}); name one: {repo}:FILE")]
    Ambiguous { repo: String, files: String },
    #[error("{0} holds no GGUF file and no safetensors model (config.json and *.safetensors)")]
    NoGguf(String),
    #[error("cannot read {0}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("download failed: {0}")]
    Download(String),
}

impl SourceError {
    /// What to run to fetch what is missing, when something is.
    pub fn fetch_hint(&self) -> Option<&str> {
        match self {
            SourceError::NotCached { fetch, .. } => Some(fetch),
            _ => None,
        }
    }
}

impl Spec {
    pub fn parse(spec: &str) -> Result<Spec, SourceError> {
        let bad = || SourceError::BadSpec(spec.to_string());
        if let Some(rest) = spec.strip_prefix("ollama:") {
            let (name, tag) = rest.split_once(':').unwrap_or((rest, "latest"));
            if !safe_segments(name, 2) || !safe_segments(tag, 1) {
                return Err(bad());
            }
            return Ok(Spec::Ollama {
                name: name.into(),
                tag: tag.into(),
            });
        }
        let path = Path::new(spec);
        let plain_path = spec.ends_with(".gguf") && !spec.contains(':') && !spec.contains('@');
        if path.exists() || plain_path || spec.starts_with('.') || spec.starts_with('/') {
            return Ok(Spec::File(path.to_path_buf()));
        }
        let (rest, file) = match spec.split_once(':') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (spec, None),
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((r, v)) => (r, Some(v.to_string())),
            None => (rest, None),
        };
        let file_ok = file
            .as_deref()
            .is_none_or(|f| !f.is_empty() && f.split('/').all(|s| safe_segments(s, 1)));
        let revision_ok = revision.as_deref().is_none_or(|r| safe_segments(r, 1));
        if repo.split('/').count() != 2 || !safe_segments(repo, 2) || !file_ok || !revision_ok {
            return Err(bad());
        }
        Ok(Spec::Hub {
            repo: repo.into(),
            revision,
            file,
        })
    }
}

/// `s` is 1 to `max` '/'-separated names, none empty, `.` or `..`, all of safe characters.
fn safe_segments(s: &str, max: usize) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() <= max
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Finds the GGUF file `spec` names, downloading it only when `stores` allows.
pub fn resolve(spec: &str, stores: &Stores) -> Result<Resolved, SourceError> {
    match Spec::parse(spec)? {
        Spec::File(path) => {
            if !path.is_file() && !super::hf::is_model_dir(&path) {
                return Err(SourceError::NoFile(path));
            }
            Ok(Resolved {
                path,
                origin: "file".into(),
            })
        }
        Spec::Ollama { name, tag } => ollama(stores, &name, &tag),
        Spec::Hub { repo, revision, file } => hub(stores, &repo, revision.as_deref(), file.as_deref()),
    }
}

fn ollama(stores: &Stores, name: &str, tag: &str) -> Result<Resolved, SourceError> {
    let root = stores.ollama.clone().unwrap_or_else(|| PathBuf::from(".ollama/models"));
    let namespaced = if name.contains('/') {
        name.to_string()
    } else {
        format!("library/{name}")
    };
    let manifest = root.join("manifests/registry.ollama.ai").join(namespaced).join(tag);
    let text = match std::fs::read_to_string(&manifest) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SourceError::NoOllamaModel {
                name: name.into(),
                tag: tag.into(),
                manifest,
            });
        }
        Err(e) => return Err(SourceError::Io(manifest, e)),
    };
    let bad = |why: &str| SourceError::BadManifest(manifest.clone(), why.into());
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let layers = json
        .get("layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| bad("no layers"))?;
    let digest = layers
        .iter()
        .find(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some("application/vnd.ollama.image.model"))
        .and_then(|l| l.get("digest"))
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("no layer of type application/vnd.ollama.image.model"))?;
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| bad("the model digest is not sha256"))?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("the model digest is not 64 hex digits"));
    }
    let path = root.join("blobs").join(format!("sha256-{hex}"));
    if !path.is_file() {
        return Err(SourceError::NoFile(path));
    }
    Ok(Resolved {
        path,
        origin: format!("ollama {name}:{tag}"),
    })
}

/// `models--ORG--NAME` under the cache root.
fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The snapshot folder a revision names in a cached repository, if it is there.
fn snapshot(dir: &Path, revision: Option<&str>) -> Option<PathBuf> {
    let snapshots = dir.join("snapshots");
    if let Some(rev) = revision.filter(|r| is_sha(r)) {
        let s = snapshots.join(rev);
        return s.is_dir().then_some(s);
    }
    let name = revision.unwrap_or("main");
    if let Ok(sha) = std::fs::read_to_string(dir.join("refs").join(name)) {
        let s = snapshots.join(sha.trim());
        if is_sha(sha.trim()) && s.is_dir() {
            return Some(s);
        }
    }
    if revision.is_some() {
        return None;
    }
    // A cache written without refs (copied, or by another tool): the newest snapshot.
    let entries = std::fs::read_dir(&snapshots).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// A snapshot holding a whole safetensors model: its config, tokenizer and weights (one
/// file or an index of shards).
fn safetensors_model(dir: &Path) -> bool {
    super::hf::is_model_dir(dir)
        && dir.join(super::hf::TOKENIZER).is_file()
        && (dir.join("model.safetensors").is_file() || dir.join("model.safetensors.index.json").is_file())
}

/// The bytes of a snapshot's safetensors weights.
fn safetensors_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn ggufs(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn hub(stores: &Stores, repo: &str, revision: Option<&str>, file: Option<&str>) -> Result<Resolved, SourceError> {
    let cache = stores
        .hf_cache
        .clone()
        .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
    let dir = repo_dir(&cache, repo);
    let at = revision.map(|r| format!("@{r}")).unwrap_or_default();
    if let Some(snap) = snapshot(&dir, revision) {
        let sha = snap
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = format!("huggingface {repo}@{sha}");
        match file {
            Some(f) if snap.join(f).is_file() => {
                return Ok(Resolved {
                    path: snap.join(f),
                    origin,
                });
            }
            Some(_) => {}
            None => {
                let found = ggufs(&snap);
                match found.as_slice() {
                    [one] => {
                        return Ok(Resolved {
                            path: snap.join(one),
                            origin,
                        });
                    }
                    [] if safetensors_model(&snap) => {
                        return Ok(Resolved { path: snap, origin });
                    }
                    [] if snap.join("model.safetensors").exists() || snap.join("config.json").exists() => {
                        return Err(SourceError::NoGguf(format!("{repo}{at}")));
                    }
                    [] => {}
                    many => {
                        return Err(SourceError::Ambiguous {
                            repo: repo.into(),
                            files: many.join(", "),
                        });
                    }
                }
            }
        }
    }
    let what = match file {
        Some(f) => format!("{repo}{at}:{f}"),
        None => format!("{repo}{at}"),
    };
    let rev = revision.map(|r| format!(" --revision {r}")).unwrap_or_default();
    let python = match file {
        Some(f) => format!("huggingface-cli download {repo} {f}{rev}"),
        None => format!("huggingface-cli download {repo} --include '*.gguf' '*.json' '*.safetensors'{rev}"),
    };
    let ours = format!("deepspark model pull {what}");
    // A build without the downloader points at Python's client first.
    let fetch = if cfg!(feature = "hub") {
        format!("fetch it with `{ours}` (or `{python}`)")
    } else {
        format!("fetch it with `{python}` (or, in a build with `--features hub`, `{ours}`)")
    };
    let not_cached = |offline| SourceError::NotCached {
        what: what.clone(),
        cache: cache.display().to_string(),
        offline,
        fetch: fetch.clone(),
    };
    if stores.offline {
        return Err(not_cached("; offline, so it is not downloaded"));
    }
    download(&cache, repo, revision, file).map_err(|e| match e {
        None => not_cached("; this build cannot download (build with `--features hub`)"),
        Some(e) => e,
    })
}

/// Downloads what a repository's model needs into the cache, with a progress bar on stderr:
/// the file named, else its only GGUF file, else its safetensors model (config, tokenizer
/// files and weights). `Err(None)` when this build has no downloader.
#[cfg(feature = "hub")]
fn download(
    cache: &Path,
    repo: &str,
    revision: Option<&str>,
    file: Option<&str>,
) -> Result<Resolved, Option<SourceError>> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};
    let fail = |e: &dyn std::fmt::Display| Some(SourceError::Download(e.to_string()));
    let api = ApiBuilder::new()
        .with_cache_dir(cache.to_path_buf())
        .build()
        .map_err(|e| fail(&e))?;
    let revision = revision.unwrap_or("main").to_string();
    let remote = api.repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision));
    let get = |f: &str| remote.download_with_progress(f, Bar(None)).map_err(|e| fail(&e));
    if let Some(f) = file {
        return Ok(Resolved {
            path: get(f)?,
            origin: format!("huggingface {repo}"),
        });
    }
    let info = remote.info().map_err(|e| fail(&e))?;
    let names: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let gguf: Vec<&String> = names
        .iter()
        .filter(|n| n.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    match gguf.as_slice() {
        [one] => {
            return Ok(Resolved {
                path: get(one)?,
                origin: format!("huggingface {repo}"),
            });
        }
        [] => {}
        many => {
            return Err(Some(SourceError::Ambiguous {
                repo: repo.into(),
                files: many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            }));
        }
    }
    let wanted = |n: &str| {
        !n.contains('/')
            && (matches!(
                n,
                "config.json" | "tokenizer.json" | "tokenizer_config.json" | "model.safetensors.index.json"
            ) || n.ends_with(".safetensors"))
    };
    let files: Vec<&String> = names.iter().filter(|n| wanted(n)).collect();
    let has = |f: &str| files.iter().any(|n| *n == f);
    if !has("config.json") || !has("tokenizer.json") || !files.iter().any(|n| n.ends_with(".safetensors")) {
        return Err(Some(SourceError::NoGguf(repo.to_string())));
    }
    let mut dir = None;
    for f in files {
        let path = get(f)?;
        dir = path.parent().map(Path::to_path_buf);
    }
    Ok(Resolved {
        path: dir.ok_or_else(|| fail(&"nothing was downloaded"))?,
        origin: format!("huggingface {repo}"),
    })
}

#[cfg(not(feature = "hub"))]
fn download(_: &Path, _: &str, _: Option<&str>, _: Option<&str>) -> Result<Resolved, Option<SourceError>> {
    Err(None)
}

/// hf-hub's progress callbacks drawn with indicatif on stderr (hidden when it is not a terminal).
#[cfg(feature = "hub")]
struct Bar(Option<indicatif::ProgressBar>);

#[cfg(feature = "hub")]
impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        let bar = indicatif::ProgressBar::new(size as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style);
        }
        bar.set_message(crate::render::sanitize::clean(filename).into_owned());
        self.0 = Some(bar);
    }
    fn update(&mut self, size: usize) {
        if let Some(b) = &self.0 {
            b.inc(size as u64);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.0.take() {
            b.finish_and_clear();
        }
    }
}

/// One model found in a store, for `deepspark model list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The SPEC that loads it.
    pub spec: String,
    pub bytes: u64,
    /// The snapshot's commit or Ollama's tag.
    pub revision: String,
    pub path: PathBuf,
}

/// The GGUF files and safetensors models in the Hugging Face cache, and Ollama's models.
pub fn list(stores: &Stores) -> Vec<Listed> {
    let mut out = Vec::new();
    if let Some(cache) = &stores.hf_cache
        && let Ok(rd) = std::fs::read_dir(cache)
    {
        let mut repos: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        repos.sort();
        for dir in repos {
            let Some(name) = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("models--"))
            else {
                continue;
            };
            let repo = name.replacen("--", "/", 1);
            let Ok(snaps) = std::fs::read_dir(dir.join("snapshots")) else {
                continue;
            };
            let mut snaps: Vec<PathBuf> = snaps.filter_map(Result::ok).map(|e| e.path()).collect();
            snaps.sort();
            for snap in snaps {
                let sha = snap
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if ggufs(&snap).is_empty() && safetensors_model(&snap) {
                    out.push(Listed {
                        spec: format!("{repo}@{sha}"),
                        bytes: safetensors_bytes(&snap),
                        revision: sha.clone(),
                        path: snap.clone(),
                    });
                }
                for f in ggufs(&snap) {
                    let path = snap.join(&f);
                    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    out.push(Listed {
                        spec: format!("{repo}:{f}"),
                        bytes,
                        revision: sha.clone(),
                        path,
                    });
                }
            }
        }
    }
    if let Some(root) = &stores.ollama {
        let manifests = root.join("manifests/registry.ollama.ai");
        for (namespace, name, tag) in ollama_manifests(&manifests) {
            let spec_name = if namespace == "library" {
                name.clone()
            } else {
                format!("{namespace}/{name}")
            };
            if let Ok(r) = ollama(stores, &spec_name, &tag) {
                let bytes = std::fs::metadata(&r.path).map(|m| m.len()).unwrap_or(0);
                out.push(Listed {
                    spec: format!("ollama:{spec_name}:{tag}"),
                    bytes,
                    revision: tag,
                    path: r.path,
                });
            }
        }
    }
    out
}

fn ollama_manifests(root: &Path) -> Vec<(String, String, String)> {
    let names = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for ns in names(root) {
        for name in names(&root.join(&ns)) {
            for tag in names(&root.join(&ns).join(&name)) {
                out.push((ns.clone(), name.clone(), tag));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
    const OLD: &str = "89abcdef0123456789abcdef0123456789abcdef";

    fn stores(dir: &Path) -> Stores {
        Stores {
            hf_cache: Some(dir.join("hub")),
            ollama: Some(dir.join("ollama")),
            offline: true,
        }
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn specs_parse() {
        assert_eq!(
            Spec::parse("ollama:qwen2.5-coder:1.5b").unwrap(),
            Spec::Ollama {
                name: "qwen2.5-coder".into(),
                tag: "1.5b".into()
            }
        );
        assert_eq!(
            Spec::parse("ollama:smollm2").unwrap(),
            Spec::Ollama {
                name: "smollm2".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(
            Spec::parse("Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF@main:q8_0.gguf").unwrap(),
            Spec::Hub {
                repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF".into(),
                revision: Some("main".into()),
                file: Some("q8_0.gguf".into())
            }
        );
        assert_eq!(Spec::parse("x/model.gguf").unwrap(), Spec::File("x/model.gguf".into()));
        for bad in [
            "ollama:../../etc:passwd",
            "a/b/c",
            "org/name@..",
            "org/name:../x.gguf",
            "justaname",
            "ollama:",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hub_cache_follows_refs_then_pinned_revisions() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hub/models--org--m");
        write(&dir.join("refs/main"), SHA);
        write(&dir.join(format!("snapshots/{SHA}/m.Q8_0.gguf")), "new");
        write(&dir.join(format!("snapshots/{OLD}/m.Q8_0.gguf")), "old");
        let s = stores(tmp.path());
        let main = resolve("org/m", &s).unwrap();
        assert_eq!(fs::read_to_string(&main.path).unwrap(), "new");
        assert!(main.origin.contains(SHA));
        let pinned = resolve(&format!("org/m@{OLD}"), &s).unwrap();
        assert_eq!(fs::read_to_string(pinned.path).unwrap(), "old");
        let named = resolve("org/m@main:m.Q8_0.gguf", &s).unwrap();
        assert_eq!(named.path, main.path);
    }

    #[test]
    fn a_cache_without_refs_uses_its_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            &tmp.path().join(format!("hub/models--org--m/snapshots/{SHA}/w.gguf")),
            "x",
        );
        let r = resolve("org/m", &stores(tmp.path())).unwrap();
        assert!(r.path.ends_with(format!("{SHA}/w.gguf")));
        // A named revision that is not there is not guessed.
        let err = resolve("org/m@v2", &stores(tmp.path())).unwrap_err();
        assert!(matches!(err, SourceError::NotCached { .. }), "{err}");
    }

    #[test]
    fn offline_names_the_missing_file_and_the_fetch_command() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve("org/m@abc:w.Q4_K_M.gguf", &stores(tmp.path())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("org/m@abc:w.Q4_K_M.gguf") && text.contains("offline"),
            "{text}"
        );
        let fetch = err.fetch_hint().unwrap();
        assert!(
            fetch.contains("deepspark model pull org/m@abc:w.Q4_K_M.gguf"),
            "{fetch}"
        );
        assert!(
            fetch.contains("huggingface-cli download org/m w.Q4_K_M.gguf --revision abc"),
            "{fetch}"
        );
    }

    #[test]
    fn several_ggufs_must_be_named_and_safetensors_are_said() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = tmp.path().join(format!("hub/models--org--m/snapshots/{SHA}"));
        write(&snap.join("a.gguf"), "a");
        write(&snap.join("b.gguf"), "b");
        write(
            &tmp.path()
                .join(format!("hub/models--org--st/snapshots/{SHA}/model.safetensors")),
            "",
        );
        let s = stores(tmp.path());
        assert!(matches!(resolve("org/m", &s), Err(SourceError::Ambiguous { .. })));
        assert!(matches!(resolve("org/st", &s), Err(SourceError::NoGguf(_))));
        let listed = list(&s);
        assert_eq!(
            listed.iter().map(|l| l.spec.as_str()).collect::<Vec<_>>(),
            ["org/m:a.gguf", "org/m:b.gguf"]
        );
    }

    #[test]
    fn ollama_manifest_names_the_blob_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let hex = "ab".repeat(32);
        let manifest = format!(
            r#"{{"schemaVersion":2,"layers":[
              {{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:{}","size":1}},
              {{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{hex}","size":3}}]}}"#,
            "cd".repeat(32)
        );
        write(
            &tmp.path()
                .join("ollama/manifests/registry.ollama.ai/library/smollm2/135m"),
            &manifest,
        );
        write(&tmp.path().join(format!("ollama/blobs/sha256-{hex}")), "GGU");
        let s = stores(tmp.path());
        let r = resolve("ollama:smollm2:135m", &s).unwrap();
        assert_eq!(r.path, tmp.path().join(format!("ollama/blobs/sha256-{hex}")));
        assert!(matches!(
            resolve("ollama:smollm2", &s),
            Err(SourceError::NoOllamaModel { .. })
        ));
        assert_eq!(list(&s)[0].spec, "ollama:smollm2:135m");
    }

    #[test]
    fn a_hostile_manifest_cannot_point_outside_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest =
            r#"{"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:../../etc/passwd"}]}"#;
        write(
            &tmp.path().join("ollama/manifests/registry.ollama.ai/library/x/latest"),
            manifest,
        );
        let err = resolve("ollama:x", &stores(tmp.path())).unwrap_err();
        assert!(matches!(err, SourceError::BadManifest(..)), "{err}");
    }
}
