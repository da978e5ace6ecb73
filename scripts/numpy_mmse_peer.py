"""Peer measurement for `kaq`'s MMSE benchmark: a batched numpy/LAPACK LMMSE detector on
16x16 16-QAM (complex, 10 dB), one thread, detection only. Prints frames/s in wall time and in
the thread's CPU time (the basis of the `detect_16x16_16qam_10dB_cpu` criterion group).

Run: OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 scripts/numpy_mmse_peer.py
"""
import time

import numpy as np

NT = NR = 16
ES = 10.0
SNR_DB = 10.0
FRAMES = 4096
REPEATS = 7

rng = np.random.default_rng(1)
h = (rng.standard_normal((FRAMES, NR, NT)) + 1j * rng.standard_normal((FRAMES, NR, NT))) * np.sqrt(0.5 / NR)
levels = np.array([-3, -1, 1, 3])
x = rng.choice(levels, (FRAMES, NT)) + 1j * rng.choice(levels, (FRAMES, NT))
sigma2 = NT / NR * ES / 10 ** (SNR_DB / 10)
n = (rng.standard_normal((FRAMES, NR)) + 1j * rng.standard_normal((FRAMES, NR))) * np.sqrt(sigma2 / 2)
y = np.einsum("fij,fj->fi", h, x) + n


def mmse(h, y):
    hh = np.conj(np.swapaxes(h, 1, 2))
    gram = hh @ h + (sigma2 / ES) * np.eye(NT)
    rhs = (hh @ y[..., None])[..., 0]
    xhat = np.linalg.solve(gram, rhs[..., None])[..., 0]
    sl = lambda v: np.clip(2 * np.floor(v / 2) + 1, -3, 3)
    return sl(xhat.real) + 1j * sl(xhat.imag)


best_wall = best_cpu = float("inf")
for _ in range(REPEATS):
    t, c = time.perf_counter(), time.thread_time()
    d = mmse(h, y)
    best_cpu = min(best_cpu, time.thread_time() - c)
    best_wall = min(best_wall, time.perf_counter() - t)
ser = np.mean(d != x)
print(
    f"numpy batched MMSE: {FRAMES / best_wall:,.0f} frames/s wall, "
    f"{FRAMES / best_cpu:,.0f} frames/s CPU time (best of {REPEATS}), SER {ser:.3f}"
)
