/* common/metrics.h — exact evaluation metrics of a binary prediction task.
 *
 * Given predictions p[i] in (0,1) and labels y[i] in {0,1} over n examples
 * (already restricted to the task's space by the caller: CVR on clicked
 * impressions, CTR and CTCVR on all):
 *   auc          ROC-AUC, exact, ties counted one half (sort-based,
 *                O(n log n)); NaN if only one class is present
 *   prauc        PR-AUC as average precision (sum over positives, in
 *                decreasing score order with ties grouped, of precision at
 *                that threshold times the recall step); NaN if no positives
 *   logloss      mean binary cross-entropy, p clamped to [1e-7, 1-1e-7]
 *   rce          relative cross entropy, percent: 100 * (LL_base - LL) /
 *                LL_base, where LL_base is the log loss of always predicting
 *                base_rate (the training base rate of the task)
 *   calibration  mean(p) / mean(y); NaN if no positives
 *   mean_pred, rate, n, positives
 */
#ifndef FN_METRICS_H
#define FN_METRICS_H

#include <stddef.h>

typedef struct {
    double auc, prauc, logloss, rce, calibration;
    double mean_pred, rate;
    size_t n, positives;
} metrics_result;

/* Computes all metrics.  `scratch` must hold metrics_scratch_bytes(n) bytes
 * (reuse it: first touching it costs more than the sort); p and y are not
 * modified.  y may be given as
 * floats 0/1 (counterfactual or true-probability labels are 0/1 too). */
void metrics_compute(const float *p, const float *y, size_t n, double base_rate,
                     void *scratch, metrics_result *out);

size_t metrics_scratch_bytes(size_t n);

/* Writes the result as a JSON object {"auc":..,"prauc":..,...} into buf
 * (NaN written as null).  Returns the length written (snprintf semantics). */
int metrics_json(const metrics_result *r, char *buf, size_t cap);

#endif
