//! Labelled changes from JSONL files (plain or gzip) in the schema of the shared data:
//! `*.hunks.jsonl[.gz]` (one hunk per line) and `*.commits.jsonl[.gz]` (one commit per
//! line). Splits each project by commit `author_date` into train (oldest 70%),
//! calibration (next 10%) and test (latest 20%), or by a date (`Dataset::split_after`,
//! for `eval --after`). Hunks parse into the same
//! [`Hunk`](crate::diff::Hunk) that git produces, so training and review share one
//! encoding. Does not tokenize or score.

use crate::diff::Hunk;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Calib,
    Test,
    /// Every hunk (for projects without commit dates, or `--split all`).
    All,
}

#[derive(Deserialize)]
struct HunkRecord {
    commit_id: String,
    project: String,
    file: String,
    hunk_header: String,
    hunk: String,
    hunk_label: i8,
}

#[derive(Deserialize)]
struct CommitRecord {
    commit_id: String,
    project: String,
    buggy: bool,
    author_date: i64,
}

pub struct Sample {
    pub project: String,
    pub commit: String,
    pub path: String,
    pub hunk: Hunk,
    /// 1 risky, 0 clean, -1 ambiguous (other hunk of a buggy commit: never a training label).
    pub label: i8,
    pub split: Split,
    /// Size of the commit this hunk belongs to, over all its hunks in the data.
    pub change: crate::tokenize::ChangeStats,
}

pub struct Commit {
    pub project: String,
    pub id: String,
    pub buggy: bool,
    pub date: i64,
    pub split: Split,
}

#[derive(Default)]
pub struct Dataset {
    pub samples: Vec<Sample>,
    pub commits: Vec<Commit>,
    /// Hunks that could not be parsed (counted, reported, skipped).
    pub malformed: usize,
}

pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let gz = reader.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
    Ok(if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

enum Kind {
    Hunks,
    Commits,
    /// Both kinds in one file (what `deepspark mine` writes): told apart record by record.
    Mixed,
}

fn kind_of(path: &Path) -> Kind {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if name.contains(".hunks.") {
        Kind::Hunks
    } else if name.contains(".commits.") {
        Kind::Commits
    } else {
        Kind::Mixed
    }
}

/// Split position by rank among a project's commits sorted by date.
pub fn split_of(rank: usize, n: usize) -> Split {
    let f = (rank as f64 + 0.5) / n as f64;
    if f < 0.7 {
        Split::Train
    } else if f < 0.8 {
        Split::Calib
    } else {
        Split::Test
    }
}

impl Dataset {
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Dataset> {
        let mut hunks: Vec<HunkRecord> = Vec::new();
        let mut commits: Vec<CommitRecord> = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let mut reader = open(path)?;
            let kind = kind_of(path);
            let mut line = String::new();
            let mut n = 0usize;
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .with_context(|| format!("{}: read error after {n} records", path.display()))?;
                if read == 0 {
                    break;
                }
                n += 1;
                if line.trim().is_empty() {
                    continue;
                }
                let ctx = || format!("{}: record {n} does not match the schema", path.display());
                match kind {
                    Kind::Hunks => hunks.push(serde_json::from_str(&line).with_context(ctx)?),
                    Kind::Commits => commits.push(serde_json::from_str(&line).with_context(ctx)?),
                    Kind::Mixed => {
                        let v: serde_json::Value = serde_json::from_str(&line)
                            .with_context(|| format!("{}: record {n} is not JSON", path.display()))?;
                        if v.get("hunk_label").is_some() {
                            hunks.push(serde_json::from_value(v).with_context(ctx)?);
                        } else if v.get("author_date").is_some() {
                            commits.push(serde_json::from_value(v).with_context(ctx)?);
                        } else {
                            bail!(
                                "{}: record {n} is neither a hunk record (hunk_label) nor a commit record (author_date)",
                                path.display()
                            );
                        }
                    }
                }
            }
        }
        Ok(Self::assemble(hunks, commits))
    }

    fn assemble(hunks: Vec<HunkRecord>, commits: Vec<CommitRecord>) -> Dataset {
        let mut by_project: HashMap<&str, Vec<&CommitRecord>> = HashMap::new();
        for c in &commits {
            by_project.entry(&c.project).or_default().push(c);
        }
        let mut split: HashMap<(String, String), Split> = HashMap::new();
        let mut out = Dataset::default();
        for (_, mut cs) in by_project {
            cs.sort_by(|a, b| a.author_date.cmp(&b.author_date).then(a.commit_id.cmp(&b.commit_id)));
            let n = cs.len();
            for (rank, c) in cs.into_iter().enumerate() {
                let s = split_of(rank, n);
                split.insert((c.project.clone(), c.commit_id.clone()), s);
                out.commits.push(Commit {
                    project: c.project.clone(),
                    id: c.commit_id.clone(),
                    buggy: c.buggy,
                    date: c.author_date,
                    split: s,
                });
            }
        }
        for h in hunks {
            let Ok(hunk) = Hunk::parse(&h.hunk_header, &h.hunk) else {
                out.malformed += 1;
                continue;
            };
            let s = split
                .get(&(h.project.clone(), h.commit_id.clone()))
                .copied()
                .unwrap_or(Split::All);
            out.samples.push(Sample {
                project: h.project,
                commit: h.commit_id,
                path: h.file,
                hunk,
                label: h.hunk_label,
                split: s,
                change: Default::default(),
            });
        }
        // Change sizes: hunks, added lines and distinct files per commit.
        let mut stats: HashMap<(String, String), (crate::tokenize::ChangeStats, std::collections::HashSet<String>)> =
            HashMap::new();
        for s in &out.samples {
            let e = stats.entry((s.project.clone(), s.commit.clone())).or_default();
            e.0.hunks += 1;
            e.0.added += s.hunk.added();
            e.1.insert(s.path.clone());
        }
        for s in &mut out.samples {
            let (st, files) = &stats[&(s.project.clone(), s.commit.clone())];
            s.change = crate::tokenize::ChangeStats {
                files: files.len(),
                ..*st
            };
        }
        out
    }

    /// Whether a sample belongs to the requested split (`All` takes everything; samples
    /// without commit dates belong only to `All`).
    pub fn in_split(sample_split: Split, wanted: Split) -> bool {
        wanted == Split::All || sample_split == wanted
    }

    /// Re-splits by date instead of by rank: commits dated after `after` (up to `until`) are
    /// the test split, earlier ones the training split (the history a gate ranks against),
    /// later ones no split. Returns how many commits are in the test split.
    pub fn split_after(&mut self, after: i64, until: Option<i64>) -> usize {
        let split_of = |date: i64| match until {
            Some(u) if date > u => Split::All,
            _ if date > after => Split::Test,
            _ => Split::Train,
        };
        for c in &mut self.commits {
            c.split = split_of(c.date);
        }
        let by_commit: HashMap<(&str, &str), Split> = self
            .commits
            .iter()
            .map(|c| ((c.project.as_str(), c.id.as_str()), c.split))
            .collect();
        for s in &mut self.samples {
            if let Some(&split) = by_commit.get(&(s.project.as_str(), s.commit.as_str())) {
                s.split = split;
            }
        }
        self.commits.iter().filter(|c| c.split == Split::Test).count()
    }

    pub fn has_dates(&self) -> bool {
        self.samples.iter().any(|s| s.split != Split::All)
    }
}

/// A hash of `parts` that is the same on every machine and run (FNV-1a 64; each part ends
/// with a 0xff byte, which no UTF-8 text holds, so `["ab", "c"]` and `["a", "bc"]` differ).
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// At most `limit` of `items` (all of them for `None`), the same ones on every run: those
/// whose `key` (a [`stable_hash`]) is smallest, ties by position, kept in their order. A
/// hash, not the first N, so that a sample spreads over projects and dates, and an item
/// stays in the sample when others are added to the data (unless it is pushed out by a
/// smaller hash).
pub fn stable_sample<T>(items: Vec<T>, limit: Option<usize>, key: impl Fn(&T) -> u64) -> Vec<T> {
    let Some(limit) = limit else { return items };
    if limit >= items.len() {
        return items;
    }
    let mut order: Vec<(u64, usize)> = items.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    order.sort_unstable();
    let mut keep = vec![false; items.len()];
    for &(_, i) in &order[..limit] {
        keep[i] = true;
    }
    items
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(t, _)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stable_sample_is_the_same_on_every_run_and_keeps_the_order() {
        let items: Vec<String> = (0..100).map(|i| format!("item {i}")).collect();
        let key = |s: &String| stable_hash(&[s]);
        let a = stable_sample(items.clone(), Some(10), key);
        assert_eq!(a, stable_sample(items.clone(), Some(10), key));
        assert_eq!(a.len(), 10);
        let at: Vec<usize> = a.iter().map(|s| items.iter().position(|t| t == s).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "data order kept: {at:?}");
        assert_ne!(at, (0..10).collect::<Vec<_>>(), "not simply the first ten");
        // A larger sample holds the smaller one; no limit, or a large one, keeps everything.
        let b = stable_sample(items.clone(), Some(30), key);
        assert!(a.iter().all(|s| b.contains(s)));
        assert_eq!(stable_sample(items.clone(), None, key), items);
        assert_eq!(stable_sample(items.clone(), Some(500), key), items);
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        // Pinned: the hash must not change between versions, or samples would.
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(&["deepspark"]), 0x349f_96cd_87eb_d3f9);
    }

    #[test]
    fn splits_by_date_within_each_project() {
        let commits: Vec<CommitRecord> = (0..10)
            .map(|i| CommitRecord {
                commit_id: format!("c{i}"),
                project: "p".into(),
                buggy: i % 2 == 0,
                author_date: 100 - i,
            })
            .collect();
        let hunks = vec![HunkRecord {
            commit_id: "c9".into(),
            project: "p".into(),
            file: "a.rs".into(),
            hunk_header: "@@ -1 +1 @@".into(),
            hunk: "-a\n+b".into(),
            hunk_label: 1,
        }];
        let d = Dataset::assemble(hunks, commits);
        // c9 has the oldest date: it is in train.
        assert_eq!(d.samples[0].split, Split::Train);
        let test: Vec<_> = d
            .commits
            .iter()
            .filter(|c| c.split == Split::Test)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(test.len(), 2);
        assert!(test.contains(&"c0") && test.contains(&"c1"));
        assert_eq!(d.commits.iter().filter(|c| c.split == Split::Calib).count(), 1);
    }
}
