//! The pre-push hook: install, uninstall, status, and parsing what git sends it.
//!
//! Install writes a small shell script marked with [`MARKER`] into the repository's
//! common hooks folder (shared by linked worktrees). An existing hook that is not ours is
//! moved aside to a free `pre-push.deepspark-chained[.N]` name (never overwriting an
//! earlier one) and run first with the same stdin; its failure stops the push.
//! Uninstall removes our script and moves the chained hook back, byte for byte. When
//! `core.hooksPath` is set, install refuses unless the user opts in. This module does not
//! review anything (see `commands/hook.rs`).

use git2::{Oid, Repository};
use std::path::{Path, PathBuf};

pub const MARKER: &str = "# deepspark-hook: pre-push v1";
const CHAINED: &str = "pre-push.deepspark-chained";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(
        "core.hooksPath is set to {0}; deepspark will not write there by default (it may be shared by other repositories)"
    )]
    HooksPath(String),
    #[error("{0} is not deepspark's hook; leaving it untouched")]
    NotOurs(String),
    #[error("deepspark's pre-push hook is not installed in {0}")]
    NotInstalled(String),
    #[error("malformed pre-push input line {0:?} (expected: <local ref> <local sha> <remote ref> <remote sha>)")]
    Input(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HookError + '_ {
    move |source| HookError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The hooks folder git uses for this repository, and whether it came from core.hooksPath.
pub fn hooks_dir(repo: &Repository) -> Result<(PathBuf, bool), HookError> {
    let config = repo.config()?;
    if let Ok(p) = config.get_path("core.hooksPath") {
        let p = if p.is_relative() {
            repo.workdir().unwrap_or(repo.path()).join(p)
        } else {
            p
        };
        return Ok((p, true));
    }
    Ok((repo.commondir().join("hooks"), false))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    NotInstalled { other_hook: bool },
    Installed { chained: Option<PathBuf> },
}

fn read_ours(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().filter(|s| s.contains(MARKER))
}

/// The chained hook named in our script, if any.
fn chained_of(script: &str, dir: &Path) -> Option<PathBuf> {
    script
        .lines()
        .find_map(|l| l.strip_prefix("chained=\"$hookdir/"))
        .map(|rest| dir.join(rest.trim_end_matches('"')))
}

pub fn status(dir: &Path) -> Status {
    let hook = dir.join("pre-push");
    match read_ours(&hook) {
        Some(s) => Status::Installed {
            chained: chained_of(&s, dir).filter(|p| p.exists()),
        },
        None => Status::NotInstalled {
            other_hook: hook.exists(),
        },
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn script(exe: &Path, chained: Option<&str>) -> String {
    let chained_line = chained
        .map(|c| format!("chained=\"$hookdir/{c}\"\n"))
        .unwrap_or_else(|| "chained=\n".into());
    format!(
        r#"#!/bin/sh
{MARKER}
# Installed by `deepspark hook install`; remove with `deepspark hook uninstall`.
# Bypass once with `git push --no-verify`.
hookdir=$(dirname "$0")
{chained_line}input=$(mktemp "${{TMPDIR:-/tmp}}/deepspark-pre-push.XXXXXX") || exit 1
trap 'rm -f "$input"' EXIT
cat > "$input"
if [ -n "$chained" ] && [ -e "$chained" ]; then
    "$chained" "$@" < "$input" || exit $?
fi
deepspark={exe}
if [ ! -x "$deepspark" ]; then
    deepspark=$(command -v deepspark 2>/dev/null)
fi
if [ -z "$deepspark" ]; then
    echo "deepspark pre-push hook: the deepspark binary was not found; install it, remove the hook with" >&2
    echo "  deepspark hook uninstall   (or delete $0), or bypass once with git push --no-verify" >&2
    exit 1
fi
"$deepspark" hook run pre-push "$@" < "$input"
"#,
        exe = shell_quote(&exe.display().to_string())
    )
}

#[cfg(unix)]
fn make_executable(p: &Path) -> Result<(), HookError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).map_err(io(p))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<(), HookError> {
    Ok(())
}

/// Writes `content` to `path` through a temporary file in the same folder and a rename.
fn write_atomic(path: &Path, content: &str) -> Result<(), HookError> {
    let dir = path.parent().expect("hook path has a parent");
    let tmp = dir.join(format!(".pre-push.deepspark-tmp-{}", std::process::id()));
    std::fs::write(&tmp, content).map_err(io(&tmp))?;
    make_executable(&tmp)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// What `install` did, for the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    Fresh,
    Chained(PathBuf),
    AlreadyThere,
    Rewritten,
}

pub fn install(
    repo: &Repository,
    exe: &Path,
    force: bool,
    allow_hooks_path: bool,
) -> Result<(PathBuf, Installed), HookError> {
    let (dir, from_config) = hooks_dir(repo)?;
    if from_config && !allow_hooks_path {
        return Err(HookError::HooksPath(dir.display().to_string()));
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let hook = dir.join("pre-push");
    if let Some(existing) = read_ours(&hook) {
        if !force {
            return Ok((hook, Installed::AlreadyThere));
        }
        let chained = chained_of(&existing, &dir).and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        write_atomic(&hook, &script(exe, chained.as_deref()))?;
        return Ok((hook, Installed::Rewritten));
    }
    if hook.exists() {
        let name = (0..)
            .map(|i| {
                if i == 0 {
                    CHAINED.to_string()
                } else {
                    format!("{CHAINED}.{i}")
                }
            })
            .find(|n| !dir.join(n).exists())
            .expect("some suffix is free");
        let moved = dir.join(&name);
        std::fs::rename(&hook, &moved).map_err(io(&hook))?;
        if let Err(e) = write_atomic(&hook, &script(exe, Some(&name))) {
            let _ = std::fs::rename(&moved, &hook); // put the user's hook back
            return Err(e);
        }
        return Ok((hook, Installed::Chained(moved)));
    }
    write_atomic(&hook, &script(exe, None))?;
    Ok((hook, Installed::Fresh))
}

/// Removes our hook and restores the chained one; returns the restored path, if any.
pub fn uninstall(repo: &Repository) -> Result<Option<PathBuf>, HookError> {
    let (dir, _) = hooks_dir(repo)?;
    let hook = dir.join("pre-push");
    let Some(ours) = read_ours(&hook) else {
        return Err(if hook.exists() {
            HookError::NotOurs(hook.display().to_string())
        } else {
            HookError::NotInstalled(dir.display().to_string())
        });
    };
    match chained_of(&ours, &dir).filter(|p| p.exists()) {
        Some(chained) => {
            std::fs::rename(&chained, &hook).map_err(io(&chained))?;
            Ok(Some(hook))
        }
        None => {
            std::fs::remove_file(&hook).map_err(io(&hook))?;
            Ok(None)
        }
    }
}

/// One line of git's pre-push input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub local_ref: String,
    pub local: Oid,
    pub remote_ref: String,
    pub remote: Oid,
}

impl PushedRef {
    pub fn is_deletion(&self) -> bool {
        self.local.is_zero()
    }
}

pub fn parse_input(input: &str) -> Result<Vec<PushedRef>, HookError> {
    input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let bad = || HookError::Input(l.to_string());
            let parts: Vec<&str> = l.split_whitespace().collect();
            let [local_ref, local, remote_ref, remote] = parts.as_slice() else {
                return Err(bad());
            };
            Ok(PushedRef {
                local_ref: local_ref.to_string(),
                local: Oid::from_str(local).map_err(|_| bad())?,
                remote_ref: remote_ref.to_string(),
                remote: Oid::from_str(remote).map_err(|_| bad())?,
            })
        })
        .collect()
}

/// What the pre-commit framework tells a `pre-push` stage hook, from its environment
/// (`PRE_COMMIT_FROM_REF`, `PRE_COMMIT_TO_REF`, `PRE_COMMIT_LOCAL_BRANCH`,
/// `PRE_COMMIT_REMOTE_BRANCH`; the older `PRE_COMMIT_ORIGIN`/`PRE_COMMIT_SOURCE` too).
/// Reading them here, not in a shell `entry`, is what keeps quoting out of the hook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreCommitEnv {
    pub from_ref: Option<String>,
    pub to_ref: Option<String>,
    pub local_branch: Option<String>,
    pub remote_branch: Option<String>,
}

impl PreCommitEnv {
    /// Reads the variables through `var` (`std::env::var` in use; a map in tests).
    pub fn read(var: impl Fn(&str) -> Option<String>) -> PreCommitEnv {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        PreCommitEnv {
            from_ref: get(&["PRE_COMMIT_FROM_REF", "PRE_COMMIT_ORIGIN"]),
            to_ref: get(&["PRE_COMMIT_TO_REF", "PRE_COMMIT_SOURCE"]),
            local_branch: get(&["PRE_COMMIT_LOCAL_BRANCH"]),
            remote_branch: get(&["PRE_COMMIT_REMOTE_BRANCH"]),
        }
    }

    /// The pushed ref these variables describe, in git's pre-push terms, so that the
    /// framework's hook follows the native hook's rules: an all-zero or missing to-ref
    /// is a deletion (nothing to review); an all-zero, missing or unknown from-ref is a
    /// new branch (reviewed against the remote-tracking refs, see [`base_for`]). With
    /// neither set (`pre-commit run --hook-stage pre-push` by hand, or a push of a whole
    /// history), HEAD is reviewed against its upstream when it has one, else as a new branch.
    pub fn pushed_ref(&self, repo: &Repository) -> Result<PushedRef, HookError> {
        let resolve = |spec: &str| -> Result<Oid, HookError> {
            if let Ok(oid) = Oid::from_str(spec)
                && spec.len() == 40
            {
                return Ok(oid);
            }
            Ok(repo.revparse_single(spec)?.peel_to_commit()?.id())
        };
        let (to_label, local) = match &self.to_ref {
            Some(spec) => (spec.clone(), resolve(spec)?),
            None => ("HEAD".to_string(), resolve("HEAD")?),
        };
        let remote = match &self.from_ref {
            Some(spec) => resolve(spec).unwrap_or(Oid::ZERO_SHA1),
            None if self.to_ref.is_none() => repo
                .revparse_single("@{upstream}")
                .and_then(|o| o.peel_to_commit())
                .map(|c| c.id())
                .unwrap_or_else(|_| Oid::ZERO_SHA1),
            None => Oid::ZERO_SHA1,
        };
        Ok(PushedRef {
            local_ref: self.local_branch.clone().unwrap_or(to_label),
            local,
            remote_ref: self.remote_branch.clone().unwrap_or_default(),
            remote,
        })
    }
}

/// The old side to review a pushed ref against: the merge base with the remote's tip
/// when we have it, else (a new branch) the parent of the oldest commit not on any
/// remote-tracking ref. `Ok(None)` inside `Some` means "against the empty tree";
/// `Ok(None)` means there is nothing new to review.
pub fn base_for(repo: &Repository, r: &PushedRef) -> Result<Option<Option<Oid>>, HookError> {
    if !r.remote.is_zero() && repo.find_commit(r.remote).is_ok() {
        if r.remote == r.local {
            return Ok(None);
        }
        return Ok(Some(repo.merge_base(r.remote, r.local).ok()));
    }
    let mut walk = repo.revwalk()?;
    walk.push(r.local)?;
    for reference in repo.references_glob("refs/remotes/*")? {
        if let Some(oid) = reference?.target() {
            let _ = walk.hide(oid);
        }
    }
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    let Some(oldest) = walk.next().transpose()? else {
        return Ok(None);
    };
    let commit = repo.find_commit(oldest)?;
    Ok(Some(commit.parent_id(0).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_pre_push_lines() {
        let z = "0000000000000000000000000000000000000000";
        let a = "1111111111111111111111111111111111111111";
        let refs = parse_input(&format!(
            "refs/heads/x {a} refs/heads/x {z}\nrefs/heads/y {z} refs/heads/y {a}\n"
        ))
        .unwrap();
        assert_eq!(refs.len(), 2);
        assert!(!refs[0].is_deletion());
        assert!(refs[1].is_deletion());
        assert!(parse_input("garbage").is_err());
        assert!(parse_input(&format!("a {a} b nothex")).is_err());
        assert!(parse_input("").unwrap().is_empty());
    }

    #[test]
    fn script_quotes_the_binary_path() {
        let s = script(
            Path::new("/opt/it's here/deepspark"),
            Some("pre-push.deepspark-chained"),
        );
        assert!(s.contains(r#"deepspark='/opt/it'\''s here/deepspark'"#));
        assert_eq!(
            chained_of(&s, Path::new("/h")),
            Some(PathBuf::from("/h/pre-push.deepspark-chained"))
        );
        assert!(s.contains(MARKER));
    }
}
