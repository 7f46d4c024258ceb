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
