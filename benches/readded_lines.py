#!/usr/bin/env python3
"""Whether "it adds back a line a bug fix removed" is worth a reason (`src/history/similar.rs`): on
the labelled hunks of the nine projects (`../shared/data/jit/*.hunks.jsonl.gz`), hunks of non-fix
commits that add a line which a fix commit of the same project, authored before the commit, had
removed from the same file, and did not put back anywhere in that file (a moved line was not
what it fixed). The line must be code of at least MIN characters, whitespace collapsed, not an
import or include, and the
commit must not remove the same line from the file itself (a move) nor hold it elsewhere already
(counted from the diffs of the history; HELD=0 leaves this out). Prints, per project and
overall, how many such hunks, how many of them were later fixed (hunk_label 1), and how many
hunks of the same size (added lines in powers of two) would have been; and, of the later-fixed
ones, how often one of the fixes that implicate the commit removed the line again and put back
a line of the earlier fix's replacement (what the suggestion offers).

    python3 benches/readded_lines.py [MIN] [DATA_DIR]
"""
import gzip, json, re, os, sys, collections

MIN = int(sys.argv[1]) if len(sys.argv) > 1 else 20
HELD = os.environ.get('HELD', '1') == '1'
DATA = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'jit')
PROJECTS = ['szz-gin-gonic-gin', 'szz-pallets-flask', 'szz-BurntSushi-ripgrep', 'szz-axios-axios', 'szz-jqlang-jq',
            'szz-prometheus-client_golang', 'szz-curl-curl', 'apache-kafka', 'apache-activemq']
COMMENT = re.compile(r'^\s*(//|#|/\*|\*|--|"""|\'\'\')')
IMPORT = re.compile(r'^(import |from |#include|use |package |using |extern crate )')
NOT_SOURCE = re.compile(r'(test|spec|\.md$|\.txt$|\.json$|\.ya?ml$)', re.I)


def norm(line):
    return ' '.join(line.split())


def telling(line):
    return len(line) >= MIN and not IMPORT.match(line) and not COMMENT.match(line)


def hunks_of(diff):
    """(file, removed lines, added lines) of each hunk, whitespace collapsed."""
    out, path = [], None
    for line in diff.split('\n'):
        if line.startswith('diff --git'):
            path = line.split(' b/')[-1]
        elif line.startswith('@@'):
            out.append((path, [], []))
        elif line.startswith(('+++', '---')) or not out:
            continue
        elif line.startswith('-'):
            out[-1][1].append(norm(line[1:]))
        elif line.startswith('+'):
            out[-1][2].append(norm(line[1:]))
    return out


total = collections.Counter()
for project in PROJECTS:
    commits = {}
    for l in gzip.open(os.path.join(DATA, project + '.commits.jsonl.gz'), 'rt'):
        r = json.loads(l)
        commits[r['commit_id']] = r
    # (file, line) -> [(fix date, the fix hunk's added lines)]
    removed = collections.defaultdict(list)
    for c in commits.values():
        if not c.get('fix') or not c['diff']:
            continue
        hunks = hunks_of(c['diff'])
        put_back = collections.defaultdict(set)
        for path, _, add in hunks:
            put_back[path].update(add)
        for path, rem, add in hunks:
            if path is None or NOT_SOURCE.search(path):
                continue
            for line in rem:
                if telling(line) and line not in put_back[path]:
                    removed[(path, line)].append((c['author_date'], add))
    # How many copies of each line each file holds before each commit, from the diffs: a line
    # the file still holds elsewhere is an idiom of the file, not the code the fix took out.
    events = collections.defaultdict(list)  # (file, line) -> [(date, +1/-1)]
    for c in commits.values():
        for path, rem, add in hunks_of(c['diff'] or ''):
            for line in rem:
                if telling(line):
                    events[(path, line)].append((c['author_date'], -1))
            for line in add:
                if telling(line):
                    events[(path, line)].append((c['author_date'], 1))
    def copies(path, line, before):
        return sum(d for t, d in events.get((path, line), []) if t < before)
    by_size = collections.defaultdict(lambda: [0, 0])
    matched, same_fix, commits_hit = [], 0, set()
    for l in gzip.open(os.path.join(DATA, project + '.hunks.jsonl.gz'), 'rt'):
        h = json.loads(l)
        c = commits.get(h['commit_id'])
        if h['hunk_label'] == -1 or not c or c.get('fix'):
            continue
        adds = [norm(x[1:]) for x in h['hunk'].split('\n') if x.startswith('+')]
        if not adds:
            continue
        label = int(h['hunk_label'] == 1)
        size = min(len(adds), 64).bit_length()
        by_size[size][0] += 1
        by_size[size][1] += label
        moved = {line for path, rem, _ in hunks_of(c['diff'] or '') if path == h['file'] for line in rem}
        hits = [(line, fixes) for line in adds if telling(line) and line not in moved
                and (not HELD or copies(h['file'], line, c['author_date']) <= 0)
                for fixes in [[f for f in removed.get((h['file'], line), []) if f[0] < c['author_date']]] if fixes]
        if not hits:
            continue
        matched.append((size, label))
        commits_hit.add(h['commit_id'])
        if label:
            later = [hunks_of(commits[f]['diff'] or '') for f in c.get('fixed_by', []) if f in commits]
            same_fix += any(line in rem and any(a in add for _, replacement in fixes for a in replacement if len(a) >= 8)
                            for hs in later for path, rem, add in hs if path == h['file'] for line, fixes in hits)
    k, fixed = len(matched), sum(y for _, y in matched)
    expected = sum(by_size[s][1] / by_size[s][0] for s, _ in matched)
    hunks = sum(v[0] for v in by_size.values())
    print(f'{project:30s} {hunks:6d} hunks; {k:4d} add back a fixed line ({len(commits_hit):3d} commits): '
          f'later fixed {fixed:4d} ({fixed / max(k, 1):.1%}), same size {expected:6.1f} ({expected / max(k, 1):.1%}); '
          f'fixed again the same way {same_fix}')
    total.update(hunks=hunks, k=k, fixed=fixed, same=same_fix)
    total['expected'] += expected
print(f"all {total['hunks']} hunks: {total['k']} add back a fixed line; later fixed {total['fixed']} "
      f"({total['fixed'] / total['k']:.1%}), same size {total['expected']:.1f} ({total['expected'] / total['k']:.1%}); "
      f"fixed again the same way {total['same']} of {total['fixed']}")
