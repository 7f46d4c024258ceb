#!/usr/bin/env python3
"""What an issue tracker's export (`deepspark mine --bug-reports`) does to `mine`'s labels, on a
project whose data labels come from JIRA-linked bug reports (apache/kafka, apache/activemq in
`../shared/data/jit/`, from ApacheJIT). No tracker is reachable offline, so the export is
rebuilt from the data: the issue keys named in the messages of the data's fix commits and of
the fixes its `fixed_by` lists, all typed Bug (recall of fixes is then high by construction;
what it measures is what knowing the bug reports does to the fix and buggy labels). Mines the
repository at the newest of those fixes (`--grace-days 0`) three ways (message words alone,
words and export, export alone with `[mine] fix = []`) and prints each one's precision and
recall against the data's `fix` and `buggy` on the data's commits.

    python3 benches/fix_labels.py BIN REPO DATA.commits.jsonl.gz OUT_DIR
"""
import gzip, json, re, subprocess, sys, os
binp, mirror, data, out = sys.argv[1:5]
recs = [json.loads(l) for l in gzip.open(data)]
byid = {r['commit_id']: r for r in recs}
last = max(recs, key=lambda r: r['author_date'])['commit_id']
key = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*-\d+)\b")
bugs = set()
fixers = {r['commit_id'] for r in recs if r['fix']} | {f for r in recs for f in r['fixed_by']}
for sha in sorted(fixers):
        msg = subprocess.run(['git', '-C', mirror, 'log', '-1', '--format=%B', sha], capture_output=True, text=True).stdout
        for k in key.findall(msg):
            if re.match(r"(?i)(kafka|amq)-", k):
                bugs.add(k.upper())
dates = subprocess.run(['git', '-C', mirror, 'show', '-s', '--format=%H %at'] + sorted(fixers), capture_output=True, text=True).stdout.split()
latest = max(zip(map(int, dates[1::2]), dates[0::2]))
if latest[0] > byid[last]['author_date']:
    last = latest[1]
exp = os.path.join(out, 'bugs.json')
json.dump({"issues": [{"key": k, "fields": {"issuetype": {"name": "Bug"}}} for k in sorted(bugs)]}, open(exp, 'w'))
onlycfg = os.path.join(out, 'only.toml')
open(onlycfg, 'w').write('[mine]\nfix = []\n')
print(f"{len(bugs)} bug keys from the messages of {len(fixers)} fix commits (the data's and its fixed_by); mining at {last[:10]}")
def run(args):
    p = subprocess.run([binp, 'mine', '--jsonl', '-C', mirror, '--at', last, '--grace-days', '0'] + args, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr); sys.exit(1)
    m = {}
    for line in p.stdout.splitlines():
        v = json.loads(line)
        if 'hunk_label' not in v:
            m[v['commit_id']] = v
    return m, p.stderr.strip().splitlines()[-1]
def pr(name, pred, truth):
    tp = len(pred & truth)
    p = tp / len(pred) if pred else 0
    rc = tp / len(truth) if truth else 0
    return f"{name}: {len(pred)} predicted, precision {100*p:.1f}%, recall {100*rc:.1f}% (of {len(truth)})"
for name, args in [("words", []), ("words + export", ['--bug-reports', exp]), ("export only", ['--bug-reports', exp, '--config', onlycfg])]:
    m, summary = run(args)
    both = [c for c in byid if c in m]
    fix_t = {c for c in both if byid[c]['fix']}
    fix_p = {c for c in both if m[c]['fix']}
    bug_t = {c for c in both if byid[c]['buggy']}
    bug_p = {c for c in both if m[c]['buggy']}
    print(f"== {name} ({len(both)} of {len(byid)} data commits mined)\n  {summary}\n  fixes  {pr('', fix_p, fix_t)}\n  buggy  {pr('', bug_p, bug_t)}")
