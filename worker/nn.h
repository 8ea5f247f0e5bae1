/* worker/nn.h — the dense building blocks of the towers, llm.c style:
 * plain forward/backward pairs over caller-owned buffers, shapes written
 * where they are used, matrices row-major, math through OpenBLAS sgemm.
 * Backward functions ACCUMULATE into dW/db (callers zero the gradient block
 * once per step) and OVERWRITE din (if din is not NULL). */
#ifndef FN_NN_H
#define FN_NN_H

#include <stddef.h>

/* out[B,O] = in[B,I] · W[O,I]ᵀ + b[O] */
void nn_dense_forward(float *out, const float *in, const float *W, const float *b, int B, int Ni, int No);

/* din[B,I] = dout[B,O] · W[O,I];  dW[O,I] += doutᵀ · in;  db[O] += Σ_B dout */
void nn_dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                       const float *W, int B, int Ni, int No);

/* The threads the towers get: n if n > 0, else OpenBLAS's own thread count
 * (OPENBLAS_NUM_THREADS, or the cores), at most 64.  With more than one,
 * OpenBLAS is set to run every call on its calling thread: the towers'
 * threads (worker/par.h) split the rows instead. */
int nn_blas_threads_to_towers(long n);
/* One line for the log: the OpenBLAS core in use (and whether
 * OPENBLAS_CORETYPE pins it) and the CPU's vector extensions. */
const char *nn_blas_describe(char *buf, size_t cap);

/* x[n] = max(x, 0) in place */
void nn_relu_forward(float *x, long n);

/* dx[n] *= (y > 0), y being the ReLU's output */
void nn_relu_backward(float *dx, const float *y, long n);

static inline float nn_sigmoid(float z)
{
    return z >= 0 ? 1.0f / (1.0f + __builtin_expf(-z)) : __builtin_expf(z) / (1.0f + __builtin_expf(z));
}

/* Adam on a flat parameter block: the dense optimizer of the workers.
 * m, v zero-initialised; t counts steps from 1. */
typedef struct {
    float lr, beta1, beta2, eps;
    long t;
} nn_adam;

void nn_adam_step(nn_adam *a, float *w, const float *g, float *m, float *v, long n);

#endif
