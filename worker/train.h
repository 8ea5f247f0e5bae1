/* worker/train.h — the worker role of `funnel train`, and `funnel predict`.
 *
 * train_worker(): reads this worker's partition of the training data,
 * pulls the batch's rows from the servers, runs the towers, pushes sparse
 * gradients, averages dense gradients with the other workers (allreduce),
 * prints progress, evaluates on the test set (exact metrics over all
 * workers' predictions, gathered), exports the model and stops the servers.
 * Every step is synchronous: the pushes of step n are applied on the
 * servers before any worker pulls for step n+1, so a run's result does not
 * depend on timing. */
#ifndef FN_TRAIN_H
#define FN_TRAIN_H

#include <mpi.h>

#include "config.h"
#include "secure.h"

/* workers: the communicator of the workers only (rank 0 = the lead worker,
 * which writes RUN_DIR files).  endpoints: the servers'. Returns FN_OK or an
 * error (already logged with its reason). */
int train_worker(const train_conf *c, MPI_Comm workers, int n_servers, char *const *endpoints, const secure_keys *keys);

/* The command that continues this job from its last checkpoint, printed
 * when the job ends on an error. */
void train_set_resume_hint(const char *hint);

/* `funnel predict` (argv[0] = "predict"): returns the exit code. */
int predict_main(int argc, char **argv);

#endif
