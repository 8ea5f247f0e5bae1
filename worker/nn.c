/* worker/nn.c — see nn.h. */
#include "nn.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

/* <cblas.h> brings <complex.h>, whose `I` macro is why the widths are Ni/No. */
void nn_dense_forward(float *out, const float *in, const float *W, const float *b, int B, int Ni, int No)
{
    for (int i = 0; i < B; i++) memcpy(out + (long)i * No, b, sizeof(float) * (size_t)No);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, No, Ni, 1.0f, in, Ni, W, Ni, 1.0f, out, No);
}

void nn_dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                       const float *W, int B, int Ni, int No)
{
    /* dW[No,Ni] += dout[B,No]ᵀ · in[B,Ni] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, No, Ni, B, 1.0f, dout, No, in, Ni, 1.0f, dW, Ni);
    for (int i = 0; i < B; i++) {
        const float *d = dout + (long)i * No;
        for (int o = 0; o < No; o++) db[o] += d[o];
    }
    if (din) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, Ni, No, 1.0f, dout, No, W, Ni, 0.0f, din, Ni);
}

int nn_blas_threads_to_towers(long n)
{
    if (n <= 0) n = openblas_get_num_threads();
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    if (n > 1) openblas_set_num_threads(1);
    return (int)n;
}

const char *nn_blas_describe(char *buf, size_t cap)
{
    /* the vector extensions that decide which kernels can run */
    static const char *const want[] = {"avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", NULL};
    char have[160] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5)) continue;
        for (int i = 0; want[i]; i++) {
            size_t n = strlen(want[i]);
            for (const char *p = strstr(line, want[i]); p; p = strstr(p + 1, want[i]))
                if ((p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n' || !p[n])) {
                    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", *have ? " " : "", want[i]);
                    break;
                }
        }
        break;
    }
    if (f) fclose(f);
    const char *pin = getenv("OPENBLAS_CORETYPE");
    snprintf(buf, cap, "OpenBLAS core %s%s%s%s, %d thread(s); CPU: %s", openblas_get_corename(), pin ? " (pinned by OPENBLAS_CORETYPE=" : "",
             pin ? pin : "", pin ? ")" : "", openblas_get_num_threads(), *have ? have : "none of avx2/avx512");
    return buf;
}

void nn_relu_forward(float *x, long n)
{
    for (long i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

void nn_relu_backward(float *dx, const float *y, long n)
{
    for (long i = 0; i < n; i++) dx[i] = y[i] > 0 ? dx[i] : 0;
}

void nn_adam_step(nn_adam *a, float *restrict w, const float *restrict g, float *restrict m,
                  float *restrict v, long n)
{
    a->t++;
    const float b1 = a->beta1, b2 = a->beta2;
    const float c1 = 1.0f / (1.0f - powf(b1, (float)a->t));
    const float c2 = 1.0f / (1.0f - powf(b2, (float)a->t));
    const float lr = a->lr, eps = a->eps;
    for (long i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] * c1) / (sqrtf(v[i] * c2) + eps);
    }
}
