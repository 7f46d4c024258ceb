//! Decides which files are not sent to the model: generated, vendored and lock files
//! (by path pattern), and files or changes over the size limits. Every skipped file
//! stays in the report with its reason; files over a limit are "not reviewed" and
//! make an LGTM impossible. Binary, submodule and symlink skips are made in `git.rs`.

use crate::diff::{FileDiff, Skip};

/// Paths skipped unless `--no-default-skips`.
pub const DEFAULT_PATTERNS: &[&str] = &[
    "**/Cargo.lock",
    "**/package-lock.json",
    "**/npm-shrinkwrap.json",
    "**/yarn.lock",
    "**/pnpm-lock.yaml",
    "**/go.sum",
    "**/poetry.lock",
    "**/Pipfile.lock",
    "**/Gemfile.lock",
    "**/composer.lock",
    "**/*.min.js",
    "**/*.min.css",
    "**/*.map",
    "**/*.pb.go",
    "**/*_pb2.py",
    "**/*.generated.*",
    "vendor/",
    // A JavaScript package's built bundles (axios commits its own at each release): what a
    // build wrote from the sources the change also holds, not code a reviewer reads.
    "dist/",
    "node_modules/",
    "third_party/",
];

pub struct Rules {
    pub patterns: Vec<String>,
    pub max_file_lines: usize,
    pub max_change_lines: usize,
}

/// Marks skipped files in place. Files already skipped (binary, ...) are left as they are.
pub fn apply(files: &mut [FileDiff], rules: &Rules) {
    let mut total = 0usize;
    for f in files.iter_mut().filter(|f| f.skip.is_none()) {
        let path = f.display_path();
        if let Some(p) = rules.patterns.iter().find(|p| matches(p, path)) {
            f.skip = Some(Skip::Generated { pattern: p.clone() });
            continue;
        }
        let lines = f.changed_lines();
        if lines > rules.max_file_lines {
            f.skip = Some(Skip::FileTooLarge {
                lines,
                limit: rules.max_file_lines,
            });
        } else if total + lines > rules.max_change_lines {
            f.skip = Some(Skip::ChangeTooLarge {
                limit: rules.max_change_lines,
            });
        } else {
            total += lines;
            continue;
        }
        // Skipped for size: drop the hunks so a huge diff is not carried further.
        f.hunks = Vec::new();
    }
}

/// Glob match on `/`-separated paths: `*` matches within one segment, a leading `**/`
/// matches any directories (including none), a trailing `/` matches a directory at any
/// depth. A pattern without `/` matches the file name at any depth.
pub fn matches(pattern: &str, path: &str) -> bool {
    if let Some(dir) = pattern.strip_suffix('/') {
        let segs: Vec<&str> = path.split('/').collect();
        return segs[..segs.len().saturating_sub(1)].iter().any(|s| glob(dir, s))
            || (dir.contains('/') && (path.starts_with(&format!("{dir}/"))));
    }
    if let Some(rest) = pattern.strip_prefix("**/") {
        let segs: Vec<&str> = path.split('/').collect();
        return (0..segs.len()).any(|i| matches(rest, &segs[i..].join("/")));
    }
    if !pattern.contains('/') {
        let name = path.rsplit('/').next().unwrap_or(path);
        return glob(pattern, name);
    }
    let (p, s): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == s.len() && p.iter().zip(&s).all(|(a, b)| glob(a, b))
}

/// `*` and `?` within one segment.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_patterns_match_what_they_say() {
        let m = |path: &str| DEFAULT_PATTERNS.iter().any(|p| matches(p, path));
        assert!(m("Cargo.lock"));
        assert!(m("crates/x/Cargo.lock"));
        assert!(m("web/app.min.js"));
        assert!(m("vendor/github.com/x/y.go"));
        assert!(m("a/node_modules/b/index.js"));
        assert!(m("dist/axios.js") && m("dist/esm/axios.js") && m("packages/x/dist/index.cjs"));
        assert!(!m("src/distance.rs") && !m("dist.go"));
        assert!(!m("src/vendor.rs"));
        assert!(!m("src/main.rs"));
        assert!(!m("src/min.js"));
    }

    #[test]
    fn user_patterns() {
        assert!(matches("docs/*.md", "docs/a.md"));
        assert!(!matches("docs/*.md", "docs/x/a.md"));
        assert!(matches("*.snap", "tests/snapshots/a.snap"));
        assert!(matches("gen/", "src/gen/a.rs"));
        assert!(matches("src/gen/", "src/gen/a.rs"));
    }
}
