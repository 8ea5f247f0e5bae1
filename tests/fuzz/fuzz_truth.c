/* tests/fuzz/fuzz_truth.c — libFuzzer target for common/truth.c, the
 * reader of a synthetic world's known truth (truth_*.csv:
 * sample_id,pctr,pcvr,conv).
 *
 * Input: the file.  Properties: a refusal is an error code with a one-line
 * message; an accepted file has probabilities in [0, 1], conv 0 or 1, and
 * every sample id found at its own row.
 *
 * Seeds: tests/fuzz/corpus/truth/. */
#include <string.h>

#include "fn_error.h"
#include "fuzz_util.h"
#include "truth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup("fuzz_truth");
    fn_truth t;
    int rc = truth_load(&t, fuzz_file("a", data, size));
    if (rc) {
        const char *m = fn_err_msg();
        REQUIRE(rc > FN_OK && rc < FN_ERR_COUNT, "bad error code %d", rc);
        REQUIRE(m[0] && !strchr(m, '\n'), "error %d without a one-line reason: '%s'", rc, m);
        REQUIRE(t.n == 0 && !t.id, "a refused file left rows");
        return 0;
    }
    for (size_t i = 0; i < t.n; i++) {
        REQUIRE(t.pctr[i] >= 0 && t.pctr[i] <= 1 && t.pcvr[i] >= 0 && t.pcvr[i] <= 1, "row %zu: probability outside [0, 1]", i);
        REQUIRE(t.conv[i] == 0 || t.conv[i] == 1, "row %zu: conv %g", i, (double)t.conv[i]);
        REQUIRE(truth_find(&t, t.id[i]) == (long)i, "row %zu not found by its id", i);
    }
    truth_free(&t);
    return 0;
}
