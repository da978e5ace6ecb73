#!/usr/bin/env python3
"""A PyTorch CPU trainer of kaq's f32 nets, for the training-speed comparison of
docs/f32-nets.md ("Training speed against PyTorch").

It trains the same net as `kaq train --arch ARCH` (PGD-Net with the soft prox, EPNet, OAMP-Net2
with the LMMSE bank, the unfolded CG net; equations in model/src/gram/mod.rs and
model/src/unfolded/pgd.rs) on the same link (16x16 16-QAM i.i.d. Rayleigh, real-valued 32x32
equivalent, SNR per receive antenna drawn per sample from --snr), with the same protocol: the
training and validation sets drawn once, Adam (beta1 0.9, beta2 0.999, eps 1e-8) at --lr halved
every --lr-step epochs, shuffled minibatches of --batch samples (the last one partial), loss the
batch mean of ||x - x_hat||^2, the parameters clamped into their domain after every step, and
after each epoch the validation loss and the validation BER at each --val-snr over --val-frames
frames. The gradients come from autograd (this is the ordinary PyTorch way to write it), so
the numbers differ from kaq's in rounding but the work is the same.

Usage (one thread; the flags mean what they mean for `kaq train`):
    OMP_NUM_THREADS=1 python3 scripts/torch_peer.py --arch cg --layers 8 --inner 4 \
        --samples 4096 --epochs 2 --val-samples 256 --val-frames 256 --val-snr 20

It prints one line `peer ...` with the data-drawing time, the epoch-loop time (training steps
plus validation, what kaq's per-epoch `seconds` measure) in wall and in CPU seconds, the
training-step time alone, and the work: batches x batch size x layers.
"""

import argparse
import math
import os
import sys
import time

import torch

ES_DIM = 5.0  # 16-QAM symbol energy per real dimension
LEVELS = (-3.0, -1.0, 1.0, 3.0)
GRAY = (0, 1, 3, 2)  # Gray label of each level index, per real dimension


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=["pgd", "ep", "oamp", "cg"], default="pgd")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--inner", type=int, default=4)
    p.add_argument("--samples", type=int, default=50_000)
    p.add_argument("--val-samples", type=int, default=5_000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-step", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--snr", default="0,5,10,15,20,25")
    p.add_argument("--val-snr", default="0,10,20")
    p.add_argument("--val-frames", type=int, default=2_000)
    p.add_argument("--nt", type=int, default=16)
    p.add_argument("--nr", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    for name in ("layers", "inner", "samples", "val_samples", "batch", "epochs", "lr_step",
                 "val_frames", "nt", "nr", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.arch == "ep" and a.layers < 2:
        p.error("--layers must be at least 2 for ep")
    try:
        a.snr = [float(s) for s in a.snr.split(",")]
        a.val_snr = [float(s) for s in a.val_snr.split(",")]
    except ValueError:
        p.error("--snr and --val-snr take comma-separated numbers")
    return a


# ---------------------------------------------------------------------------------------------
# Data: the real-valued equivalent of y = Hx + n, H entries CN(0, 1/Nr), sigma^2 = (Nt/Nr) Es/SNR.


def draw_set(count, nt, nr, snrs, gen):
    m, n = 2 * nr, 2 * nt
    std = math.sqrt(0.5 / nr)
    re = torch.randn(count, nr, nt, generator=gen) * std
    im = torch.randn(count, nr, nt, generator=gen) * std
    h = torch.empty(count, m, n)
    h[:, :nr, :nt] = re
    h[:, nr:, :nt] = im
    h[:, :nr, nt:] = -im
    h[:, nr:, nt:] = re
    idx = torch.randint(0, 4, (count, n), generator=gen)
    x = torch.tensor(LEVELS)[idx]
    snr = torch.tensor(snrs, dtype=torch.float64)[torch.randint(0, len(snrs), (count,),
                                                                generator=gen)]
    sigma2 = (nt / nr) * 2.0 * ES_DIM / (10.0 ** (snr / 10.0))
    noise = torch.randn(count, m, generator=gen) * torch.sqrt(sigma2 / 2.0).float()[:, None]
    y = torch.bmm(h, x[:, :, None])[:, :, 0] + noise
    return h, y, x, (sigma2 / 2.0).float()


def matvec(a, v):
    return torch.matmul(a, v[:, :, None])[:, :, 0]


def dot(a, b):
    return (a * b).sum(-1)


def gauss_qam(t, h, levels):
    """Posterior mean and variance of the uniform QAM prior under N(t, h), per element.

    `levels` is a (L, 1, 1) column: the level axis comes first, so the softmax and the sums run
    over the outer dimension (torch's softmax over a short innermost axis is about 25x slower).
    """
    d = t - levels
    w = torch.softmax(-(d * d) / (2.0 * h), dim=0)
    mean = (w * levels).sum(0)
    var = (w * (levels - mean) ** 2).sum(0)
    return mean, var


# ---------------------------------------------------------------------------------------------
# The nets. `forward(h, y, s2)` returns x_hat; `project()` clamps the parameters as kaq does.


class Pgd(torch.nn.Module):
    """PGD-Net, soft prox, x0 = 0: r = x - eta H^T(Hx - y), x = soft(r, lambda)."""

    def __init__(self, layers, n):
        super().__init__()
        self.eta = torch.nn.Parameter(torch.full((layers,), 0.1))
        self.lam = torch.nn.Parameter(torch.full((layers,), 0.05))
        self.layers = layers

    def forward(self, h, y, s2):
        x = None
        ht = h.transpose(1, 2)
        eta, lam = self.eta.unbind(), self.lam.unbind()
        for k in range(self.layers):
            e = -y if x is None else matvec(h, x) - y
            g = matvec(ht, e)
            r = -eta[k] * g if x is None else x - eta[k] * g
            x = torch.sign(r) * torch.relu(r.abs() - lam[k])
        return x

    def project(self):
        self.lam.clamp_(min=0.0)


def gram_stage(h, y):
    ht = h.transpose(1, 2)
    g = torch.bmm(ht, h)
    z = matvec(ht, y)
    return g, z


class Cg(torch.nn.Module):
    """Unfolded CG: L Jacobi-preconditioned two-term steps on (G + delta I) d = z - Gx."""

    def __init__(self, layers, inner, n):
        super().__init__()
        self.layers, self.inner = layers, inner
        self.log_delta = torch.nn.Parameter(torch.full((layers,), math.log(1.0 / ES_DIM)))
        self.gamma = torch.nn.Parameter(torch.ones(layers))
        self.log_tv = torch.nn.Parameter(torch.zeros(layers))
        self.log_ts = torch.nn.Parameter(torch.zeros(layers))
        self.omega = torch.nn.Parameter(torch.full((layers, inner), 0.4))
        self.beta = torch.nn.Parameter(torch.zeros(layers, max(inner - 1, 1)))
        self.register_buffer("levels", torch.tensor(LEVELS)[:, None, None])

    def forward(self, h, y, s2):
        g, z = gram_stage(h, y)
        m, n = h.shape[1], h.shape[2]
        diag = torch.diagonal(g, dim1=1, dim2=2)
        inv_trace = 1.0 / diag.sum(-1)
        dinv = 1.0 / diag
        yy = dot(y, y)
        noise = m * s2
        x = torch.zeros_like(z)
        # One unbind per parameter block: indexing a parameter per use would add a full-size
        # gradient per scalar in the backward pass.
        delta_scale = torch.exp(self.log_delta).unbind()
        tv, ts = torch.exp(self.log_tv).unbind(), torch.exp(self.log_ts).unbind()
        gamma = self.gamma.unbind()
        omega, beta = self.omega.reshape(-1).unbind(), self.beta.reshape(-1).unbind()
        nb = self.beta.shape[1]
        for k in range(self.layers):
            u = torch.zeros_like(z) if k == 0 else matvec(g, x)
            e = z - u
            w = (yy - 2.0 * dot(x, z) + dot(x, u) - noise) * inv_trace
            v2 = torch.clamp(w, min=1e-4)
            delta = s2 * delta_scale[k]
            d = torch.zeros_like(z)
            res = e
            p = None
            for l in range(self.inner):
                pl = dinv * res if l == 0 else dinv * res + beta[k * nb + l - 1] * p
                d = d + omega[k * self.inner + l] * pl
                p = pl
                if l + 1 < self.inner:
                    res = e - matvec(g, d) - delta[:, None] * d
            r = x + gamma[k] * d
            tau2 = tv[k] * v2 + ts[k] * s2
            x, _ = gauss_qam(r, tau2[:, None], self.levels)
        return x

    def project(self):
        for p in (self.log_delta, self.log_tv, self.log_ts):
            p.clamp_(-30.0, 30.0)


class Ep(torch.nn.Module):
    """EPNet: A = G + s2 diag(lambda), P = A^-1 per layer and vector, damped messages."""

    def __init__(self, layers, n):
        super().__init__()
        self.layers = layers
        self.beta = torch.nn.Parameter(torch.full((layers - 1,), 0.9))
        self.log_floor = torch.nn.Parameter(torch.full((layers - 1,), math.log(1e-3)))
        self.register_buffer("levels", torch.tensor(LEVELS)[:, None, None])

    def forward(self, h, y, s2):
        g, z = gram_stage(h, y)
        lam = torch.full_like(z, 1.0 / ES_DIM)
        gam = torch.zeros_like(z)
        s2c = s2[:, None]
        m = None
        betas, floors = self.beta.unbind(), torch.exp(self.log_floor).unbind()
        for k in range(self.layers):
            a = g + torch.diag_embed(s2c * lam)
            p = torch.linalg.inv(a)
            mu = matvec(p, z + s2c * gam)
            s2q = s2c * torch.diagonal(p, dim1=1, dim2=2)
            c = torch.clamp(1.0 - s2q * lam, min=1e-5)
            t = (mu - s2q * gam) / c
            hv = s2q / c
            m, v = gauss_qam(t, hv, self.levels)
            if k + 1 == self.layers:
                break
            vf = torch.maximum(v, floors[k].expand_as(v))
            lam_new = 1.0 / vf - 1.0 / hv
            kept = lam_new < 0.0
            lh = torch.where(kept, lam, lam_new)
            gh = torch.where(kept, gam, m / vf - t / hv)
            b = betas[k]
            lam = b * lh + (1.0 - b) * lam
            gam = b * gh + (1.0 - b) * gam
        return m

    def project(self):
        self.beta.clamp_(0.01, 1.0)
        self.log_floor.clamp_(-30.0, 30.0)


class Oamp(torch.nn.Module):
    """OAMP-Net2 with a per-block bank of J = 6 LMMSE matrices (G + delta_j I)^-1."""

    BANK, RATIO = 6, 8.0

    def __init__(self, layers, n):
        super().__init__()
        self.layers = layers
        self.gamma = torch.nn.Parameter(torch.ones(layers))
        self.theta = torch.nn.Parameter(torch.ones(layers))
        self.phi = torch.nn.Parameter(torch.ones(layers))
        self.xi = torch.nn.Parameter(torch.zeros(layers))
        self.register_buffer("levels", torch.tensor(LEVELS)[:, None, None])
        self.register_buffer("scales", torch.tensor([self.RATIO ** j for j in range(self.BANK)]))
        self.register_buffer("thresholds", torch.tensor(
            [ES_DIM / self.RATIO ** j / math.sqrt(self.RATIO) for j in range(self.BANK - 1)]))

    def forward(self, h, y, s2):
        g, z = gram_stage(h, y)
        bsz, m, n = h.shape
        eye = torch.eye(n)
        delta = (s2[:, None] / ES_DIM) * self.scales  # (B, J)
        q = torch.linalg.inv(g[:, None] + delta[:, :, None, None] * eye)  # (B, J, n, n)
        tr = torch.diagonal(q, dim1=2, dim2=3).sum(-1)
        fro = (q * q).sum((-1, -2))
        alpha = n / (n - delta * tr)
        frob = n - 2.0 * delta * tr + delta * delta * fro
        t3 = tr - delta * fro
        inv_trace = 1.0 / torch.diagonal(g, dim1=1, dim2=2).sum(-1)
        yy = dot(y, y)
        noise = m * s2
        rows = torch.arange(bsz)
        x = torch.zeros_like(z)
        gammas, thetas = self.gamma.unbind(), self.theta.unbind()
        phis, xis = self.phi.unbind(), self.xi.unbind()
        for k in range(self.layers):
            u = torch.zeros_like(z) if k == 0 else matvec(g, x)
            e = z - u
            w = (yy - 2.0 * dot(x, z) + dot(x, u) - noise) * inv_trace
            v2 = torch.clamp(w, min=1e-4)
            j = (v2.detach()[:, None] < self.thresholds).sum(-1)
            a = alpha[rows, j]
            gk = matvec(q[rows, j], e)
            th = thetas[k]
            a2n = a * a / n
            kappa = 1.0 - 2.0 * th + th * th * a2n * frob[rows, j]
            tau2 = torch.clamp(v2 * kappa + s2 * th * th * a2n * t3[rows, j], min=1e-8)
            r = x + (gammas[k] * a)[:, None] * gk
            mean, _ = gauss_qam(r, tau2[:, None], self.levels)
            x = phis[k] * (mean - xis[k] * r)
        return x

    def project(self):
        pass


def build(args, n):
    if args.arch == "pgd":
        return Pgd(args.layers, n)
    if args.arch == "cg":
        return Cg(args.layers, args.inner, n)
    if args.arch == "ep":
        return Ep(args.layers, n)
    return Oamp(args.layers, n)


# ---------------------------------------------------------------------------------------------


def bit_errors(x, x_hat):
    levels = torch.tensor(LEVELS)
    sliced = torch.argmin((x_hat[..., None] - levels).abs(), dim=-1)
    truth = ((x + 3.0) / 2.0).round().long()
    gray = torch.tensor(GRAY)
    diff = gray[sliced] ^ gray[truth]
    return int(((diff & 1) + (diff >> 1)).sum())


VALIDATION_CHUNK = 4096


def main(argv):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    train = draw_set(args.samples, args.nt, args.nr, args.snr, gen)
    val = draw_set(args.val_samples, args.nt, args.nr, args.snr, gen)
    probes = [draw_set(args.val_frames, args.nt, args.nr, [s], gen) for s in args.val_snr]
    data_s = time.perf_counter() - t0
    n = 2 * args.nt
    net = build(args, n)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    batches = math.ceil(args.samples / args.batch)
    step_s, epoch_s = 0.0, []
    cpu0 = time.process_time()
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        lr = args.lr * 0.5 ** ((epoch - 1) // args.lr_step)
        for group in opt.param_groups:
            group["lr"] = lr
        order = torch.randperm(args.samples, generator=gen)
        total = 0.0
        for b in range(batches):
            idx = order[b * args.batch:(b + 1) * args.batch]
            h, y, x, s2 = (t[idx] for t in train)
            opt.zero_grad(set_to_none=True)
            loss = ((net(h, y, s2) - x) ** 2).sum(-1).mean()
            loss.backward()
            opt.step()
            with torch.no_grad():
                net.project()
            total += float(loss.detach()) * len(idx)
        step_s += time.perf_counter() - started
        if not math.isfinite(total):
            print(f"peer: training diverged in epoch {epoch}", file=sys.stderr)
            return 1
        with torch.no_grad():
            sq = 0.0
            for s in range(0, args.val_samples, VALIDATION_CHUNK):
                h, y, x, s2 = (t[s:s + VALIDATION_CHUNK] for t in val)
                sq += float(((net(h, y, s2) - x) ** 2).sum())
            errors = []
            for probe in probes:
                e = 0
                for s in range(0, args.val_frames, VALIDATION_CHUNK):
                    h, y, x, s2 = (t[s:s + VALIDATION_CHUNK] for t in probe)
                    e += bit_errors(x, net(h, y, s2))
                errors.append(e / (args.val_frames * 4 * args.nt))
        epoch_s.append(time.perf_counter() - started)
        print(f"epoch {epoch}/{args.epochs}  lr {lr:.2e}  train loss {total / args.samples:.5f}"
              f"  val loss {sq / args.val_samples:.5f}  val BER {errors}"
              f"  {epoch_s[-1]:.3f} s", file=sys.stderr)
    loop_s = sum(epoch_s)
    loop_cpu_s = time.process_time() - cpu0
    steps = batches * args.epochs
    inner = f" inner={args.inner}" if args.arch == "cg" else ""
    print(f"peer arch={args.arch} layers={args.layers}{inner} threads={args.threads}"
          f" torch={torch.__version__} data_s={data_s:.3f} loop_s={loop_s:.3f}"
          f" loop_cpu_s={loop_cpu_s:.3f}"
          f" step_s={step_s:.3f} train_samples_per_s={args.samples * args.epochs / step_s:.0f}"
          f" work={steps}x{args.batch}x{args.layers}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
