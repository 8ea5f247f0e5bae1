/* common/truth.h — the known truth of a synthetic world (`funnel datagen`'s
 * truth_*.csv: `sample_id,pctr,pcvr,conv`): the true click probability, the
 * true conversion-given-click probability and a counterfactual conversion
 * label of every impression, clicked or not.  Evaluation joins it to the
 * predictions by sample id to score CVR over the entire space, which real
 * logs never allow, and to report the ceiling the true probabilities reach. */
#ifndef FN_TRUTH_H
#define FN_TRUTH_H

#include <stddef.h>
#include <stdint.h>

#include "keymap.h"

typedef struct {
    size_t n, cap;
    uint64_t *id;
    float *pctr, *pcvr, *conv;
    keymap index;
} fn_truth;

/* Loads path: all of it or nothing.  A header other than exactly
 * sample_id,pctr,pcvr,conv, a malformed line or a repeated sample id is
 * FN_EPARSE with fn_err_msg() "PATH:LINE: reason" (truth files are
 * machine-written: no skipping); an unreadable file FN_EIO naming it.
 * What a failure means is the caller's: an explicit --test-truth ends the
 * job, one found by truth_beside only turns the entire-space metrics off. */
int truth_load(fn_truth *t, const char *path);
void truth_free(fn_truth *t);

/* Row of sample id, or -1. */
long truth_find(const fn_truth *t, uint64_t id);

/* The truth file that belongs beside a skeleton file named
 * .../sample_skeleton_X.csv (.../truth_X.csv), if it exists (readable or
 * not: truth_load says what is wrong with it); else NULL.  Returns buf or
 * NULL.  Only a name: the file may be anything. */
const char *truth_beside(const char *skeleton, char *buf, size_t cap);

#endif
