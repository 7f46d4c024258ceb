#!/usr/bin/env python3
"""Whether the author facts of just-in-time defect prediction (Kamei et al., TSE 2013: the
author's experience with the files, how many people changed them) are worth a `history`
reason: on the labelled hunks of the nine projects (`../shared/data/jit/*.hunks.jsonl.gz`,
labels 0 and 1) of files that existed before the commit, the share later fixed (hunk_label
1) by how many earlier commits of the same author (email) changed the file ("new": none,
"few": 1-4, "many": 5+), and by how many people changed it in the year before ("0-1", "2-3",
"4+"). Each class is compared with the first class's rate at the same size mix (added lines
0-2, 3-6, 7-20, 21+). The histories come from the repositories' mirrors (`fetch`), all
branches, merges left out, no rename detection.

    python3 benches/author_facts.py [MIRRORS_DIR] [DATA_DIR]
"""
import gzip, json, os, subprocess, sys, collections

MIRRORS = sys.argv[1] if len(sys.argv) > 1 else '/work/.mirror'
DATA = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'jit')
P = [("gin","gin-gonic+gin","szz-gin-gonic-gin"),("flask","pallets+flask","szz-pallets-flask"),
     ("ripgrep","BurntSushi+ripgrep","szz-BurntSushi-ripgrep"),("axios","axios+axios","szz-axios-axios"),
     ("jq","jqlang+jq","szz-jqlang-jq"),("client_golang","prometheus+client_golang","szz-prometheus-client_golang"),
     ("curl","curl+curl","szz-curl-curl"),("kafka","apache+kafka","apache-kafka"),("activemq","apache+activemq","apache-activemq")]
YEAR = 365*86400
def log(mirror):
    out = subprocess.run(['git','-C',os.path.join(MIRRORS, mirror, 'repo'),'log','--all','--no-merges','--no-renames','--format=@%H %at %ae','--name-only'],capture_output=True,text=True).stdout
    commits = {}
    cur = None
    for line in out.split('\n'):
        if line.startswith('@'):
            h, t, e = line[1:].split(' ', 2)
            cur = [int(t), e.lower(), []]
            commits[h] = cur
        elif line.strip() and cur is not None:
            cur[2].append(line.strip())
    byfile = collections.defaultdict(list)
    for h, (t, e, files) in commits.items():
        for f in files:
            byfile[f].append((t, e, h))
    for f in byfile: byfile[f].sort()
    return commits, byfile
def added(h):
    return sum(1 for l in h.split('\n') if l.startswith('+'))
for name, mirror, data in P:
    fn = os.path.join(DATA, f"{data}.hunks.jsonl.gz")
    if not os.path.exists(fn):
        print("missing", fn); continue
    commits, byfile = log(mirror)
    groups = collections.defaultdict(lambda: [0,0])  # (newcomer, sizebucket) -> [n, pos]
    dev = collections.defaultdict(lambda: [0,0])
    for line in gzip.open(fn):
        r = json.loads(line)
        if r['hunk_label'] not in (0,1): continue
        c = commits.get(r['commit_id'])
        if c is None: continue
        t, e, _ = c
        hist = [x for x in byfile.get(r['file'], []) if x[0] < t and x[2] != r['commit_id']]
        if not hist: continue
        own = sum(1 for x in hist if x[1] == e)
        devs = len({x[1] for x in hist if x[0] >= t - YEAR})
        a = added(r['hunk'])
        b = 0 if a <= 2 else 1 if a <= 6 else 2 if a <= 20 else 3
        k = ('new' if own == 0 else 'few' if own < 5 else 'many', b)
        groups[k][0] += 1; groups[k][1] += r['hunk_label']
        dk = ('0-1' if devs <= 1 else '2-3' if devs <= 3 else '4+', b)
        dev[dk][0] += 1; dev[dk][1] += r['hunk_label']
    def matched(groups, cls, base):
        # rate of cls vs rate of base reweighted to cls's size mix
        n = sum(groups[(cls,b)][0] for b in range(4))
        if n == 0: return None
        r = sum(groups[(cls,b)][1] for b in range(4))/n
        exp = sum(groups[(cls,b)][0]/n * (groups[(base,b)][1]/groups[(base,b)][0] if groups[(base,b)][0] else 0) for b in range(4))
        return n, r, exp
    s = []
    for cls in ['new','few','many']:
        m = matched(groups, cls, 'many')
        if m: s.append(f"{cls}: {m[0]} hunks {100*m[1]:.1f}% ('many' at this size mix {100*m[2]:.1f}%)")
    d = []
    for cls in ['0-1','2-3','4+']:
        m = matched(dev, cls, '0-1')
        if m: d.append(f"{cls}: {m[0]} {100*m[1]:.1f}% ('0-1' at this size mix {100*m[2]:.1f}%)")
    print(name, "| author's earlier commits to file:", "; ".join(s))
    print("   people in last year:", "; ".join(d), flush=True)
