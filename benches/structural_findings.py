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
import gzip, json, re, glob, collections, os, sys
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
            if r != a and len(r) == len(a) + 1 or len(a) == len(r) + 1:
                nr, na = norm(r), norm(a)
                for x, y in (('<=', '<'), ('>=', '>')):
                    if nr.replace(x, y) == na.replace(x, y) and nr != na and (x in nr or x in na):
                        out.add('bound_changed')
    # an error swallowed: empty catch / except-pass added
    txt = '\n'.join(add)
    if re.search(r'catch\s*\([^)]*\)\s*\{\s*\}', txt) or re.search(r'except[^:]*:\s*\n?\s*pass\b', txt) or re.search(r'\b_\s*=\s*err\b', txt):
        out.add('error_swallowed')
    return out
tot = collections.Counter(); hit = collections.Counter(); per = collections.defaultdict(collections.Counter)
for f in sorted(glob.glob(DATA + '/*.hunks.jsonl.gz')):
    proj = f.split('/')[-1].split('.')[0]
    for l in gzip.open(f, 'rt'):
        d = json.loads(l)
        if not CODE.search(d['file']) or 'test' in d['file'].lower(): continue
        lab = str(d['hunk_label'])
        if lab not in ('1', '0'): continue  # buggy hunks vs hunks of clean commits
        y = lab == '1'
        tot[y] += 1; per[proj][('all', y)] += 1
        for k in findings(d['hunk']):
            hit[(k, y)] += 1; per[proj][(k, y)] += 1
base = tot[True] / (tot[True] + tot[False])
print('base buggy-hunk rate %.3f over %d production hunks' % (base, tot[True] + tot[False]))
for k in ('removed_check', 'bound_changed', 'error_swallowed'):
    n = hit[(k, True)] + hit[(k, False)]
    print(k, 'n', n, 'buggy rate %.3f' % (hit[(k, True)] / n if n else 0), 'lift %.2f' % ((hit[(k, True)] / n) / base if n else 0))
    for p in sorted(per):
        a, b = per[p][(k, True)], per[p][(k, False)]
        ba, bb = per[p][('all', True)], per[p][('all', False)]
        if a + b: print('   %-28s n %4d rate %.3f base %.3f' % (p, a + b, a / (a + b), ba / (ba + bb)))
# Size-matched control: hunks with removed lines, bucketed by changed-line count.
def size(h): return sum(1 for l in h.split('\n') if l[:1] in '+-')
ctl = collections.Counter(); fnd = collections.Counter()
for f in sorted(glob.glob(DATA + '/*.hunks.jsonl.gz')):
    for l in gzip.open(f, 'rt'):
        d = json.loads(l)
        if not CODE.search(d['file']) or 'test' in d['file'].lower(): continue
        lab = str(d['hunk_label'])
        if lab not in ('1', '0'): continue
        h = d['hunk']
        if not any(x.startswith('-') for x in h.split('\n')): continue
        b = min(size(h) // 5, 8); y = lab == '1'
        ctl[(b, y)] += 1
        if 'removed_check' in findings(h): fnd[(b, y)] += 1
exp = 0; obs = 0; n = 0
for b in range(9):
    fb = fnd[(b, True)] + fnd[(b, False)]
    cb = ctl[(b, True)] + ctl[(b, False)]
    if fb and cb:
        exp += fb * ctl[(b, True)] / cb; obs += fnd[(b, True)]; n += fb
print('removed_check, size-matched among hunks that remove lines: n %d observed buggy %d expected %.1f (rate %.3f vs %.3f)' % (n, obs, exp, obs / n, exp / n))
ctl = collections.Counter(); fnd = collections.Counter()
for f in sorted(glob.glob(DATA + '/*.hunks.jsonl.gz')):
    for l in gzip.open(f, 'rt'):
        d = json.loads(l)
        if not CODE.search(d['file']) or 'test' in d['file'].lower(): continue
        lab = str(d['hunk_label'])
        if lab not in ('1', '0'): continue
        h = d['hunk']; b = min(size(h) // 5, 8); y = lab == '1'
        ctl[(b, y)] += 1
        for k in findings(h): fnd[(k, b, y)] += 1
for k in ('bound_changed', 'error_swallowed'):
    exp = obs = n = 0
    for b in range(9):
        fb = fnd[(k, b, True)] + fnd[(k, b, False)]; cb = ctl[(b, True)] + ctl[(b, False)]
        if fb and cb: exp += fb * ctl[(b, True)] / cb; obs += fnd[(k, b, True)]; n += fb
    print('%s size-matched: n %d observed %d expected %.1f (rate %.3f vs %.3f)' % (k, n, obs, exp, obs / n, exp / n))
