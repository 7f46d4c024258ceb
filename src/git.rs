//! The repository reader: a revision request -> the list of [`FileDiff`]s, and the
//! reviewed bytes of a file (`read_new`). (`apply.rs` also uses git2, to update the index
//! under `--apply --index`.)
//!
//! Revision forms follow `git diff` (see `deepspark review --help`). Renames and copies
//! are detected; binary files, submodules, symlinks and `-diff` files are returned
//! with a skip reason and no hunks. This module never writes to the repository: it
//! opens it, reads objects, the index and the work tree, and nothing else. It does not
//! decide what else to skip (see `skip.rs`).

use crate::diff::{FileDiff, FileStatus, Hunk, Line, LineKind, OldNew, Skip, language_of};
use git2::{Delta, DiffFindOptions, DiffOptions, FileMode, Oid, Repository, Tree};
use std::collections::HashSet;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("not inside a git repository ({0})")]
    NotARepo(String),
    #[error("unknown revision {rev:?}: {msg}")]
    BadRevision { rev: String, msg: String },
    #[error("{0} is a bare repository: it has no work tree or index; review a range instead (e.g. main..feature)")]
    Bare(String),
    #[error("too many revisions: {0:?} (at most two, or one A..B / A...B)")]
    TooMany(Vec<String>),
    #[error(
        "this is a shallow clone and {what} is not in the local history; fetch more history (`git fetch --unshallow`, or `fetch-depth: 0` in CI)"
    )]
    Shallow { what: String },
    #[error("unknown revision {0:?}: it goes back past the repository's first commit")]
    PastFirstCommit(String),
    #[error("no common ancestor between {0} and {1}")]
    NoMergeBase(String, String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// What to compare, as the user asked for it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub revs: Vec<String>,
    pub staged: bool,
    pub commit: Option<String>,
    pub context: u32,
}

/// The change read from git: a label for each side, where its new side lives, and every file that differs.
#[derive(Debug, Clone)]
pub struct Change {
    pub sides: OldNew<String>,
    /// The tree of the old side (`None`: the empty tree before a first commit).
    pub old_tree: Option<Oid>,
    /// The commit of the old side, where it is one.
    pub old_commit: Option<Oid>,
    pub new_side: Side,
    pub files: Vec<FileDiff>,
}

/// Where the new side of a change lives (where suggestions would apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Tree(Oid),
    Index,
    WorkTree,
}

/// Both sides of a change as trees (or the index, or the work tree): where its files' texts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    pub old_tree: Option<Oid>,
    /// The commit of the old side, where it is one (who wrote its lines: `history::written`).
    pub old_commit: Option<Oid>,
    pub new: Side,
}

impl Sides {
    /// The sides of a commit compared with `old` (its parent, or none for a first commit).
    pub fn of_commits(repo: &Repository, old: Option<Oid>, new: Oid) -> Result<Sides, GitError> {
        let old_tree = old.map(|o| repo.find_commit(o).map(|c| c.tree_id())).transpose()?;
        let new = Side::Tree(repo.find_commit(new)?.tree_id());
        Ok(Sides {
            old_tree,
            old_commit: old,
            new,
        })
    }

    /// The old and new text of each file `want` picks (`None` where the file is absent, not
    /// a regular file, or not UTF-8); files not picked get `None` on both sides.
    pub fn texts(
        &self,
        repo: &Repository,
        files: &[FileDiff],
        want: impl Fn(&FileDiff) -> bool,
    ) -> Result<Vec<OldNew<Option<String>>>, GitError> {
        let text = |side: Side, path: Option<&str>| -> Result<Option<String>, GitError> {
            let Some(path) = path else { return Ok(None) };
            Ok(read_new(repo, side, path)?.and_then(|b| String::from_utf8(b).ok()))
        };
        files
            .iter()
            .map(|f| {
                if !want(f) {
                    return Ok(OldNew { old: None, new: None });
                }
                let old = match self.old_tree {
                    Some(t) => text(Side::Tree(t), f.path.old.as_deref())?,
                    None => None,
                };
                let new = text(self.new, f.path.new.as_deref())?;
                Ok(OldNew { old, new })
            })
            .collect()
    }
}

/// A file's bytes on the new side, as reviewed: `None` when it is not a regular file there
/// (deleted, a symlink, a submodule, outside a sparse checkout).
pub fn read_new(repo: &Repository, side: Side, path: &str) -> Result<Option<Vec<u8>>, GitError> {
    match side {
        Side::Tree(id) => {
            let tree = repo.find_tree(id)?;
            let Ok(entry) = tree.get_path(Path::new(path)) else {
                return Ok(None);
            };
            if !matches!(entry.filemode(), 0o100644 | 0o100755) {
                return Ok(None);
            }
            Ok(Some(repo.find_blob(entry.id())?.content().to_vec()))
        }
        Side::Index => {
            let index = repo.index()?;
            let Some(entry) = index.get_path(Path::new(path), 0) else {
                return Ok(None);
            };
            if !matches!(entry.mode, 0o100644 | 0o100755) {
                return Ok(None);
            }
            Ok(Some(repo.find_blob(entry.id)?.content().to_vec()))
        }
        Side::WorkTree => {
            let Some(workdir) = repo.workdir() else {
                return Ok(None);
            };
            let full = workdir.join(path);
            // Never follow a symlink: its target may lie outside the repository.
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.is_file() => Ok(std::fs::read(&full).ok()),
                _ => Ok(None),
            }
        }
    }
}

/// Stops libgit2 from hashing every object it reads to check it against its id (its "strict
/// hash verification", on by default). git itself checks ids in `fsck` and when it receives
/// objects, not on a read, and deepspark only reads; on curl's first review (1,000 commits
/// scored, the history mined) the hashing was a fifth of the CPU time. Called once, at start.
pub fn trust_object_ids() {
    git2::opts::strict_hash_verification(false);
}

pub fn open(path: Option<&Path>) -> Result<Repository, GitError> {
    let start = path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    Repository::discover(&start).map_err(|e| GitError::NotARepo(e.message().to_string()))
}

enum NewSide<'r> {
    Tree(Tree<'r>),
    Index,
    WorkTree,
}

fn tree_of<'r>(repo: &'r Repository, rev: &str) -> Result<Tree<'r>, GitError> {
    let obj = repo.revparse_single(rev).map_err(|e| bad_rev(repo, rev, e))?;
    obj.peel_to_tree().map_err(|e| GitError::BadRevision {
        rev: rev.into(),
        msg: e.message().into(),
    })
}

fn commit_id(repo: &Repository, rev: &str) -> Result<Oid, GitError> {
    let obj = repo.revparse_single(rev).map_err(|e| bad_rev(repo, rev, e))?;
    let c = obj.peel_to_commit().map_err(|e| GitError::BadRevision {
        rev: rev.into(),
        msg: e.message().into(),
    })?;
    Ok(c.id())
}

fn bad_rev(repo: &Repository, rev: &str, e: git2::Error) -> GitError {
    let ancestry = rev.contains('~') || rev.contains('^');
    if repo.is_shallow() && ancestry {
        return GitError::Shallow { what: rev.to_string() };
    }
    // libgit2's words for `REV~N` / `REV^` past a root commit.
    if ancestry && e.message().contains("parent") && e.message().contains("does not exist") {
        return GitError::PastFirstCommit(rev.to_string());
    }
    GitError::BadRevision {
        rev: rev.to_string(),
        msg: e.message().to_string(),
    }
}

fn is_shallow_boundary(repo: &Repository, id: Oid) -> bool {
    repo.is_shallow()
        && std::fs::read_to_string(repo.commondir().join("shallow"))
            .map(|s| s.lines().any(|l| l.trim() == id.to_string()))
            .unwrap_or(false)
}

/// HEAD's tree, or `None` on an unborn branch (diffs are then against the empty tree).
fn head_tree(repo: &Repository) -> Result<Option<Tree<'_>>, GitError> {
    match repo.head() {
        Ok(r) => Ok(Some(r.peel_to_tree()?)),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch || e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn need_worktree(repo: &Repository) -> Result<(), GitError> {
    if repo.is_bare() {
        return Err(GitError::Bare(repo.path().display().to_string()));
    }
    Ok(())
}

/// Reads the requested change. Never writes to the repository.
pub fn diff(repo: &Repository, req: &Request) -> Result<Change, GitError> {
    let (old, new, sides): (Option<Tree>, NewSide, OldNew<String>) = if let Some(rev) = &req.commit {
        let id = commit_id(repo, rev)?;
        let commit = repo.find_commit(id)?;
        let parent = if commit.parent_count() == 0 {
            // In a shallow clone the boundary commits look parentless: refuse rather than
            // review the whole tree as "added".
            if is_shallow_boundary(repo, id) {
                return Err(GitError::Shallow {
                    what: format!("the parent of {rev}"),
                });
            }
            None
        } else {
            match commit.parent(0) {
                Ok(p) => Some(p.tree()?),
                Err(_) if repo.is_shallow() => {
                    return Err(GitError::Shallow {
                        what: format!("the parent of {rev}"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        let old = if parent.is_some() {
            format!("{rev}^")
        } else {
            "empty tree (first commit)".to_string()
        };
        (parent, NewSide::Tree(commit.tree()?), OldNew { old, new: rev.clone() })
    } else {
        match req.revs.as_slice() {
            [] => {
                need_worktree(repo)?;
                let new = if req.staged { NewSide::Index } else { NewSide::WorkTree };
                let label = if req.staged { "index" } else { "work tree" };
                (
                    head_tree(repo)?,
                    new,
                    OldNew {
                        old: "HEAD".into(),
                        new: label.into(),
                    },
                )
            }
            [one] if one.contains("..") => {
                let (a, b, merge_base) = match one.split_once("...") {
                    Some((a, b)) => (a, b, true),
                    None => {
                        let (a, b) = one.split_once("..").expect("contains ..");
                        (a, b, false)
                    }
                };
                let a = if a.is_empty() { "HEAD" } else { a };
                let b = if b.is_empty() { "HEAD" } else { b };
                let old = if merge_base {
                    let (ia, ib) = (commit_id(repo, a)?, commit_id(repo, b)?);
                    let base = repo.merge_base(ia, ib).map_err(|e| {
                        if repo.is_shallow() {
                            GitError::Shallow {
                                what: format!("the merge base of {a} and {b}"),
                            }
                        } else if e.code() == git2::ErrorCode::NotFound {
                            GitError::NoMergeBase(a.into(), b.into())
                        } else {
                            e.into()
                        }
                    })?;
                    repo.find_commit(base)?.tree()?
                } else {
                    tree_of(repo, a)?
                };
                let label = if merge_base {
                    format!("merge-base({a}, {b})")
                } else {
                    a.to_string()
                };
                (
                    Some(old),
                    NewSide::Tree(tree_of(repo, b)?),
                    OldNew {
                        old: label,
                        new: b.to_string(),
                    },
                )
            }
            [one] => {
                need_worktree(repo)?;
                let new = if req.staged { NewSide::Index } else { NewSide::WorkTree };
                let label = if req.staged { "index" } else { "work tree" };
                (
                    Some(tree_of(repo, one)?),
                    new,
                    OldNew {
                        old: one.clone(),
                        new: label.into(),
                    },
                )
            }
            [a, b] if !req.staged => (
                Some(tree_of(repo, a)?),
                NewSide::Tree(tree_of(repo, b)?),
                OldNew {
                    old: a.clone(),
                    new: b.clone(),
                },
            ),
            other => return Err(GitError::TooMany(other.to_vec())),
        }
    };

    let new_side = match &new {
        NewSide::Tree(t) => Side::Tree(t.id()),
        NewSide::Index => Side::Index,
        NewSide::WorkTree => Side::WorkTree,
    };
    let old_tree = old.as_ref().map(|t| t.id());
    let old_commit = old_commit(repo, req).filter(|c| {
        // Only a commit whose tree is the old side (a revision may name a tree).
        repo.find_commit(*c).is_ok_and(|c| Some(c.tree_id()) == old_tree)
    });
    let files = collect(repo, old.as_ref(), new, req.context)?;
    Ok(Change {
        sides,
        old_tree,
        old_commit,
        new_side,
        files,
    })
}

/// The commit of a request's old side, where it is one (for blame: who wrote the lines a
/// change modifies); `None` for the empty tree or a revision that names no commit.
fn old_commit(repo: &Repository, req: &Request) -> Option<Oid> {
    let commit = |rev: &str| commit_id(repo, rev).ok();
    if let Some(rev) = &req.commit {
        return repo.find_commit(commit(rev)?).ok()?.parent_id(0).ok();
    }
    match req.revs.as_slice() {
        [] => repo.head().ok()?.peel_to_commit().ok().map(|c| c.id()),
        [one] => match one.split_once("...") {
            Some((a, b)) => {
                let or_head = |s: &str| {
                    if s.is_empty() {
                        "HEAD".to_string()
                    } else {
                        s.to_string()
                    }
                };
                repo.merge_base(commit(&or_head(a))?, commit(&or_head(b))?).ok()
            }
            None => match one.split_once("..") {
                Some((a, _)) => commit(if a.is_empty() { "HEAD" } else { a }),
                None => commit(one),
            },
        },
        [a, _] => commit(a),
        _ => None,
    }
}

/// The commits of `range` (`REV`: REV and its ancestors; `A..B`: those of B not in A),
/// newest first, at most `max`.
pub fn commits(repo: &Repository, range: &str, max: usize) -> Result<Vec<Oid>, GitError> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
    match range.split_once("..") {
        Some((a, b)) if !range.contains("...") => {
            let a = if a.is_empty() { "HEAD" } else { a };
            let b = if b.is_empty() { "HEAD" } else { b };
            walk.push(commit_id(repo, b)?)?;
            walk.hide(commit_id(repo, a)?)?;
        }
        Some(_) => {
            return Err(GitError::BadRevision {
                rev: range.into(),
                msg: "a scan takes REV or A..B, not A...B".into(),
            });
        }
        None => walk.push(commit_id(repo, range)?)?,
    }
    let mut out = Vec::new();
    for id in walk.take(max) {
        out.push(id?);
    }
    Ok(out)
}

/// Files as a commit found them (at its first parent), read from one or more repositories:
/// what `eval-suggest` and `train` give the suggestion generator for names, as `review` gives
/// it the reviewed file.
pub struct ParentFiles {
    repos: Vec<Repository>,
}

impl ParentFiles {
    /// Opens each path as a repository (a work tree or a bare one).
    pub fn open(paths: &[impl AsRef<Path>]) -> Result<ParentFiles, GitError> {
        let repos = paths
            .iter()
            .map(|p| {
                Repository::open(p.as_ref())
                    .map_err(|e| GitError::NotARepo(format!("{}: {}", p.as_ref().display(), e.message())))
            })
            .collect::<Result<_, _>>()?;
        Ok(ParentFiles { repos })
    }

    /// The text of `path` at the first parent of `commit`, from the first repository that has
    /// the commit; `None` when none has it, it has no parent, the file was not a regular file
    /// there, or it is binary or not UTF-8.
    pub fn read(&self, commit: &str, path: &str) -> Option<String> {
        let id = Oid::from_str(commit).ok()?;
        self.repos.iter().find_map(|repo| {
            let parent = repo.find_commit(id).ok()?.parent(0).ok()?;
            let bytes = read_new(repo, Side::Tree(parent.tree_id()), path).ok()??;
            if bytes.contains(&0) {
                return None;
            }
            String::from_utf8(bytes).ok()
        })
    }
}

/// The parent a commit is reviewed against: its first parent, `None` for a root commit.
/// A shallow clone's boundary commit looks parentless: that is an error, not a root.
pub fn first_parent(repo: &Repository, id: Oid) -> Result<Option<Oid>, GitError> {
    let commit = repo.find_commit(id)?;
    if commit.parent_count() == 0 {
        if is_shallow_boundary(repo, id) {
            return Err(GitError::Shallow {
                what: format!("the parent of {id}"),
            });
        }
        return Ok(None);
    }
    Ok(Some(commit.parent_id(0)?))
}

/// The change between two commits (old `None`: the empty tree), for the pre-push hook.
pub fn diff_commits(repo: &Repository, old: Option<Oid>, new: Oid, context: u32) -> Result<Vec<FileDiff>, GitError> {
    let old = old.map(|o| repo.find_commit(o).and_then(|c| c.tree())).transpose()?;
    let new = repo.find_commit(new)?.tree()?;
    collect(repo, old.as_ref(), NewSide::Tree(new), context)
}

fn collect(repo: &Repository, old: Option<&Tree>, new: NewSide, context: u32) -> Result<Vec<FileDiff>, GitError> {
    // libgit2 ignores the skip-worktree bit of sparse checkouts: files outside the sparse
    // cone would read as deleted. For those paths the index holds the truth, as in git.
    let sparse = match new {
        NewSide::WorkTree => skip_worktree_paths(repo)?,
        _ => HashSet::new(),
    };
    let mut files = diff_side(repo, old, new, context)?;
    if !sparse.is_empty() {
        let path_of = |f: &FileDiff| f.path.new.clone().or(f.path.old.clone()).unwrap_or_default();
        files.retain(|f| !sparse.contains(&path_of(f)));
        let from_index = diff_side(repo, old, NewSide::Index, context)?;
        files.extend(from_index.into_iter().filter(|f| sparse.contains(&path_of(f))));
        files.sort_by_key(path_of);
    }
    Ok(files)
}

fn skip_worktree_paths(repo: &Repository) -> Result<HashSet<String>, GitError> {
    let index = repo.index()?;
    let skip = git2::IndexEntryExtendedFlag::SKIP_WORKTREE.bits();
    Ok(index
        .iter()
        .filter(|e| e.flags_extended & skip != 0)
        .map(|e| String::from_utf8_lossy(&e.path).into_owned())
        .collect())
}

fn diff_side(repo: &Repository, old: Option<&Tree>, new: NewSide, context: u32) -> Result<Vec<FileDiff>, GitError> {
    let mut opts = DiffOptions::new();
    opts.context_lines(context)
        .include_typechange(true)
        .ignore_submodules(false);
    let mut d = match new {
        NewSide::Tree(t) => repo.diff_tree_to_tree(old, Some(&t), Some(&mut opts))?,
        NewSide::Index => repo.diff_tree_to_index(old, None, Some(&mut opts))?,
        NewSide::WorkTree => repo.diff_tree_to_workdir_with_index(old, Some(&mut opts))?,
    };
    let mut find = DiffFindOptions::new();
    find.renames(true).copies(true);
    d.find_similar(Some(&mut find))?;
    (0..d.deltas().len()).map(|i| file_diff(repo, &d, i)).collect()
}

fn lossy(p: Option<&[u8]>) -> Option<String> {
    p.map(|b| String::from_utf8_lossy(b).into_owned())
}

fn mode(m: FileMode) -> Option<u32> {
    match m {
        FileMode::Unreadable => None,
        m => Some(u32::from(m)),
    }
}

fn file_diff(repo: &Repository, d: &git2::Diff, i: usize) -> Result<FileDiff, GitError> {
    let delta = d.get_delta(i).expect("index below deltas().len()");
    let (o, n) = (delta.old_file(), delta.new_file());
    let mut path = OldNew {
        old: lossy(o.path_bytes()),
        new: lossy(n.path_bytes()),
    };
    let mut status = match delta.status() {
        Delta::Added | Delta::Untracked => FileStatus::Added,
        Delta::Deleted => FileStatus::Deleted,
        Delta::Renamed => FileStatus::Renamed,
        Delta::Copied => FileStatus::Copied,
        Delta::Typechange => FileStatus::TypeChanged,
        _ => FileStatus::Modified,
    };
    match status {
        FileStatus::Added => path.old = None,
        FileStatus::Deleted => path.new = None,
        _ => {}
    }
    let modes = OldNew {
        old: mode(o.mode()),
        new: mode(n.mode()),
    };
    let shown = path.new.clone().or(path.old.clone()).unwrap_or_default();
    let mut file = FileDiff {
        language: language_of(&shown),
        path,
        status,
        mode: modes,
        hunks: Vec::new(),
        skip: None,
    };
    let is = |m: FileMode| o.mode() == m || n.mode() == m;
    if is(FileMode::Commit) {
        file.skip = Some(Skip::Submodule);
        return Ok(file);
    }
    if is(FileMode::Link) {
        file.skip = Some(Skip::Symlink);
        return Ok(file);
    }
    let patch = git2::Patch::from_diff(d, i)?;
    let binary = delta.flags().is_binary() || o.is_binary() || n.is_binary();
    let Some(patch) = patch.filter(|_| !binary) else {
        let attr = |name: &str| {
            git2::AttrValue::from_string(
                repo.get_attr(Path::new(&shown), name, git2::AttrCheckFlags::FILE_THEN_INDEX)
                    .ok()
                    .flatten(),
            )
        };
        file.skip = Some(
            if attr("diff") == git2::AttrValue::False || attr("binary") == git2::AttrValue::True {
                Skip::Attributes
            } else {
                Skip::Binary
            },
        );
        return Ok(file);
    };
    // A file whose first lines say a tool generated it (on the side that holds it).
    let side = if status == FileStatus::Deleted { o } else { n };
    if let Some(marker) = head_of(repo, &side, &shown)
        .as_deref()
        .and_then(crate::skip::generated_by)
    {
        file.skip = Some(Skip::Generated {
            pattern: format!("{}{marker}", crate::skip::MARKER_PREFIX),
        });
    }
    for h in 0..patch.num_hunks() {
        let (hunk, n_lines) = patch.hunk(h)?;
        let mut lines: Vec<Line> = Vec::with_capacity(n_lines);
        for l in 0..n_lines {
            let line = patch.line_in_hunk(h, l)?;
            let kind = match line.origin() {
                ' ' => LineKind::Context,
                '+' => LineKind::Added,
                '-' => LineKind::Removed,
                '=' | '>' | '<' => {
                    if let Some(last) = lines.last_mut() {
                        last.no_newline = true;
                    }
                    continue;
                }
                _ => continue,
            };
            let mut bytes = line.content();
            if let Some(b) = bytes.strip_suffix(b"\n") {
                bytes = b;
            }
            lines.push(Line {
                kind,
                text: String::from_utf8_lossy(bytes).into_owned(),
                lineno: OldNew {
                    old: line.old_lineno(),
                    new: line.new_lineno(),
                },
                no_newline: false,
            });
        }
        file.hunks.push(Hunk {
            start: OldNew {
                old: hunk.old_start(),
                new: hunk.new_start(),
            },
            count: OldNew {
                old: hunk.old_lines(),
                new: hunk.new_lines(),
            },
            lines,
        });
    }
    if file.hunks.is_empty() && status == FileStatus::Modified && file.mode.old != file.mode.new {
        status = FileStatus::ModeOnly;
        file.status = status;
    }
    Ok(file)
}

/// The first [`crate::skip::HEAD_BYTES`] of one side of a file: its blob, or for a work
/// tree file git has not stored, the file on disk. `None` when neither can be read.
fn head_of(repo: &Repository, side: &git2::DiffFile, path: &str) -> Option<Vec<u8>> {
    let n = crate::skip::HEAD_BYTES;
    if !side.id().is_zero()
        && let Ok(blob) = repo.find_blob(side.id())
    {
        let c = blob.content();
        return Some(c[..c.len().min(n)].to_vec());
    }
    let file = std::fs::File::open(repo.workdir()?.join(path)).ok()?;
    let mut head = Vec::with_capacity(n);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, n as u64), &mut head).ok()?;
    Some(head)
}

/// A commit of the history, as `mine` reads it.
#[derive(Debug, Clone)]
pub struct HistoryCommit {
    pub id: Oid,
    pub parents: Vec<Oid>,
    /// Author time, unix seconds.
    pub author_date: i64,
    pub message: String,
}

impl HistoryCommit {
    /// The first line of the message.
    pub fn subject(&self) -> &str {
        self.message.lines().next().unwrap_or("").trim()
    }
}

/// `at` and all its ancestors, oldest first (parents before children, then by time), and
/// whether the walk stopped at a shallow clone's boundary.
pub fn history(repo: &Repository, at: &str) -> Result<(Vec<HistoryCommit>, bool), GitError> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME | git2::Sort::REVERSE)?;
    walk.push(commit_id(repo, at)?)?;
    let mut out = Vec::new();
    let mut shallow = false;
    for id in walk {
        let c = repo.find_commit(id?)?;
        if c.parent_count() == 0 && is_shallow_boundary(repo, c.id()) {
            shallow = true;
        }
        out.push(HistoryCommit {
            id: c.id(),
            parents: c.parent_ids().collect(),
            author_date: c.author().when().seconds(),
            message: String::from_utf8_lossy(c.message_bytes()).into_owned(),
        });
    }
    Ok((out, shallow))
}

/// Where one line of a file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The line asked about, in the file at the blamed revision.
    pub line: u32,
    /// The commit that introduced it, the file's path there and the line's number there.
    pub commit: Oid,
    pub path: String,
    pub orig_line: u32,
}

/// The paths of `.git-blame-ignore-revs` at `at` (commits whose lines blame should see
/// through); empty when the file is absent. Lines that are not full hex ids are ignored.
pub fn blame_ignore_revs(repo: &Repository, at: Oid) -> Result<HashSet<Oid>, GitError> {
    let tree = repo.find_commit(at)?.tree()?;
    let Ok(entry) = tree.get_path(Path::new(".git-blame-ignore-revs")) else {
        return Ok(HashSet::new());
    };
    let blob = repo.find_blob(entry.id())?;
    Ok(String::from_utf8_lossy(blob.content())
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter_map(|l| Oid::from_str(l).ok())
        .collect())
}
