"""Reference figures for our Isolation Forest (workbench test `iforest_auc_matches_scikit_learn`).

Fits scikit-learn's IsolationForest (100 trees, max_samples='auto', contamination='auto') on
SMD machine-1-7's train split and scores its test split, for seeds 0..19, and prints the
ROC-AUC of each seed and their mean. Run:

    python3 -m venv V && V/bin/pip install numpy scikit-learn
    V/bin/python tests/reference/sklearn_iforest.py ../shared/datasets/smd
"""
import sys

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

root = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/smd"
m = "machine-1-7"
train = np.loadtxt(f"{root}/train/{m}.txt", delimiter=",")
test = np.loadtxt(f"{root}/test/{m}.txt", delimiter=",")
labels = np.loadtxt(f"{root}/test_label/{m}.txt")
aucs = []
for seed in range(20):
    model = IsolationForest(n_estimators=100, random_state=seed).fit(train)
    aucs.append(roc_auc_score(labels, -model.score_samples(test)))
print("per seed:", " ".join(f"{a:.4f}" for a in aucs))
print(f"mean ROC-AUC over 20 seeds: {np.mean(aucs):.4f} (std {np.std(aucs):.4f})")
