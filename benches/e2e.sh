#!/usr/bin/env bash
# Times the release binary end to end (process start to last byte, model loading
# included) on fixtures of 50, 500 and 5,000 changed lines. Needs hyperfine
# (apt-get install hyperfine); falls back to bash's `time` without it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/deepspark"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for lines in 50 500 5000; do
    repo="$work/r$lines"
    git init -q "$repo"
    files=$(( (lines + 49) / 50 ))
    for version in 0 1; do
        for ((f = 0; f < files; f++)); do
            {
                echo "fn f$f() {"
                for ((i = 0; i < 50; i++)); do
                    if [[ $version == 1 && $((i % 2)) == 0 ]]; then
                        echo "    let value_$i = compute($f, $i).unwrap_or_default(); // changed"
                    else
                        echo "    let value_$i = compute($f, $i);"
                    fi
                done
                echo "}"
            } > "$repo/f$f.rs"
        done
        git -C "$repo" add -A
        git -C "$repo" -c user.name=b -c user.email=b@example.com commit -qm "v$version"
    done
    changed=$(git -C "$repo" diff --numstat HEAD~1 HEAD | awk '{s += $1 + $2} END {print s}')
    echo "== $changed changed lines (deepspark review HEAD~1)"
    if command -v hyperfine >/dev/null; then
        hyperfine -N --warmup 2 --runs 10 -i "$bin review -C $repo HEAD~1 --format json --fail-on never"
    else
        time ("$bin" review -C "$repo" HEAD~1 --format json --fail-on never > /dev/null)
    fi
done

# History scan: 1,000 commits, each a small change (3 changed lines in one of 20 files),
# written with git fast-import; `deepspark scan --max 1000` reports commits/s on stderr.
repo="$work/history"
git init -q "$repo"
python3 - "$repo" <<'PY'
import subprocess, sys
repo = sys.argv[1]
out = []
files = {f: [f"    let value_{i} = compute({f}, {i});" for i in range(60)] for f in range(20)}
for c in range(1001):
    f = c % 20
    if c > 0:
        for k in range(3):
            i = (c * 7 + k * 13) % 60
            files[f][i] = f"    let value_{i} = compute({f}, {i}).checked_add({c}).unwrap_or({k}); // {c}"
    out.append(f"commit refs/heads/main\ncommitter b <b@example.com> {1700000000 + c * 60} +0000\ndata <<EOF\nchange {c}\nEOF\n")
    for g in ([f] if c > 0 else range(20)):
        body = "fn f%d() {\n%s\n}\n" % (g, "\n".join(files[g]))
        out.append(f"M 100644 inline f{g}.rs\ndata {len(body.encode())}\n{body}\n")
subprocess.run(["git", "-C", repo, "fast-import", "--quiet"], input="".join(out).encode(), check=True)
subprocess.run(["git", "-C", repo, "checkout", "-q", "main"], check=True)
PY
echo "== history scan: 1,000 small commits (deepspark scan --max 1000)"
"$bin" scan -C "$repo" --max 1000 --fail-on never > /dev/null
if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 1 --runs 5 -i "$bin scan -C $repo --max 1000 --fail-on never"
fi
