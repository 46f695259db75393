#!/usr/bin/env python3
"""Cross-validated NAB figures (docs/results.md): the NAB score with the threshold -- and, over a
grid, the detector's settings -- chosen on the other files (leave one file out) or the other
categories (leave one category out), scored on the held-out part. Scoring follows NAB's
sweeper on a 2,400-point threshold grid (it reproduces `experiment evaluate` to 0.01).
Needs numpy (a virtualenv: python3 -m venv V && V/bin/pip install numpy).

  V/bin/python experiments/nab-cv/cv.py context_tail '{"short_window": [12, 24, 36], "persistence_rows": [2, 3]}'
  V/bin/python experiments/nab-cv/cv.py context_tail                   # the defaults, threshold only
  V/bin/python experiments/nab-cv/cv.py --scores $AIOPS_DATASETS/nab-results/ARTime
"""
"""NAB scoring (as NAB's sweeper) on a threshold grid, per file, for leave-one-out selection."""
import numpy as np, json, csv, glob, os, math
ROOT=os.path.join(os.environ.get('AIOPS_DATASETS', os.path.join(os.path.dirname(__file__), '..', '..', '..', 'shared', 'datasets')), 'nab')
WINS=json.load(open(f'{ROOT}/labels/combined_windows.json'))
PROFILES={'standard':(1.0,0.11,1.0),'reward_low_FP_rate':(1.0,0.22,1.0),'reward_low_FN_rate':(1.0,0.11,2.0)}
def sig(y): return -1.0 if y>3 else 2/(1+math.exp(5*y))-1
_ctx={}
def context(key):
    """per row: weight (sigmoid), window index or -1; probation mask"""
    if key in _ctx: return _ctx[key]
    ts=[r[0] for r in list(csv.reader(open(f'{ROOT}/{key}')))[1:]]
    n=len(ts); prob=min(math.floor(0.15*n), 750)
    wl=[(a[:19],b[:19]) for a,b in WINS[key]]
    w=np.zeros(n); win=-np.ones(n,dtype=int)
    cur=None; prev=None; wi=0; maxtp=sig(-1)
    for i,t in enumerate(ts):
        if wl and t==wl[0][0]:
            a,b=wl.pop(0); right=ts.index(b); width=right-ts.index(a)+1; cur=(right,width,wi,b); wi+=1
        if cur: w[i]=sig(-(cur[0]-i+1)/cur[1])/maxtp; win[i]=cur[2]
        elif prev is None: w[i]=-1
        else: w[i]=sig(abs(prev[0]-i)/(prev[1]-1))
        if cur and t==cur[3]: prev=(i,cur[1]); cur=None
    keep=np.arange(n)>=prob
    _ctx[key]=(w[keep],win[keep],wi)
    return _ctx[key]
def read_scores(d):
    out={}
    for f in glob.glob(d+'/*/*.csv'):
        cat=f.split('/')[-2]
        key=[k for k in WINS if k.startswith(cat+'/') and f.endswith('_'+k.split('/')[1])][0]
        rows=list(csv.reader(open(f))); si=rows[0].index('anomaly_score')
        s=np.array([float(r[si]) for r in rows[1:]])
        n=len(s); prob=min(math.floor(0.15*n),750)
        out[key]=s[prob:]
    return out
def raw_by_threshold(key, s, thr, prof):
    """raw score of one file at each threshold in thr (ascending array)"""
    tpw,fpw,fnw=PROFILES[prof]
    w,win,nw=context(key)
    out=np.zeros(len(thr))
    fp=win<0
    if fp.any():
        sf=s[fp]; wf=w[fp]*fpw
        o=np.argsort(-sf); sf=sf[o]; cs=np.cumsum(wf[o])
        # rows with score>=t: count = number of sf >= t
        cnt=np.searchsorted(-sf, -thr, side='right')
        out+=np.where(cnt>0, cs[np.maximum(cnt-1,0)], 0.0)
    for k in range(nw):
        m=win==k
        if not m.any(): out-=fnw; continue
        sw=s[m]; ww=w[m]
        o=np.argsort(-sw); sw=sw[o]; rm=np.maximum.accumulate(ww[o])
        cnt=np.searchsorted(-sw, -thr, side='right')
        out+=np.where(cnt>0, tpw*rm[np.maximum(cnt-1,0)], -fnw)
    return out
def normalized(total_raw, nwin, prof):
    tpw,fpw,fnw=PROFILES[prof]; null=-fnw*nwin; perfect=tpw*nwin
    return 100*(total_raw-null)/(perfect-null)
THR=np.unique(np.concatenate([np.linspace(0,1,2001), 1-np.logspace(-8,-0.5,400)]))
def matrix(scores, prof):
    keys=sorted(scores)
    return keys, np.array([raw_by_threshold(k, scores[k], THR, prof) for k in keys])
def corpus(scores, prof):
    keys,M=matrix(scores,prof); tot=M.sum(0); j=tot.argmax()
    nw=sum(context(k)[2] for k in keys)
    return normalized(tot[j], nw, prof), THR[j]
def loo(configs_scores, prof):
    """configs_scores: list of dict key->scores. Returns LOO normalized score and chosen config per file."""
    mats=[matrix(cs,prof)[1] for cs in configs_scores]
    keys=sorted(configs_scores[0]); nw=sum(context(k)[2] for k in keys)
    total=0.0; chosen=[]
    for fi in range(len(keys)):
        best=None
        for ci,M in enumerate(mats):
            others=M.sum(0)-M[fi]; j=others.argmax()
            if best is None or others[j]>best[0]: best=(others[j],ci,j)
        _,ci,j=best; chosen.append(ci); total+=mats[ci][fi,j]
    return normalized(total,nw,prof), chosen

def loo_groups(configs_scores, prof, group_of):
    """Leave one group (e.g. NAB category) out: config + threshold chosen on the other groups."""
    mats=[matrix(cs,prof)[1] for cs in configs_scores]
    keys=sorted(configs_scores[0]); nw=sum(context(k)[2] for k in keys)
    groups=sorted(set(group_of(k) for k in keys)); total=0.0; chosen={}
    for g in groups:
        idx=[i for i,k in enumerate(keys) if group_of(k)==g]
        best=None
        for ci,M in enumerate(mats):
            others=M.sum(0)-M[idx].sum(0); j=others.argmax()
            if best is None or others[j]>best[0]: best=(others[j],ci,j)
        _,ci,j=best; chosen[g]=ci; total+=mats[ci][idx,j].sum()
    return normalized(total,nw,prof), chosen

# --- driver -------------------------------------------------------------------------------
import itertools, shutil, subprocess, sys, tempfile

EXPERIMENT = os.environ.get('EXPERIMENT', 'target/release/experiment')

def scores_of(params, kind):
    """Run `experiment evaluate --nab` with these settings; per-file scores after probation."""
    tmp = tempfile.mkdtemp()
    toml = os.path.join(tmp, 'det.toml')
    with open(toml, 'w') as f:
        f.write(f'kind = "{kind}"\n' + ''.join(f'{k} = {v}\n' for k, v in params.items()))
    out = os.path.join(tmp, 'scores')
    subprocess.run([EXPERIMENT, 'evaluate', '--nab', '--config', toml, '--write-scores', out, '--json'],
                   check=True, capture_output=True)
    s = read_scores(out)
    shutil.rmtree(tmp)
    return s

def main():
    """cv.py KIND '{"key": [values], ...}'  |  cv.py --scores DIR (a results folder, threshold only)."""
    category = lambda k: k.split('/')[0]
    if sys.argv[1] == '--scores':
        grid = [({}, read_scores(sys.argv[2]))]
    else:
        kind, space = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else '{}')
        names = list(space)
        grid = []
        for values in itertools.product(*space.values()):
            params = dict(zip(names, values))
            grid.append((params, scores_of(params, kind)))
    print('profile             in-sample best  leave-one-file-out  leave-one-category-out')
    for p in PROFILES:
        best = max(corpus(s, p)[0] for _, s in grid)
        lofo, _ = loo([s for _, s in grid], p)
        loco, _ = loo_groups([s for _, s in grid], p, category)
        print(f'{p:<20}{best:>14.2f}{lofo:>20.2f}{loco:>24.2f}')

if __name__ == '__main__':
    main()
