//! Writes reviewed suggestions to disk, safely: a list of [`FileEdit`]s (path, the bytes
//! that were reviewed, the bytes to write) -> rewritten work-tree files, or one patch in
//! `git diff` format.
//!
//! Every file is checked before any is written: the path stays inside the work tree (no
//! `..`, no `.git`, no symlink anywhere on the way), the file is a regular file and still
//! holds exactly the reviewed bytes. Each file is then replaced atomically (temporary file
//! in the same folder, fsync, rename), so a process killed at any instant leaves every
//! file either wholly old or wholly new. The edits as a set are not atomic: if a file
//! changes under us after earlier ones were renamed, those stay new and the error says
//! which file stopped the run.
//!
//! This module does not decide which suggestions to apply, nor does it generate them. It
//! never touches refs, config or hooks, and it touches the index only when asked to
//! (`index = true`). It does not run git's clean filters over the reviewed bytes: with
//! `core.autocrlf` or an `eol`/`filter` attribute that changes a file's bytes, the index
//! check refuses (the index blob differs from the work tree); use it without the index.

use git2::{IndexEntry, ObjectType, Oid, Repository};
use similar::{Algorithm, DiffTag};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Lines of context around each change in [`patch`], as `git diff` writes by default.
const CONTEXT: usize = 3;

/// One file to rewrite: repository-relative path with '/' separators (as git reports it),
/// the exact bytes that were reviewed, and the bytes to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub path: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refusing to write {path:?}: {why}")]
    UnsafePath { path: String, why: String },
    #[error("{path} changed since it was reviewed; review again")]
    Changed { path: String },
    #[error("{path} is not a regular file; only regular files are rewritten")]
    NotRegular { path: String },
    #[error("the index entry of {path} differs from the work tree; stage or stash first, or drop --index")]
    IndexMismatch { path: String },
    #[error("{0} is a bare repository: it has no work tree to write to")]
    Bare(String),
    #[error("{path} has more than one edit; give one edit per file")]
    Duplicate { path: String },
    #[error("{path} is not UTF-8 text; it cannot be written as a patch")]
    NotText { path: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io {
        path: path.to_string(),
        source,
    }
}

fn unsafe_path(rel: &str, why: impl Into<String>) -> ApplyError {
    ApplyError::UnsafePath {
        path: rel.to_string(),
        why: why.into(),
    }
}

/// Validates one repository-relative path and returns the absolute path inside `workdir`.
pub fn safe_path(workdir: &Path, rel: &str) -> Result<PathBuf, ApplyError> {
    let parts = components(rel)?;
    let mut path = workdir.to_path_buf();
    let mut exists = true;
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        if !exists {
            continue;
        }
        // Never write through a symlink, not even one that points back inside the tree:
        // git records the link itself, so writing its target is not the reviewed change.
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(unsafe_path(
                    rel,
                    format!("{} is a symbolic link", parts[..=i].join("/")),
                ));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                exists = false
            }
            Err(e) => return Err(io(rel)(e)),
        }
    }
    Ok(path)
}

/// The purely textual checks of [`safe_path`]: the path's components, in order.
fn components(rel: &str) -> Result<Vec<&str>, ApplyError> {
    if rel.is_empty() {
        return Err(unsafe_path(rel, "the path is empty"));
    }
    if rel.contains('\0') {
        return Err(unsafe_path(rel, "the path contains a NUL byte"));
    }
    if rel.contains('\\') {
        return Err(unsafe_path(rel, "the path contains a backslash"));
    }
    if rel.starts_with('/') || Path::new(rel).has_root() || Path::new(rel).is_absolute() {
        return Err(unsafe_path(rel, "the path is absolute"));
    }
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err(unsafe_path(rel, "the path has an empty component")),
            "." => return Err(unsafe_path(rel, "the path has a `.` component")),
            ".." => return Err(unsafe_path(rel, "the path has a `..` component")),
            _ if is_dot_git(part) => return Err(unsafe_path(rel, "the path is inside a .git folder")),
            _ if cfg!(windows) && part.contains(':') => {
                return Err(unsafe_path(rel, "the path has a `:` (a drive or a stream name)"));
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// Whether a path component names a `.git` folder on some filesystem: case-insensitively,
/// with the trailing dots and spaces and the `GIT~1` short name that NTFS accepts, and the
/// invisible code points that HFS+ ignores (the same rules as git's `verify_path`).
fn is_dot_git(part: &str) -> bool {
    let hfs_ignored = |c: &char| {
        let c = u32::from(*c);
        (0x200c..=0x200f).contains(&c)
            || (0x202a..=0x202e).contains(&c)
            || (0x206a..=0x206f).contains(&c)
            || c == 0xfeff
    };
    let name = part
        .chars()
        .filter(|c| !hfs_ignored(c))
        .collect::<String>()
        .to_ascii_lowercase();
    let name = name.split(':').next().unwrap_or_default();
    name.trim_end_matches([' ', '.']) == ".git" || name == "git~1"
}

fn workdir(repo: &Repository) -> Result<&Path, ApplyError> {
    repo.workdir()
        .ok_or_else(|| ApplyError::Bare(repo.path().display().to_string()))
}

fn no_duplicates(edits: &[FileEdit]) -> Result<(), ApplyError> {
    let mut seen = HashSet::new();
    for edit in edits {
        if !seen.insert(edit.path.as_str()) {
            return Err(ApplyError::Duplicate {
                path: edit.path.clone(),
            });
        }
    }
    Ok(())
}

/// Checks that `edit.path` is safe and still a regular file holding exactly `edit.old`;
/// returns its absolute path and metadata.
fn still_reviewed(workdir: &Path, edit: &FileEdit) -> Result<(PathBuf, fs::Metadata), ApplyError> {
    let target = safe_path(workdir, &edit.path)?;
    let changed = || ApplyError::Changed {
        path: edit.path.clone(),
    };
    let meta = match fs::symlink_metadata(&target) {
        Ok(meta) => meta,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(changed());
        }
        Err(e) => return Err(io(&edit.path)(e)),
    };
    if !meta.file_type().is_file() {
        return Err(ApplyError::NotRegular {
            path: edit.path.clone(),
        });
    }
    // Compare the length first: a grown or shrunk file needs no read.
    if meta.len() != edit.old.len() as u64 {
        return Err(changed());
    }
    let current = fs::read(&target).map_err(io(&edit.path))?;
    if current != edit.old {
        return Err(changed());
    }
    Ok((target, meta))
}

/// The stage-0 index entry of `edit.path`, refused unless it is a regular file whose blob
/// is exactly `edit.old`.
fn index_entry(index: &git2::Index, edit: &FileEdit) -> Result<IndexEntry, ApplyError> {
    let mismatch = || ApplyError::IndexMismatch {
        path: edit.path.clone(),
    };
    let entry = index.get_path(Path::new(&edit.path), 0).ok_or_else(mismatch)?;
    if entry.mode != 0o100644 && entry.mode != 0o100755 {
        return Err(mismatch());
    }
    if entry.id != Oid::hash_object(ObjectType::Blob, &edit.old)? {
        return Err(mismatch());
    }
    Ok(entry)
}

fn fresh_index(repo: &Repository) -> Result<git2::Index, ApplyError> {
    let mut index = repo.index()?;
    // The repository caches its index: pick up what other processes wrote since.
    index.read(false)?;
    Ok(index)
}

/// Every check, writing nothing: paths safe, no duplicates, each file is a regular file whose bytes equal `old`;
/// with `index`, the index entry's blob equals `old` too (same content as the work tree).
pub fn check(repo: &Repository, edits: &[FileEdit], index: bool) -> Result<(), ApplyError> {
    let workdir = workdir(repo)?;
    no_duplicates(edits)?;
    for edit in edits {
        still_reviewed(workdir, edit)?;
    }
    if index {
        let index = fresh_index(repo)?;
        for edit in edits {
            index_entry(&index, edit)?;
        }
    }
    Ok(())
}

/// Temporary files written but not yet renamed; dropping this removes them, so every
/// early return cleans up.
#[derive(Default)]
struct Pending(Vec<Option<PathBuf>>);

impl Drop for Pending {
    fn drop(&mut self) {
        for tmp in self.0.iter().flatten() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Writes `new` next to `target` under a fresh hidden name, with `meta`'s permissions,
/// and flushes it to disk.
fn write_temp(target: &Path, meta: &fs::Metadata, edit: &FileEdit, pending: &mut Pending) -> Result<(), ApplyError> {
    let dir = target.parent().expect("a checked path has a parent: the work tree");
    let name = edit.path.rsplit('/').next().unwrap_or_default();
    // Keep the temporary name under the usual 255-byte limit however long the original is.
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let tag = seed.wrapping_add(u64::from(attempt)) & 0xffff_ffff;
        let tmp = dir.join(format!(".{}.deepspark-{tag:08x}.tmp", &name[..cut]));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(io(&edit.path)(e)),
        }
    };
    pending.0.push(Some(tmp));
    file.write_all(&edit.new).map_err(io(&edit.path))?;
    file.set_permissions(meta.permissions()).map_err(io(&edit.path))?;
    file.sync_all().map_err(io(&edit.path))?;
    Ok(())
}

/// Makes a rename in `dir` durable. Only unix can open a folder to sync it.
fn sync_dir(dir: &Path, edit: &FileEdit) -> Result<(), ApplyError> {
    if cfg!(unix) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(&edit.path))?;
    }
    Ok(())
}

/// check() first for ALL files, then for each file: write `new` to a temporary file in the same directory,
/// copy the original file's permissions onto it, fsync it, rename over the original, then fsync the directory.
///
/// All temporary files are written before the first rename, so a full disk or a read-only folder stops the run
/// with nothing replaced. Immediately before each rename the file is read and compared with `old` again; if it
/// changed, the run stops with [`ApplyError::Changed`] and the files renamed before it stay new. With `index`, the
/// index entries are updated after all renames: the new content through git's clean filters for that path (what
/// `git add` would store), with the entry's mode kept; each entry is checked against `old` once more first, so
/// if someone staged one of the files meanwhile, the files are written and the error says the index was not.
/// Edits whose `old` equals `new` are checked but not written. Returns the number of files written.
pub fn apply(repo: &Repository, edits: &[FileEdit], index: bool) -> Result<usize, ApplyError> {
    check(repo, edits, index)?;
    let workdir = workdir(repo)?;
    let edits: Vec<&FileEdit> = edits.iter().filter(|e| e.old != e.new).collect();
    let mut pending = Pending::default();
    for edit in &edits {
        let (target, meta) = still_reviewed(workdir, edit)?;
        write_temp(&target, &meta, edit, &mut pending)?;
    }
    // One more pass right before the first rename, so a file edited while the temporary
    // files were written stops the run with nothing replaced.
    for edit in &edits {
        still_reviewed(workdir, edit)?;
    }
    for (edit, tmp) in edits.iter().zip(pending.0.iter_mut()) {
        let (target, _) = still_reviewed(workdir, edit)?;
        let from = tmp.as_ref().expect("each temporary file is renamed once");
        fs::rename(from, &target).map_err(io(&edit.path))?;
        *tmp = None;
        sync_dir(target.parent().expect("inside the work tree"), edit)?;
    }
    if index {
        update_index(repo, &edits)?;
    }
    Ok(edits.len())
}

fn update_index(repo: &Repository, edits: &[&FileEdit]) -> Result<(), ApplyError> {
    let mut index = fresh_index(repo)?;
    for edit in edits {
        // Checked again: someone may have staged the file while we wrote it.
        let mut entry = index_entry(&index, edit)?;
        let mut blob = repo.blob_writer(Some(Path::new(&edit.path)))?;
        blob.write_all(&edit.new).map_err(io(&edit.path))?;
        entry.id = blob.commit()?;
        // Git keeps the low 32 bits of the size. The other stat fields are left as they
        // were (they describe the replaced file), so git re-hashes the file on its next
        // status rather than trusting a stat taken after a possible concurrent write.
        entry.file_size = edit.new.len() as u32;
        index.add(&entry)?;
    }
    index.write()?;
    Ok(())
}

/// The edits as one patch in `git diff` format that `git apply` accepts from the repository root.
///
/// Hunks have 3 lines of context. Lines end at `\n` only, as git splits them: a `\r` stays part of its line,
/// and a last line without `\n` gets git's `\ No newline at end of file`. Paths are quoted as git quotes them
/// (`core.quotePath`, the default). Edits whose `old` equals `new` produce nothing; an edit that is not UTF-8
/// text is refused with [`ApplyError::NotText`].
pub fn patch(edits: &[FileEdit]) -> Result<String, ApplyError> {
    no_duplicates(edits)?;
    let mut out = String::new();
    for edit in edits {
        components(&edit.path)?;
        let not_text = || ApplyError::NotText {
            path: edit.path.clone(),
        };
        let old = std::str::from_utf8(&edit.old).map_err(|_| not_text())?;
        let new = std::str::from_utf8(&edit.new).map_err(|_| not_text())?;
        if old == new {
            continue;
        }
        let (a, b) = (quote("a/", &edit.path), quote("b/", &edit.path));
        // Like git, end the file names with a tab when they hold a space, so the name's end is unambiguous.
        let tab = if edit.path.contains(' ') { "\t" } else { "" };
        out.push_str(&format!("diff --git {a} {b}\n--- {a}{tab}\n+++ {b}{tab}\n"));
        hunks(&mut out, old, new);
    }
    Ok(out)
}

/// Appends the unified hunks between `old` and `new`.
///
/// `similar`'s own line splitting also ends a line at a lone `\r`, which git does not, so
/// lines are split here and only the diff and the hunk grouping come from `similar`.
fn hunks(out: &mut String, old: &str, new: &str) {
    let old: Vec<&str> = old.split_inclusive('\n').collect();
    let new: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = similar::capture_diff_slices(Algorithm::Myers, &old, &new);
    for group in similar::group_diff_ops(ops, CONTEXT) {
        if group.iter().all(|op| op.tag() == DiffTag::Equal) {
            continue;
        }
        out.push_str(&format!("{}\n", similar::udiff::UnifiedHunkHeader::new(&group)));
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            if tag == DiffTag::Equal {
                push_lines(out, ' ', &old[old_range]);
                continue;
            }
            push_lines(out, '-', &old[old_range]);
            push_lines(out, '+', &new[new_range]);
        }
    }
}

fn push_lines(out: &mut String, tag: char, lines: &[&str]) {
    for line in lines {
        out.push(tag);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// `prefix` + `path`, C-quoted the way git quotes a path that holds `"`, `\`, control
/// characters or non-ASCII bytes.
fn quote(prefix: &str, path: &str) -> String {
    let full = format!("{prefix}{path}");
    let special = |b: u8| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b);
    if !full.bytes().any(special) {
        return full;
    }
    let mut out = String::from("\"");
    for b in full.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b if special(b) => out.push_str(&format!("\\{b:03o}")),
            b => out.push(char::from(b)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
