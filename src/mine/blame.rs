//! Blame for SZZ over a whole history at once: where each line of a file, as of a commit,
//! was written (the commit, the file's path there, the line's number there), ignoring
//! whitespace.
//!
//! libgit2's blame walks a file's history again for every question, and on large
//! histories that took hours. Here each version of a file is read once, and its line
//! origins are kept while the file's questions are answered:
//! - a file's **versions** are the commits whose tree differs from their first parent's at
//!   its path (found once, for every path, by `Commits::read`);
//! - a version's lines take the origins of its parent version where a diff of the two
//!   (whitespace removed, Myers, as git's) finds them unchanged, and are its own elsewhere;
//! - at a merge, a line goes to the first parent that has it, as git blame gives it, and a
//!   version equal to one parent's is that parent's;
//! - a path that its first parent does not have, where libgit2's rename detection finds a
//!   renamed file, continues the old path's history.
//!
//! It answers questions about lines; which lines to ask about is `mine`'s business.

use crate::git::{GitError, HistoryCommit, Origin};
use git2::{Delta, DiffFindOptions, ObjectType, Oid, Repository};
use rayon::prelude::*;
use similar::{Algorithm, DiffOp, capture_diff_slices};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The history a `Blamer` answers about: commits, their parents, and which paths each
/// commit changed against its first parent. Read once and shared by every thread.
pub struct Commits {
    ids: Vec<Oid>,
    index: HashMap<Oid, u32>,
    parents: Vec<Vec<u32>>,
    paths: Vec<String>,
    path_ids: HashMap<String, u32>,
    /// Per path id: the commits whose tree differs from their first parent's there (a
    /// root commit, or one whose parent the clone lacks, "changes" all its paths).
    changers: Vec<HashSet<u32>>,
}

impl Commits {
    /// Diffs every commit's tree against its first parent's (names only, in parallel, one
    /// repository handle per task), calling `step` once per commit.
    pub fn read(path: &Path, history: &[HistoryCommit], step: &(dyn Fn() + Sync)) -> Result<Commits, GitError> {
        let index: HashMap<Oid, u32> = history.iter().enumerate().map(|(i, c)| (c.id, i as u32)).collect();
        let parents: Vec<Vec<u32>> = history
            .iter()
            .map(|c| c.parents.iter().filter_map(|p| index.get(p).copied()).collect())
            .collect();
        let changed: Vec<Result<Vec<String>, GitError>> = history
            .par_iter()
            .zip(&parents)
            .map_init(
                || Repository::open(path),
                |repo, (c, ps)| {
                    let repo = repo.as_ref().map_err(|e| git2::Error::from_str(e.message()))?;
                    let got = changed_paths(repo, c.id, ps.first().map(|&p| history[p as usize].id));
                    step();
                    match got {
                        // A tree the clone lacks: `mine` counts that commit as unreadable.
                        Err(GitError::Git(e)) if e.code() == git2::ErrorCode::NotFound => Ok(Vec::new()),
                        got => got,
                    }
                },
            )
            .collect();
        let mut commits = Commits {
            ids: history.iter().map(|c| c.id).collect(),
            index,
            parents,
            paths: Vec::new(),
            path_ids: HashMap::new(),
            changers: Vec::new(),
        };
        for (i, paths) in changed.into_iter().enumerate() {
            for p in paths? {
                let id = commits.intern(p);
                commits.changers[id as usize].insert(i as u32);
            }
        }
        Ok(commits)
    }

    fn intern(&mut self, p: String) -> u32 {
        if let Some(&id) = self.path_ids.get(&p) {
            return id;
        }
        let id = self.paths.len() as u32;
        self.path_ids.insert(p.clone(), id);
        self.paths.push(p);
        self.changers.push(HashSet::new());
        id
    }

    /// How many versions the path has: a measure of the work its questions take.
    pub fn versions(&self, path: &str) -> usize {
        self.path_ids.get(path).map_or(0, |&p| self.changers[p as usize].len())
    }

    /// The commit, at or before `c` on the first-parent chain, whose version of path `p`
    /// `c` has.
    fn version_of(&self, mut c: u32, p: u32) -> u32 {
        loop {
            if self.changers[p as usize].contains(&c) {
                return c;
            }
            match self.parents[c as usize].first() {
                Some(&q) => c = q,
                None => return c,
            }
        }
    }
}

/// The paths (old and new) of the files `id` changed against `parent` (the empty tree for
/// none).
fn changed_paths(repo: &Repository, id: Oid, parent: Option<Oid>) -> Result<Vec<String>, GitError> {
    let tree = repo.find_commit(id)?.tree()?;
    let old = parent.map(|p| repo.find_commit(p).and_then(|c| c.tree())).transpose()?;
    let diff = repo.diff_tree_to_tree(old.as_ref(), Some(&tree), None)?;
    let mut out = Vec::new();
    for d in diff.deltas() {
        for f in [d.old_file(), d.new_file()] {
            if let Some(p) = f.path_bytes()
                && !f.id().is_zero()
            {
                out.push(String::from_utf8_lossy(p).into_owned());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Where a line of a version was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    commit: u32,
    path: u32,
    /// 1-based, in the file at `commit`.
    line: u32,
}

/// One version of a file: its lines' hashes (whitespace removed) and origins.
struct Version {
    hashes: Vec<u64>,
    origins: Vec<Line>,
}

/// A version to compute: its blob and the parent versions it reads from (`same`: the
/// one parent version it equals).
struct Plan {
    blob: Option<Oid>,
    parents: Vec<(u32, u32)>,
    same: bool,
}

/// Answers blame questions on one thread, keeping the versions it has read until
/// `forget`.
pub struct Blamer<'c> {
    repo: Repository,
    commits: &'c Commits,
    memo: HashMap<(u32, u32), Arc<Version>>,
    /// Per commit: new path -> old path of the files it renamed.
    renames: HashMap<u32, HashMap<u32, u32>>,
}

impl<'c> Blamer<'c> {
    pub fn new(repo: Repository, commits: &'c Commits) -> Blamer<'c> {
        Blamer {
            repo,
            commits,
            memo: HashMap::new(),
            renames: HashMap::new(),
        }
    }

    /// Where `lines` (1-based) of `path` as of commit `at` were written. Lines past the
    /// file's end, and a commit or path the history does not hold, give nothing.
    pub fn blame(&mut self, at: Oid, path: &str, lines: &[u32]) -> Result<Vec<Origin>, GitError> {
        let (Some(&c), Some(&p)) = (self.commits.index.get(&at), self.commits.path_ids.get(path)) else {
            return Ok(Vec::new());
        };
        let v = self.version(c, p)?;
        Ok(lines
            .iter()
            .filter_map(|&l| {
                let o = v.origins.get((l as usize).checked_sub(1)?)?;
                Some(Origin {
                    line: l,
                    commit: self.commits.ids[o.commit as usize],
                    path: self.commits.paths[o.path as usize].clone(),
                    orig_line: o.line,
                })
            })
            .collect())
    }

    /// Drops the versions read so far (the next questions are about other files).
    pub fn forget(&mut self) {
        self.memo.clear();
    }

    /// The version of path `p` that commit `c` has, computing the versions it descends
    /// from first (with a stack, not recursion: a file can have thousands of versions).
    fn version(&mut self, c: u32, p: u32) -> Result<Arc<Version>, GitError> {
        let top = (self.commits.version_of(c, p), p);
        let mut stack = vec![top];
        let mut plans: HashMap<(u32, u32), Plan> = HashMap::new();
        while let Some(&node) = stack.last() {
            if self.memo.contains_key(&node) {
                stack.pop();
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = plans.entry(node) {
                let plan = self.plan(node.0, node.1)?;
                e.insert(plan);
            }
            let waiting: Vec<(u32, u32)> = plans[&node]
                .parents
                .iter()
                .filter(|n| !self.memo.contains_key(n))
                .copied()
                .collect();
            if !waiting.is_empty() {
                stack.extend(waiting);
                continue;
            }
            let plan = plans.remove(&node).expect("planned above");
            let v = self.compute(node, plan)?;
            self.memo.insert(node, v);
            stack.pop();
        }
        Ok(self.memo[&top].clone())
    }

    /// Which parent versions the version `(c, p)` reads from: only the one it equals, if
    /// any; else each parent's version of the path (the first parent's of a renamed one).
    fn plan(&mut self, c: u32, p: u32) -> Result<Plan, GitError> {
        let blob = self.blob(c, p)?;
        let mut parents = Vec::new();
        if blob.is_none() {
            return Ok(Plan {
                blob,
                parents,
                same: false,
            });
        }
        for (k, &q) in self.commits.parents[c as usize].iter().enumerate() {
            let path = match self.blob(q, p)? {
                Some(b) => Some((p, b)),
                None if k == 0 => match self.renamed_from(c, p)? {
                    Some(old) => self.blob(q, old)?.map(|b| (old, b)),
                    None => None,
                },
                None => None,
            };
            let Some((pq, b)) = path else { continue };
            let node = (self.commits.version_of(q, pq), pq);
            if Some(b) == blob {
                return Ok(Plan {
                    blob,
                    parents: vec![node],
                    same: true,
                });
            }
            parents.push(node);
        }
        Ok(Plan {
            blob,
            parents,
            same: false,
        })
    }

    fn compute(&mut self, (c, p): (u32, u32), plan: Plan) -> Result<Arc<Version>, GitError> {
        let Some(blob) = plan.blob else {
            return Ok(Arc::new(Version {
                hashes: Vec::new(),
                origins: Vec::new(),
            }));
        };
        if plan.same {
            return Ok(self.memo[&plan.parents[0]].clone());
        }
        let hashes = line_hashes(self.repo.find_blob(blob)?.content());
        let mut origins: Vec<Option<Line>> = vec![None; hashes.len()];
        for node in &plan.parents {
            let from = &self.memo[node];
            for op in capture_diff_slices(Algorithm::Myers, &from.hashes, &hashes) {
                if let DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } = op
                {
                    for i in 0..len {
                        let slot = &mut origins[new_index + i];
                        if slot.is_none() {
                            *slot = Some(from.origins[old_index + i]);
                        }
                    }
                }
            }
        }
        let origins = origins
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or(Line {
                    commit: c,
                    path: p,
                    line: i as u32 + 1,
                })
            })
            .collect();
        Ok(Arc::new(Version { hashes, origins }))
    }

    /// The blob of path `p` in commit `c`'s tree (`None`: absent, or not a file).
    fn blob(&self, c: u32, p: u32) -> Result<Option<Oid>, GitError> {
        let tree = self.repo.find_commit(self.commits.ids[c as usize])?.tree()?;
        let entry = match tree.get_path(Path::new(&self.commits.paths[p as usize])) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok((entry.kind() == Some(ObjectType::Blob)).then(|| entry.id()))
    }

    /// The path that commit `c` renamed to `p`, by libgit2's rename detection against the
    /// first parent (computed once per commit).
    fn renamed_from(&mut self, c: u32, p: u32) -> Result<Option<u32>, GitError> {
        if !self.renames.contains_key(&c) {
            let map = self.detect_renames(c)?;
            self.renames.insert(c, map);
        }
        Ok(self.renames[&c].get(&p).copied())
    }

    fn detect_renames(&self, c: u32) -> Result<HashMap<u32, u32>, GitError> {
        let Some(&q) = self.commits.parents[c as usize].first() else {
            return Ok(HashMap::new());
        };
        let tree = |i: u32| {
            self.repo
                .find_commit(self.commits.ids[i as usize])
                .and_then(|c| c.tree())
        };
        let (old, new) = (tree(q)?, tree(c)?);
        let mut diff = self.repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
        diff.find_similar(Some(DiffFindOptions::new().renames(true)))?;
        let id = |f: git2::DiffFile| {
            f.path_bytes()
                .and_then(|b| self.commits.path_ids.get(String::from_utf8_lossy(b).as_ref()).copied())
        };
        Ok(diff
            .deltas()
            .filter(|d| d.status() == Delta::Renamed)
            .filter_map(|d| Some((id(d.new_file())?, id(d.old_file())?)))
            .collect())
    }
}

/// A hash per line of `content`, of its bytes other than whitespace (so that changes of
/// whitespace alone leave a line unchanged, as `git blame -w`).
fn line_hashes(content: &[u8]) -> Vec<u64> {
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    if content.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == b'\n')
        .map(|line| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in line.iter().filter(|b| !b.is_ascii_whitespace() && **b != 0x0b) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use git2::{Signature, Time};

    /// A repository whose commits are written with fixed names and times.
    struct Fixture {
        dir: tempfile::TempDir,
        repo: Repository,
        time: i64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init(dir.path()).unwrap();
            Fixture {
                dir,
                repo,
                time: 1_700_000_000,
            }
        }

        /// A commit with `files` (path, content; `None` removes) on `parents`' first tree.
        fn commit(&mut self, parents: &[Oid], files: &[(&str, Option<&str>)]) -> Oid {
            let base = parents
                .first()
                .map(|&p| self.repo.find_commit(p).unwrap().tree().unwrap());
            let mut index = git2::Index::new().unwrap();
            if let Some(t) = &base {
                index.read_tree(t).unwrap();
            }
            for (path, content) in files {
                match content {
                    Some(text) => {
                        let blob = self.repo.blob(text.as_bytes()).unwrap();
                        let entry = git2::IndexEntry {
                            ctime: git2::IndexTime::new(0, 0),
                            mtime: git2::IndexTime::new(0, 0),
                            dev: 0,
                            ino: 0,
                            mode: 0o100644,
                            uid: 0,
                            gid: 0,
                            file_size: text.len() as u32,
                            id: blob,
                            flags: 0,
                            flags_extended: 0,
                            path: path.as_bytes().to_vec(),
                        };
                        index.add(&entry).unwrap();
                    }
                    None => index.remove_path(Path::new(path)).unwrap(),
                }
            }
            let tree = self.repo.find_tree(index.write_tree_to(&self.repo).unwrap()).unwrap();
            self.time += 60;
            let sig = Signature::new("t", "t@example.com", &Time::new(self.time, 0)).unwrap();
            let parents: Vec<git2::Commit> = parents.iter().map(|&p| self.repo.find_commit(p).unwrap()).collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            self.repo.commit(None, &sig, &sig, "c", &tree, &refs).unwrap()
        }

        fn blamer_at(&self, tip: Oid) -> (Vec<Oid>, Commits) {
            let (history, _) = crate::git::history(&self.repo, &tip.to_string()).unwrap();
            let commits = Commits::read(self.dir.path(), &history, &|| {}).unwrap();
            (history.iter().map(|c| c.id).collect(), commits)
        }
    }

    /// `(commit, path, line)` of each line asked about.
    fn ask(b: &mut Blamer, at: Oid, path: &str, lines: &[u32]) -> Vec<(Oid, String, u32)> {
        b.blame(at, path, lines)
            .unwrap()
            .into_iter()
            .map(|o| (o.commit, o.path, o.orig_line))
            .collect()
    }

    #[test]
    fn lines_go_to_the_commit_that_wrote_them_through_whitespace_and_renames() {
        let mut f = Fixture::new();
        let a = f.commit(&[], &[("a.c", Some("one\ntwo\nthree\n"))]);
        let b = f.commit(&[a], &[("a.c", Some("one\n  two  \nTHREE\nfour\n"))]);
        let c = f.commit(&[b], &[("a.c", None), ("moved.c", Some("one\n  two  \nTHREE\nfour\n"))]);
        let d = f.commit(&[c], &[("moved.c", Some("zero\none\n  two  \nTHREE\nfour\n"))]);
        let (_, commits) = f.blamer_at(d);
        let repo = Repository::open(f.dir.path()).unwrap();
        let mut b2 = Blamer::new(repo, &commits);
        let s = |p: &str| p.to_string();
        assert_eq!(
            ask(&mut b2, d, "moved.c", &[1, 2, 3, 4, 5, 9]),
            vec![
                (d, s("moved.c"), 1),
                (a, s("a.c"), 1),
                (a, s("a.c"), 2),
                (b, s("a.c"), 3),
                (b, s("a.c"), 4),
            ],
            "whitespace-only changes keep their origin, the rename is followed, line 9 is past the end"
        );
        assert_eq!(ask(&mut b2, b, "a.c", &[3]), vec![(b, s("a.c"), 3)]);
        assert_eq!(ask(&mut b2, a, "moved.c", &[1]), vec![], "no such path at a");
        b2.forget();
        assert_eq!(ask(&mut b2, c, "moved.c", &[2]), vec![(a, s("a.c"), 2)]);
    }

    #[test]
    fn a_merge_gives_each_line_to_the_parent_that_has_it() {
        let mut f = Fixture::new();
        let base = f.commit(&[], &[("m.c", Some("a\nb\nc\n"))]);
        let left = f.commit(&[base], &[("m.c", Some("a\nleft\nb\nc\n"))]);
        let right = f.commit(&[base], &[("m.c", Some("a\nb\nc\nright\n"))]);
        let merge = f.commit(&[left, right], &[("m.c", Some("a\nleft\nb\nc\nright\nresolved\n"))]);
        let (_, commits) = f.blamer_at(merge);
        let repo = Repository::open(f.dir.path()).unwrap();
        let mut b = Blamer::new(repo, &commits);
        let got: Vec<Oid> = ask(&mut b, merge, "m.c", &[1, 2, 3, 4, 5, 6])
            .into_iter()
            .map(|o| o.0)
            .collect();
        assert_eq!(got, vec![base, left, base, base, right, merge]);
        // A merge that takes one side's file as it is: that side's lines, all of them.
        let taken = f.commit(&[left, right], &[("m.c", Some("a\nb\nc\nright\n"))]);
        let (_, commits) = f.blamer_at(taken);
        let mut b = Blamer::new(Repository::open(f.dir.path()).unwrap(), &commits);
        let got: Vec<Oid> = ask(&mut b, taken, "m.c", &[1, 4]).into_iter().map(|o| o.0).collect();
        assert_eq!(got, vec![base, right]);
    }

    #[test]
    fn agrees_with_libgit2_blame_on_a_scripted_history() {
        let mut f = Fixture::new();
        let mut tip = f.commit(&[], &[("x.rs", Some("fn a() {}\n"))]);
        let mut text = String::from("fn a() {}\n");
        for i in 0..30 {
            // Insert, change and delete lines in a pattern that moves blocks around.
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.insert((i * 7) % (lines.len() + 1), format!("let v{i} = {i};"));
            if i % 3 == 0 && lines.len() > 2 {
                lines.remove((i * 5) % lines.len());
            }
            if i % 4 == 0 {
                let k = (i * 3) % lines.len();
                lines[k] = format!("    {}  ", lines[k].trim());
            }
            text = lines.join("\n") + "\n";
            tip = f.commit(&[tip], &[("x.rs", Some(&text))]);
        }
        let (_, commits) = f.blamer_at(tip);
        let mut b = Blamer::new(Repository::open(f.dir.path()).unwrap(), &commits);
        let n = text.lines().count() as u32;
        let ours = ask(&mut b, tip, "x.rs", &(1..=n).collect::<Vec<_>>());
        let mut opts = git2::BlameOptions::new();
        opts.newest_commit(tip).ignore_whitespace(true);
        let theirs = f.repo.blame_file(Path::new("x.rs"), Some(&mut opts)).unwrap();
        for (i, o) in ours.iter().enumerate() {
            let h = theirs.get_line(i + 1).unwrap();
            assert_eq!(o.0, h.final_commit_id(), "line {}", i + 1);
            assert_eq!(
                o.2 as usize,
                h.orig_start_line() + (i + 1 - h.final_start_line()),
                "line {}",
                i + 1
            );
        }
    }

    #[test]
    fn hashes_ignore_whitespace_and_count_a_last_line_without_newline() {
        assert_eq!(line_hashes(b""), Vec::<u64>::new());
        assert_eq!(line_hashes(b"a\n").len(), 1);
        assert_eq!(line_hashes(b"a\nb").len(), 2);
        assert_eq!(line_hashes(b"a b\n"), line_hashes(b" ab\t\r\n"));
        assert_ne!(line_hashes(b"ab\n"), line_hashes(b"ba\n"));
    }
}
