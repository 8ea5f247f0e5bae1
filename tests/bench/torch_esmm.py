#!/usr/bin/python3
"""PyTorch reference ESMM trainer, the peer `funnel` is measured against.

It exists for two measurements only: AUC parity (same model, same data, same
training procedure as `funnel train --model esmm`) and throughput (examples
per second of an idiomatic, reasonably fast CPU PyTorch implementation).

Model (what the C implementation must match)
--------------------------------------------
Features.  Ali-CCP input: a skeleton line
`sample_id,click,buy,md5,feature_count,features` gets its own features plus
all features of the common line `md5,feature_count,features` it names.
`features` is `field\\x02feature_id\\x03value` items joined by `\\x01`
(feature_count is not checked). Only
the F fields of --fields are used (default: the 23 below); other fields are
ignored. Every distinct (field, feature_id) seen in the TRAINING data owns
one row of a single embedding table of dimension D (rows are numbered in
order of first appearance, common features of a line before its own; the
numbering only decides which random initial value a feature draws).
Test features never seen in training are dropped, which is the same as
looking up an all-zero row that is never updated. (The C trainer instead
gives an unseen key a freshly initialised random row; the difference only
touches test examples with unseen features.)

Embedding.  Rows initialised U(-0.05, 0.05). For example i and field f,
    e_f = sum_{features k of i in field f} value_k * emb[k]
(zero vector when i has no feature of field f), computed with
nn.EmbeddingBag(mode='sum', per_sample_weights=value), one bag per
(example, field). x = concat(e_1, ..., e_F), shape [B, F*D] (368 for the
defaults).

Towers.  CTR and CVR towers of identical shape, no shared weights:
    Linear(F*D, 200) -> ReLU -> Linear(200, 80) -> ReLU -> Linear(80, 1)
(--hidden changes the hidden widths), PyTorch default Linear init, i.e.
weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pCTR = sigmoid(z_ctr), pCVR = sigmoid(z_cvr), pCTCVR = pCTR * pCVR.

Loss (ESMM, both terms means over the batch, summed with weight 1 each):
    L = BCE_with_logits(z_ctr, click)
      + BCE(clamp(pCTCVR, 1e-7, 1 - 1e-7), click AND buy)
(the clamp passes no gradient where it is active, as torch.clamp does).

Optimizers.  Embedding table: Adagrad, lr 0.05, accumulator starts at 0,
eps 1e-10, on sparse gradients (each touched row's gradient summed over the
batch, then a += g^2; w -= lr * g / (sqrt(a) + eps); untouched rows are not
changed). Towers: Adam, lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight
decay.

Training.  --epochs passes over the training file in file order (no
shuffling), batches of --batch consecutive examples, the last partial batch
included. --seed seeds torch's RNG, which then initialises the embedding
table, the CTR tower and the CVR tower, in that order.

Metrics (test set, after training), as common/metrics.h: CTR on all
impressions (label click, pCTR), CTCVR on all impressions (label click&buy,
pCTCVR), CVR on clicked impressions only (label buy, pCVR). auc: exact
ROC-AUC, ties count one half; prauc: average precision with tied scores
grouped; logloss: mean BCE with p clamped to [1e-7, 1-1e-7]; rce: 100 *
(LL_base - LL) / LL_base, LL_base the log loss of always predicting the
TRAINING base rate of the task (CTR clicks/impressions, CVR buys/clicks,
CTCVR buys/impressions, where a buy counts only on a clicked impression);
calibration: mean(p) / mean(y). Undefined values are written as null.

Timing.  Parsing and tensor building are timed as load_seconds; the clock of
train_seconds covers only the training loop over data already in tensors.
train_examples counts examples processed over all epochs, and
examples_per_sec = train_examples / train_seconds.

Threads.  --threads N is the number of cores the run may use: it sizes
torch's intra-op pool (torch.set_num_threads) and the OpenBLAS pool that
Debian's torch does its GEMMs in (see _pin_blas_threads), and idle OpenMP
threads sleep instead of spinning. --intra-op-threads K sets torch's pool
alone (OpenBLAS keeps N); K=1 with N=2 leaves the parallelism to the GEMMs
and avoids splitting the many small element-wise ops of a 1024-row batch.
A run is deterministic for a given seed and --threads; a different BLAS
thread count changes the GEMM blocking, hence the results in about the
8th digit.

Output: progress on stderr; one JSON line on stdout.  --selftest checks the
metrics against brute force, the parser and bag layout against a direct
computation, and the sparse Adagrad step against its formula; exits 0 or 1.
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time


def _pin_blas_threads():
    """Makes --threads govern the BLAS too; must run before torch loads.

    torch.set_num_threads() sizes torch's OpenMP pool only. Debian's torch
    does its GEMMs in the system OpenBLAS (pthread build), which has its own
    pool, sized from OPENBLAS_NUM_THREADS when the library loads and
    otherwise one thread per core: a "--threads 1" run would then multiply
    on two cores. The two pools also fight for the cores when OpenMP's
    idle threads spin (libgomp's default), which on a 2-core box made
    training several times slower as soon as anything else ran; passive
    waiting avoids that (an OMP_WAIT_POLICY already in the environment wins).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=2)
    n = max(1, pre.parse_known_args()[0].threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


if __name__ == "__main__":
    _pin_blas_threads()

import numpy as np  # noqa: E402  (after the BLAS thread setting)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_FIELDS = ("101,121,122,124,125,126,127,128,129,205,206,207,210,216,"
                  "508,509,702,853,301,109_14,110_14,127_14,150_14")

EPS_P = 1e-7


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Data

class Dataset:
    """A parsed split, flattened into EmbeddingBag inputs.

    Bags are numbered example * F + field. indices/weights hold the feature
    rows and values of all bags, bag by bag; bag b spans
    [offsets[b], offsets[b+1]). So a batch of examples [b0, b1) is the
    contiguous slice offsets[b0*F] .. offsets[b1*F] of indices/weights.
    """

    def __init__(self, sample_ids, click, buy, indices, weights, offsets,
                 bad_lines, missing_common, unseen):
        self.sample_ids = sample_ids
        self.click = click            # float32 tensor [N]
        self.buy = buy                # float32 tensor [N], click AND buy
        self.indices = indices        # int64 tensor [nnz]
        self.weights = weights        # float32 tensor [nnz]
        self.offsets = offsets        # int64 tensor [N*F + 1]
        self.bad_lines = bad_lines
        self.missing_common = missing_common
        self.unseen = unseen          # feature occurrences dropped (test)

    def __len__(self):
        return len(self.sample_ids)

    def batch(self, b0, b1, n_fields):
        o = self.offsets[b0 * n_fields: b1 * n_fields + 1]
        s, e = int(o[0]), int(o[-1])
        return self.indices[s:e], o - s, self.weights[s:e]


def parse_features(text, field_index, vocab, grow, rows, fields, vals):
    """Appends the used features of one `features` string.

    vocab maps "field\\x02feature_id" (the item text before \\x03, which is
    exactly the (field, feature_id) pair) to a row. With grow, unknown keys
    get the next row; without, they are dropped. Returns the number dropped.
    """
    dropped = 0
    for item in text.split('\x01'):
        key, sep, val = item.partition('\x03')
        fi = field_index.get(key.partition('\x02')[0])
        if fi is None:
            continue
        if not sep:
            raise ValueError("feature item without value: %r" % item[:40])
        if grow:
            row = vocab.setdefault(key, len(vocab))
        else:
            row = vocab.get(key)
            if row is None:
                dropped += 1
                continue
        rows.append(row)
        fields.append(fi)
        vals.append(float(val))
    return dropped


def read_common(path):
    """md5 -> raw features string; parsed lazily, only for md5s referenced."""
    common = {}
    bad = 0
    with open(path, 'r', encoding='utf-8', errors='surrogateescape', newline='\n') as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip('\r\n').split(',', 2)
            if len(parts) != 3:
                bad += 1
                if bad <= 5:
                    log("%s:%d: malformed common line, skipped" % (path, lineno))
                continue
            common[parts[0]] = parts[2]
    if bad:
        log("%s: %d malformed lines skipped" % (path, bad))
    return common


def load(skeleton, common_path, field_index, vocab, grow, max_lines=None):
    """Parses a skeleton + common pair into a Dataset (grows vocab if grow)."""
    n_fields = len(field_index)
    common_raw = read_common(common_path)
    # md5 -> (rows, fields, vals, dropped) after vocab lookup, parsed on first
    # use so that only referenced common lines reach the vocabulary
    common_parsed = {}
    no_common = ((), (), (), 0)
    sample_ids, clicks, buys, counts = [], [], [], []
    rows, fields, vals = [], [], []
    bad = missing = unseen = 0

    def skip(bad, lineno, err):
        if bad < 5:
            log("%s:%d: malformed line skipped (%s)" % (skeleton, lineno, err))
        return bad + 1

    with open(skeleton, 'r', encoding='utf-8', errors='surrogateescape', newline='\n') as f:
        for lineno, line in enumerate(f, 1):
            if max_lines is not None and len(sample_ids) >= max_lines:
                break
            try:
                sid, c, b, md5, _cnt, feats = line.rstrip('\r\n').split(',', 5)
                c, b = int(c), int(b)
            except ValueError as e:
                bad = skip(bad, lineno, e)
                continue
            cp = common_parsed.get(md5)
            if cp is None:
                text = common_raw.get(md5)
                cp = no_common
                if text is not None:
                    r, fl, v = [], [], []
                    try:
                        cp = (r, fl, v, parse_features(text, field_index, vocab, grow, r, fl, v))
                    except ValueError as e:
                        log("%s: common line %s malformed (%s); used without common features"
                            % (common_path, md5, e))
                common_parsed[md5] = cp
            own = ([], [], [])
            try:
                dropped = parse_features(feats, field_index, vocab, grow, *own)
            except ValueError as e:
                bad = skip(bad, lineno, e)
                continue
            if cp is no_common:
                missing += 1
            unseen += cp[3] + dropped
            rows.extend(cp[0])
            rows.extend(own[0])
            fields.extend(cp[1])
            fields.extend(own[1])
            vals.extend(cp[2])
            vals.extend(own[2])
            counts.append(len(cp[0]) + len(own[0]))
            sample_ids.append(sid)
            clicks.append(c)
            buys.append(b)
    if bad:
        log("%s: %d malformed lines skipped" % (skeleton, bad))
    if missing:
        log("%s: %d lines without common features (md5 absent from %s or malformed there)"
            % (skeleton, missing, common_path))

    n = len(sample_ids)
    rows = np.asarray(rows, dtype=np.int64)
    fields = np.asarray(fields, dtype=np.int64)
    vals = np.asarray(vals, dtype=np.float32)
    bag = np.repeat(np.arange(n, dtype=np.int64) * n_fields, counts) + fields
    # Stable: features keep their file order within a bag (common first).
    order = np.argsort(bag, kind='stable')
    offsets = np.zeros(n * n_fields + 1, dtype=np.int64)
    np.cumsum(np.bincount(bag, minlength=n * n_fields), out=offsets[1:])
    click = np.asarray(clicks, dtype=np.float32)
    buy = np.asarray(buys, dtype=np.float32) * click
    return Dataset(sample_ids, torch.from_numpy(click), torch.from_numpy(buy),
                   torch.from_numpy(rows[order]), torch.from_numpy(vals[order]),
                   torch.from_numpy(offsets), bad, missing, unseen)


# ---------------------------------------------------------------------------
# Model

def tower(in_dim, hidden):
    layers, d = [], in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU()]
        d = h
    layers.append(nn.Linear(d, 1))
    return nn.Sequential(*layers)


class ESMM(nn.Module):
    def __init__(self, n_rows, n_fields, dim, hidden):
        super().__init__()
        self.n_fields, self.dim = n_fields, dim
        # offsets carry the end of the last bag too (Dataset.batch slices them
        # straight out of the per-split offsets array).
        self.emb = nn.EmbeddingBag(max(1, n_rows), dim, mode='sum', sparse=True,
                                   include_last_offset=True)
        nn.init.uniform_(self.emb.weight, -0.05, 0.05)
        self.ctr = tower(n_fields * dim, hidden)
        self.cvr = tower(n_fields * dim, hidden)

    def forward(self, indices, offsets, weights):
        """Returns the CTR and CVR logits, each [B]."""
        x = self.emb(indices, offsets, per_sample_weights=weights)
        x = x.view(-1, self.n_fields * self.dim)
        return self.ctr(x).squeeze(1), self.cvr(x).squeeze(1)


def esmm_loss(z_ctr, z_cvr, click, clickbuy):
    p_ctcvr = torch.sigmoid(z_ctr) * torch.sigmoid(z_cvr)
    return (F.binary_cross_entropy_with_logits(z_ctr, click)
            + F.binary_cross_entropy(p_ctcvr.clamp(EPS_P, 1 - EPS_P), clickbuy))


def train(model, data, epochs, batch, n_fields):
    opt_sparse = torch.optim.Adagrad(model.emb.parameters(), lr=0.05,
                                     initial_accumulator_value=0.0, eps=1e-10)
    dense = list(model.ctr.parameters()) + list(model.cvr.parameters())
    # foreach fuses the per-tensor Adam kernels; same arithmetic, fewer calls.
    opt_dense = torch.optim.Adam(dense, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                 foreach=True)
    n = len(data)
    n_batches = (n + batch - 1) // batch
    model.train()
    t0 = time.perf_counter()
    t_rep, seen_rep, loss_sum, loss_n = t0, 0, 0.0, 0
    seen = 0
    for epoch in range(epochs):
        epoch_loss = 0.0
        for bi in range(n_batches):
            b0, b1 = bi * batch, min(n, (bi + 1) * batch)
            idx, offs, w = data.batch(b0, b1, n_fields)
            z_ctr, z_cvr = model(idx, offs, w)
            loss = esmm_loss(z_ctr, z_cvr, data.click[b0:b1], data.buy[b0:b1])
            opt_sparse.zero_grad(set_to_none=True)
            opt_dense.zero_grad(set_to_none=True)
            loss.backward()
            opt_sparse.step()
            opt_dense.step()
            seen += b1 - b0
            lv = loss.item()
            loss_sum += lv
            epoch_loss += lv
            loss_n += 1
            now = time.perf_counter()
            if now - t_rep >= 5.0 or (epoch == epochs - 1 and bi == n_batches - 1):
                log("epoch %d batch %d/%d  loss %.5f  %.0f ex/s"
                    % (epoch + 1, bi + 1, n_batches, loss_sum / loss_n,
                       (seen - seen_rep) / (now - t_rep)))
                t_rep, seen_rep, loss_sum, loss_n = now, seen, 0.0, 0
        log("epoch %d: mean training loss %.5f" % (epoch + 1, epoch_loss / n_batches))
    return seen, time.perf_counter() - t0


@torch.no_grad()
def predict(model, data, n_fields, batch=16384):
    model.eval()
    out = []
    for b0 in range(0, len(data), batch):
        b1 = min(len(data), b0 + batch)
        z_ctr, z_cvr = model(*data.batch(b0, b1, n_fields))
        pctr, pcvr = torch.sigmoid(z_ctr), torch.sigmoid(z_cvr)
        out.append(torch.stack([pctr, pcvr, pctr * pcvr], 1))
    if not out:
        return np.zeros((0, 3), dtype=np.float32)
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------
# Metrics (numpy, float64)

def _groups(p, y):
    """Sorts by ascending score; returns positives and counts per tie group."""
    order = np.argsort(p, kind='mergesort')
    ps, ys = p[order], y[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]]) if len(ps) else np.zeros(0, np.int64)
    pos = np.add.reduceat(ys, starts) if len(ps) else np.zeros(0)
    cnt = np.diff(np.r_[starts, len(ps)])
    return pos.astype(np.float64), cnt.astype(np.float64)


def auc_score(p, y):
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    pos, cnt = _groups(p, y)
    neg = cnt - pos
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (n_pos * n_neg))


def average_precision(p, y):
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    n_pos = y.sum()
    if n_pos == 0:
        return float('nan')
    pos, cnt = _groups(p, y)
    pos, cnt = pos[::-1], cnt[::-1]          # decreasing score
    precision = np.cumsum(pos) / np.cumsum(cnt)
    return float(np.sum(precision * pos) / n_pos)


def logloss(p, y):
    p = np.clip(np.asarray(p, np.float64), EPS_P, 1 - EPS_P)
    y = np.asarray(y, np.float64)
    if len(y) == 0:
        return float('nan')
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def task_metrics(p, y, base_rate):
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    n = len(y)
    ll = logloss(p, y)
    ll_base = logloss(np.full(n, base_rate), y) if n else float('nan')
    rate = y.mean() if n else float('nan')
    return {
        "auc": auc_score(p, y),
        "prauc": average_precision(p, y),
        "logloss": ll,
        "rce": 100.0 * (ll_base - ll) / ll_base if n and ll_base > 0 else float('nan'),
        "calibration": float(p.mean() / rate) if n and rate > 0 else float('nan'),
        "n": int(n),
        "positives": int(y.sum()),
    }


def evaluate(preds, data, base):
    click = data.click.numpy()
    buy = data.buy.numpy()
    clicked = click > 0
    return {
        "ctr": task_metrics(preds[:, 0], click, base["ctr"]),
        "cvr": task_metrics(preds[clicked, 1], buy[clicked], base["cvr"]),
        "ctcvr": task_metrics(preds[:, 2], buy, base["ctcvr"]),
    }


def json_clean(x):
    """NaN/inf -> None (JSON null), recursively."""
    if isinstance(x, dict):
        return {k: json_clean(v) for k, v in x.items()}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ---------------------------------------------------------------------------
# Self-test

def selftest():
    rng = np.random.default_rng(0)
    ok = True

    def check(name, got, want, tol=1e-12):
        nonlocal ok
        good = (math.isnan(got) and math.isnan(want)) or abs(got - want) <= tol
        if not good:
            ok = False
            log("FAIL %s: got %r want %r" % (name, got, want))

    # Metrics against brute force, with many ties (scores on a coarse grid).
    for trial in range(200):
        n = int(rng.integers(1, 60))
        levels = int(rng.integers(1, 8))
        p = rng.integers(0, levels, n) / levels + 0.01
        y = (rng.random(n) < rng.random()).astype(np.float64)
        P, N = y.sum(), n - y.sum()
        if P and N:
            s = sum((1.0 if a > b else 0.5 if a == b else 0.0)
                    for a, ya in zip(p, y) if ya == 1 for b, yb in zip(p, y) if yb == 0)
            want_auc = s / (P * N)
        else:
            want_auc = float('nan')
        check("auc[%d]" % trial, auc_score(p, y), want_auc)
        if P:
            ap = 0.0
            for t in sorted(set(p), reverse=True):
                sel = p >= t
                tp_at = y[p == t].sum()
                ap += (y[sel].sum() / sel.sum()) * tp_at / P
            want_ap = ap
        else:
            want_ap = float('nan')
        check("ap[%d]" % trial, average_precision(p, y), want_ap)
        q = rng.random(n)
        want_ll = -sum(math.log(min(max(a, EPS_P), 1 - EPS_P)) if b else
                       math.log(1 - min(max(a, EPS_P), 1 - EPS_P)) for a, b in zip(q, y)) / n
        check("logloss[%d]" % trial, logloss(q, y), want_ll, 1e-12)
    check("auc perfect", auc_score([0.1, 0.2, 0.9], [0, 0, 1]), 1.0)
    check("auc all tied", auc_score([0.5] * 4, [0, 1, 0, 1]), 0.5)
    check("ap ranked", average_precision([0.9, 0.8, 0.7], [1, 0, 1]), (1 + 2 / 3) / 2)

    # Parser + bag layout against a direct computation.
    fields = ["101", "205", "109_14"]
    fidx = {f: i for i, f in enumerate(fields)}
    with tempfile.TemporaryDirectory() as d:
        sk, cm = os.path.join(d, "sk.csv"), os.path.join(d, "cm.csv")
        it = lambda f, k, v: "%s\x02%s\x03%s" % (f, k, v)
        with open(cm, "w") as f:
            f.write("u1,3,%s\n" % "\x01".join([it("101", "7", "1"), it("109_14", "3", "0.5"),
                                              it("999", "1", "1")]))
            f.write("u2,1,%s\n" % it("109_14", "3", "2"))
            f.write("u3,1,109_14\x025\n")                          # item without value
        with open(sk, "w") as f:
            f.write("s1,1,1,u1,2,%s\n" % "\x01".join([it("205", "9", "1"), it("109_14", "4", "1.5")]))
            f.write("s2,0,1,u2,1,%s\n" % it("205", "9", "3"))
            f.write("s3,1,0,zz,1,%s\n" % it("205", "10", "1"))   # md5 absent
            f.write("bad line\n")
            f.write("s5,0,0,u1,1,205\x029\n")                      # item without value
            f.write("s6,0,0,u3,1,%s\n" % it("205", "9", "1"))      # bad common line
        vocab = {}
        data = load(sk, cm, fidx, vocab, grow=True)
        if len(data) != 4 or data.bad_lines != 2 or data.missing_common != 2:
            ok = False
            log("FAIL load counts: n=%d bad=%d missing=%d"
                % (len(data), data.bad_lines, data.missing_common))
        check("buy masked by click", float(data.buy[1]), 0.0)
        D = 4
        torch.manual_seed(0)
        m = ESMM(len(vocab), len(fields), D, [5])
        W = m.emb.weight.detach()
        r = lambda f, k: W[vocab["%s\x02%s" % (f, k)]]
        want = torch.zeros(4, len(fields), D)
        want[0, 0] = r("101", "7")
        want[0, 1] = r("205", "9")
        want[0, 2] = 0.5 * r("109_14", "3") + 1.5 * r("109_14", "4")
        want[1, 1] = 3 * r("205", "9")
        want[1, 2] = 2 * r("109_14", "3")
        want[2, 1] = r("205", "10")
        want[3, 1] = r("205", "9")
        idx, offs, w = data.batch(0, 4, len(fields))
        got = m.emb(idx, offs, per_sample_weights=w).view(4, len(fields), D)
        check("sample ids", float(data.sample_ids == ["s1", "s2", "s3", "s6"]), 1.0)
        check("bag sums", float((got - want).abs().max()), 0.0, 1e-6)
        # Unseen test features are dropped (zero contribution).
        with open(sk, "w") as f:
            f.write("t1,0,0,u1,1,%s\n" % it("205", "12345", "1"))
        test = load(sk, cm, fidx, vocab, grow=False)
        idx, offs, w = test.batch(0, 1, len(fields))
        got = m.emb(idx, offs, per_sample_weights=w).view(len(fields), D)
        check("unseen dropped", float((got[1]).abs().max()), 0.0)
        check("unseen count", float(test.unseen), 1.0)

        # One sparse Adagrad step against a += g^2; w -= lr g / (sqrt(a)+eps),
        # with a row used twice in the batch (gradients must be summed).
        emb = nn.EmbeddingBag(4, 2, mode='sum', sparse=True)
        w0 = emb.weight.detach().clone()
        opt = torch.optim.Adagrad(emb.parameters(), lr=0.05, initial_accumulator_value=0.0, eps=1e-10)
        out = emb(torch.tensor([1, 1, 3]), torch.tensor([0, 1]),
                  per_sample_weights=torch.tensor([2.0, 0.5, 1.0]))
        (out * torch.tensor([[1.0, -2.0], [3.0, 0.25]])).sum().backward()
        opt.step()
        g = torch.zeros(4, 2)
        g[1] = 2.0 * torch.tensor([1.0, -2.0]) + 0.5 * torch.tensor([3.0, 0.25])
        g[3] = torch.tensor([3.0, 0.25])
        want_w = w0 - 0.05 * g / (g.abs() + 1e-10)   # sqrt(g^2) = |g|
        want_w[g == 0] = w0[g == 0]
        check("adagrad step", float((emb.weight.detach() - want_w).abs().max()), 0.0, 1e-6)

    log("selftest: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train")
    ap.add_argument("--common")
    ap.add_argument("--test")
    ap.add_argument("--test-common")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--hidden", default="200,80")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2,
                    help="cores to use: torch's intra-op pool and OpenBLAS's pool (default 2)")
    ap.add_argument("--intra-op-threads", type=int,
                    help="torch intra-op threads if different from --threads "
                         "(OpenBLAS keeps --threads); see Threads in the module docstring")
    ap.add_argument("--fields", default=DEFAULT_FIELDS)
    ap.add_argument("--preds", help="write sample_id,pctr,pcvr,pctcvr for the test set")
    ap.add_argument("--max-train", type=int, help="use only the first N training lines")
    ap.add_argument("--selftest", action="store_true", help="check metrics/parser/optimizer, exit 0/1")
    a = ap.parse_args()

    torch.set_num_threads(a.intra_op_threads or a.threads)
    if a.selftest:
        return selftest()
    for req in ("train", "common", "test", "test_common"):
        if getattr(a, req) is None:
            ap.error("--%s is required" % req.replace("_", "-"))
    if a.epochs < 1 or a.batch < 1 or a.dim < 1:
        ap.error("--epochs, --batch and --dim must be positive")
    fields = [f for f in a.fields.split(",") if f]
    if len(set(fields)) != len(fields):
        ap.error("--fields lists a field twice")
    hidden = [int(h) for h in a.hidden.split(",") if h]
    field_index = {f: i for i, f in enumerate(fields)}
    n_fields = len(fields)

    t0 = time.perf_counter()
    vocab = {}
    train_data = load(a.train, a.common, field_index, vocab, grow=True, max_lines=a.max_train)
    test_data = load(a.test, a.test_common, field_index, vocab, grow=False)
    load_seconds = time.perf_counter() - t0
    n = len(train_data)
    if n == 0:
        log("no training examples")
        return 1
    clicks = float(train_data.click.sum())
    buys = float(train_data.buy.sum())
    base = {"ctr": clicks / n, "cvr": buys / clicks if clicks else float('nan'),
            "ctcvr": buys / n}
    log("loaded in %.1fs: train %d examples (%d clicks, %d buys, %d feature occurrences), "
        "test %d examples (%d feature occurrences dropped as unseen), %d embedding rows"
        % (load_seconds, n, clicks, buys, len(train_data.indices), len(test_data),
           test_data.unseen, len(vocab)))

    torch.manual_seed(a.seed)
    model = ESMM(len(vocab), n_fields, a.dim, hidden)
    seen, train_seconds = train(model, train_data, a.epochs, a.batch, n_fields)
    log("trained %d examples in %.2fs (%.0f ex/s, %d threads, %d intra-op)"
        % (seen, train_seconds, seen / train_seconds, a.threads, torch.get_num_threads()))

    preds = predict(model, test_data, n_fields)
    metrics = evaluate(preds, test_data, base)
    if a.preds:
        with open(a.preds, "w") as f:
            f.write("sample_id,pctr,pcvr,pctcvr\n")
            f.writelines("%s,%.7g,%.7g,%.7g\n" % (sid, r[0], r[1], r[2])
                         for sid, r in zip(test_data.sample_ids, preds.tolist()))

    result = {"impl": "pytorch", "train_examples": seen,
              "train_seconds": round(train_seconds, 4),
              "examples_per_sec": round(seen / train_seconds, 1),
              "load_seconds": round(load_seconds, 4),
              "epochs": a.epochs, "batch": a.batch, "threads": a.threads,
              "intra_op_threads": torch.get_num_threads(),
              "embedding_rows": len(vocab)}
    result.update(metrics)
    print(json.dumps(json_clean(result)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
