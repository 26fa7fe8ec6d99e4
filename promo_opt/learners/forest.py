"""Scoring a pooled LightGBM model for every arm without evaluating every tree for every arm.

The pooled learner predicts arm k by setting the arm's columns (its categorical and its terms) to
k's and running all trees. But a tree that never splits on an arm column gives the same value
whatever the arm: only the trees that do split on one need a pass per arm. With smooth models most
trees split on user features alone, so scoring K arms costs about ``1 + (K - 1) x share`` passes
instead of K (measured in ``benchmarks/bench_learners.py``).

:class:`CompiledForest` reads the booster's own dump (``Booster.dump_model``: split feature,
threshold, decision type, default direction, missing-value type, categorical sets, leaf values)
into flat arrays and evaluates them with numba, following LightGBM's decision rules
(``tree.h``: ``NumericalDecision`` and ``CategoricalDecision``):

* numeric split: NaN becomes 0 unless the missing type is NaN; a missing value (NaN for type NaN,
  zero for type Zero) goes the default way; else ``x <= threshold`` goes left;
* categorical split: NaN or a negative code goes right; a code in the split's set goes left.

Tests check the result against LightGBM's own ``predict`` to 1e-9 on data with missing values and
categoricals; a booster with anything else (linear trees, another objective) is not compiled and
LightGBM predicts as before.
"""

from __future__ import annotations

import numba
import numpy as np


SUPPORTED_OBJECTIVES = {"binary": "sigmoid", "poisson": "exp", "tweedie": "exp"}


class CompiledForest:
    """Flat arrays of a LightGBM booster's trees (best iteration), split into arm and other trees.

    A node's ``left``/``right`` child is a node index when >= 0, else ``~leaf_index`` within its tree.
    """

    def __init__(self, booster, arm_columns: list[str]):
        d = booster.dump_model(num_iteration=booster.best_iteration or None)
        obj = str(d.get("objective", "")).split()[0] if d.get("objective") else ""
        if obj not in SUPPORTED_OBJECTIVES or d.get("num_tree_per_iteration", 1) != 1:
            raise ValueError(f"objective {obj!r} is not compiled")
        self.link = SUPPORTED_OBJECTIVES[obj]
        self.feature_names = list(d["feature_names"])
        arm_idx = {self.feature_names.index(c) for c in arm_columns if c in self.feature_names}
        feat, thr, kind, dleft, miss, left, right = [], [], [], [], [], [], []
        cat_start, cat_len, cats, leaves, roots, leaf_start, arm_tree = [], [], [], [], [], [], []

        for tree in d["tree_info"]:
            if "tree_structure" not in tree:
                raise ValueError("tree without structure")
            root_offset, leaf_offset = len(feat), len(leaves)
            uses_arm = False
            node0 = tree["tree_structure"]
            if "leaf_value" in node0:  # a single-leaf tree: a constant
                roots.append(-1)
                leaf_start.append(leaf_offset)
                leaves.append(float(node0["leaf_value"]))
                arm_tree.append(False)
                continue
            stack = [node0]
            order = []
            while stack:  # number the split nodes depth first
                node = stack.pop()
                order.append(node)
                for child in (node["right_child"], node["left_child"]):
                    if "split_index" in child:
                        stack.append(child)
            index = {id(n): root_offset + i for i, n in enumerate(order)}
            n_leaves = tree["num_leaves"]
            tree_leaves = [0.0] * n_leaves
            for node in order:
                if "linear" in node or node.get("decision_type") not in ("<=", "=="):
                    raise ValueError("unsupported split")
                f = int(node["split_feature"])
                uses_arm |= f in arm_idx
                feat.append(f)
                if node["decision_type"] == "==":
                    members = [int(c) for c in str(node["threshold"]).split("||")]
                    kind.append(1)
                    cat_start.append(len(cats))
                    cat_len.append(len(members))
                    cats.extend(members)
                    thr.append(0.0)
                else:
                    kind.append(0)
                    cat_start.append(0)
                    cat_len.append(0)
                    thr.append(float(node["threshold"]))
                dleft.append(bool(node.get("default_left", False)))
                miss.append({"None": 0, "Zero": 1, "NaN": 2}[node.get("missing_type", "None")])
                for child, out in ((node["left_child"], left), (node["right_child"], right)):
                    if "split_index" in child:
                        out.append(index[id(child)])
                    else:
                        tree_leaves[int(child["leaf_index"])] = float(child["leaf_value"])
                        out.append(~int(child["leaf_index"]))
            roots.append(root_offset)
            leaf_start.append(leaf_offset)
            leaves.extend(tree_leaves)
            arm_tree.append(uses_arm)

        self.feat = np.asarray(feat, dtype=np.int32)
        self.thr = np.asarray(thr, dtype=np.float64)
        self.kind = np.asarray(kind, dtype=np.int8)
        self.dleft = np.asarray(dleft, dtype=np.bool_)
        self.miss = np.asarray(miss, dtype=np.int8)
        self.left = np.asarray(left, dtype=np.int32)
        self.right = np.asarray(right, dtype=np.int32)
        self.cat_start = np.asarray(cat_start, dtype=np.int32)
        self.cat_len = np.asarray(cat_len, dtype=np.int32)
        self.cats = np.asarray(cats if cats else [0], dtype=np.int64)
        self.leaves = np.asarray(leaves, dtype=np.float64)
        self.roots = np.asarray(roots, dtype=np.int32)
        self.leaf_start = np.asarray(leaf_start, dtype=np.int32)
        self.arm_tree = np.asarray(arm_tree, dtype=np.bool_)

    @property
    def arm_tree_share(self) -> float:
        return float(self.arm_tree.mean()) if len(self.arm_tree) else 0.0

    def raw(self, M: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Sum of the leaf values of the trees with ``which`` True, for rows of the float matrix ``M``."""
        M = np.ascontiguousarray(M, dtype=np.float64)
        trees = np.flatnonzero(which).astype(np.int32)
        return _raw(M, trees, self.roots, self.leaf_start, self.feat, self.thr, self.kind, self.dleft, self.miss,
                    self.left, self.right, self.cat_start, self.cat_len, self.cats, self.leaves)

    def response(self, raw: np.ndarray) -> np.ndarray:
        if self.link == "sigmoid":
            return 1.0 / (1.0 + np.exp(-raw))
        return np.exp(raw)


@numba.njit(parallel=True, cache=True)
def _raw(M, trees, roots, leaf_start, feat, thr, kind, dleft, miss, left, right, cat_start, cat_len, cats,
         leaves):  # pragma: no cover - compiled
    n = M.shape[0]
    out = np.zeros(n)
    for i in numba.prange(n):
        s = 0.0
        for t in trees:
            node = roots[t]
            if node < 0:
                s += leaves[leaf_start[t]]
                continue
            while node >= 0:
                x = M[i, feat[node]]
                if kind[node] == 0:
                    if np.isnan(x) and miss[node] != 2:
                        x = 0.0
                    if (miss[node] == 1 and abs(x) <= 1e-35) or (miss[node] == 2 and np.isnan(x)):
                        go_left = dleft[node]
                    else:
                        go_left = x <= thr[node]
                else:
                    go_left = False
                    if not np.isnan(x) and x >= 0:
                        c = np.int64(x)
                        for j in range(cat_start[node], cat_start[node] + cat_len[node]):
                            if cats[j] == c:
                                go_left = True
                                break
                node = left[node] if go_left else right[node]
            s += leaves[leaf_start[t] + ~node]
        out[i] = s
    return out
