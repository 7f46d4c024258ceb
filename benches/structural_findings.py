#!/usr/bin/env python3
"""Whether a candidate structural finding is worth a reason: on the labelled hunks of the nine
projects (`../shared/data/jit/*.hunks.jsonl.gz`; production code files only, tests left out), how
often hunks with the finding were later fixed (hunk_label 1) against hunks of clean commits (0),
overall and against hunks of the same size (changed lines in buckets of 5; for a removed check,
among hunks that remove lines), since larger hunks are fixed more often whatever they hold.

    python3 benches/structural_findings.py [DATA_DIR]

A finding is kept (made a `syntax` reason) only when its hunks are fixed clearly more often than
size-matched ones; the README says what this printed and which were kept.
"""
import gzip, json, re, glob, os, sys
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'jit')
CHECK = re.compile(r'(!=|==)\s*(nil|NULL|null|None|undefined)\b|\bis (not )?None\b|(nil|NULL|null|None)\s*(!=|==)|if\s*\(?\s*!\s*\w+\s*\)|\berr\s*!=\s*nil')
CODE = re.compile(r'\.(go|c|h|cc|cpp|java|js|ts|py|rs)$')
def norm(l): return re.sub(r'\s+', '', l)
def findings(h):
    rem = [l[1:] for l in h.split('\n') if l.startswith('-')]
    add = [l[1:] for l in h.split('\n') if l.startswith('+')]
    out = set()
    # a removed null/error check not put back
    rc = [l for l in rem if CHECK.search(l) and not l.strip().startswith(('//','#','*'))]
    ac = [l for l in add if CHECK.search(l)]
    if rc and len(ac) < len(rc): out.add('removed_check')
    # a bound changed: same line but < <-> <= or > <-> >=
    for r in rem:
        for a in add:
            if abs(len(r) - len(a)) == 1:
                nr, na = norm(r), norm(a)
                for x, y in (('<=', '<'), ('>=', '>')):
                    if nr.replace(x, y) == na.replace(x, y) and nr != na and (x in nr or x in na):
                        out.add('bound_changed')
    # an error swallowed: empty catch / except-pass added
    txt = '\n'.join(add)
    if re.search(r'catch\s*\([^)]*\)\s*\{\s*\}', txt) or re.search(r'except[^:]*:\s*\n?\s*pass\b', txt) or re.search(r'\b_\s*=\s*err\b', txt):
        out.add('error_swallowed')
    return out
def size(h):
    return sum(1 for l in h.split('\n') if l[:1] in '+-')


# One pass over the labelled hunks: (project, later fixed?, size bucket, removes lines?, findings).
rows = []
for f in sorted(glob.glob(DATA + '/*.hunks.jsonl.gz')):
    proj = f.split('/')[-1].split('.')[0]
    for l in gzip.open(f, 'rt'):
        d = json.loads(l)
        if not CODE.search(d['file']) or 'test' in d['file'].lower():
            continue
        lab = str(d['hunk_label'])
        if lab not in ('1', '0'):  # buggy hunks against hunks of clean commits
            continue
        h = d['hunk']
        removes = any(x.startswith('-') for x in h.split('\n'))
        rows.append((proj, lab == '1', min(size(h) // 5, 8), removes, findings(h)))

base = sum(r[1] for r in rows) / len(rows)
print('base buggy-hunk rate %.3f over %d production hunks' % (base, len(rows)))
for k in ('removed_check', 'bound_changed', 'error_swallowed'):
    hit = [r for r in rows if k in r[4]]
    if not hit:
        continue
    rate = sum(r[1] for r in hit) / len(hit)
    print(k, 'n', len(hit), 'buggy rate %.3f' % rate, 'lift %.2f' % (rate / base))
    for p in sorted({r[0] for r in hit}):
        mine = [r for r in hit if r[0] == p]
        alls = [r for r in rows if r[0] == p]
        print('   %-28s n %4d rate %.3f base %.3f' % (p, len(mine), sum(r[1] for r in mine) / len(mine),
                                                      sum(r[1] for r in alls) / len(alls)))
    # Against hunks of the same size (for a removed check: among hunks that remove lines).
    pool = [r for r in rows if r[3]] if k == 'removed_check' else rows
    expected = 0.0
    for b in range(9):
        in_b = [r for r in pool if r[2] == b]
        if in_b:
            expected += sum(1 for r in hit if r[2] == b) * sum(r[1] for r in in_b) / len(in_b)
    observed = sum(r[1] for r in hit)
    print('%s size-matched: n %d observed %d expected %.1f (rate %.3f vs %.3f)'
          % (k, len(hit), observed, expected, observed / len(hit), expected / len(hit)))
