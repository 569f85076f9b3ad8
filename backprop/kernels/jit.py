"""The compiled training kernel's maths, in Numba (``nopython``): a run of batches of one epoch.

Only ``backprop.kernels.compiled`` imports this module, after it has pointed numba's cache at a
writable directory. Everything works on the same flat parameter array as the NumPy engine (all
weights, layer by layer ``(fan_in, fan_out)`` row-major, then all biases) and follows the NumPy
reference operation by operation, in the same order, with the same rounding points: scalars
arrive in ``hp`` (an array of the parameters' dtype) so that float32 arithmetic stays float32.

Codes (fixed; ``compiled`` maps names to them): activations 0 identity, 1 sigmoid, 2 tanh,
3 relu, 4 leaky_relu, 5 softmax; losses 0 mse, 1 binary_cross_entropy, 2 cross_entropy;
optimisers 0 none (gradients only), 1 sgd, 2 adagrad, 3 rmsprop, 4 adam, 5 rprop.
Layout rows (one per layer): fan_in, fan_out, weight offset, bias offset, activation,
activation-buffer offset. ``rows[li, r]``: where row ``r`` of layer ``li``'s input starts (in ``X``
flattened for layer 0, filled per batch; in ``acts`` for the others, fixed). ``k`` holds
constants in the parameters' dtype: 0.5, 1, the leaky slope, 0. Indices are unsigned (``lay``,
``rows``, ``idx`` are uint64 and sizes are cast on entry): signed indices make numba emit a
negative-index wrap-around per access, which keeps LLVM from vectorising the inner loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import cache

# Compiled code is kept in the directory ``cache`` chose (uncached when nothing is writable).
_JIT = {"cache": cache.directory() is not None, "nogil": True, "error_model": "numpy",
        "boundscheck": False}
# Dot products (the delta recursion) may be reassociated so that they vectorise: a different
# summation order, as BLAS has its own; nothing else is relaxed (NaN and inf still propagate).
_JIT_SUM = {**_JIT, "fastmath": {"reassoc"}}


@njit(**_JIT)
def _forward(src, rows, params, lay, acts, m, li, k):
    """Layer ``li`` for ``m`` rows: ``acts[li] = f(src[rows] @ W + b)``."""
    fan_in, fan_out, w_off, b_off = lay[li, 0], lay[li, 1], lay[li, 2], lay[li, 3]
    act, a_off = lay[li, 4], lay[li, 5]
    for r in range(m):
        base = a_off + r * fan_out
        src_base = rows[r]
        for o in range(fan_out):
            acts[base + o] = 0.0
        for i in range(fan_in):
            x = src[src_base + i]
            w_row = w_off + i * fan_out
            for o in range(fan_out):
                acts[base + o] += x * params[w_row + o]
        for o in range(fan_out):
            acts[base + o] += params[b_off + o]
        if act == 1:
            for o in range(fan_out):
                acts[base + o] = k[0] * (k[1] + np.tanh(k[0] * acts[base + o]))
        elif act == 2:
            for o in range(fan_out):
                acts[base + o] = np.tanh(acts[base + o])
        elif act == 3:
            for o in range(fan_out):
                if acts[base + o] < 0.0:  # NaN stays NaN, as np.maximum
                    acts[base + o] = 0.0
        elif act == 4:
            for o in range(fan_out):
                z = acts[base + o]
                zs = k[2] * z
                acts[base + o] = z if z >= zs or z != z else zs
        elif act == 5:
            top = acts[base]
            for o in range(np.uint64(1), fan_out):
                top = max(top, acts[base + o])
            total = acts[base] * 0.0
            for o in range(fan_out):
                e = np.exp(acts[base + o] - top)
                acts[base + o] = e
                total += e
            for o in range(fan_out):
                acts[base + o] /= total


@njit(**_JIT)
def _derivative(acts, deltas, a_off, fan_out, m, act, k):
    """``deltas *= f'`` in terms of the stored outputs (the Jacobian-vector product for
    softmax)."""
    if act == 0:
        return
    for r in range(m):
        base = a_off + r * fan_out
        if act == 5:
            dot = acts[base] * 0.0
            for o in range(fan_out):
                dot += deltas[base + o] * acts[base + o]
            for o in range(fan_out):
                deltas[base + o] = (deltas[base + o] - dot) * acts[base + o]
            continue
        for o in range(fan_out):
            a = acts[base + o]
            if act == 1:
                deltas[base + o] *= (k[1] - a) * a
            elif act == 2:
                deltas[base + o] *= k[1] - a * a
            elif act == 3:
                if not a > 0.0:
                    deltas[base + o] *= k[3]
            elif not a > 0.0:
                deltas[base + o] *= k[2]


@njit(**_JIT)
def _output_delta(Y, idx, acts, deltas, a_off, fan_out, m, loss, fused, eps, inv_m):
    """Write the output layer's delta (for the batch mean loss); return the batch's summed
    per-sample loss (float64)."""
    value = 0.0
    for r in range(m):
        base = a_off + r * fan_out
        yrow = idx[r]
        for o in range(fan_out):
            a = acts[base + o]
            y = Y[yrow, o]
            diff = a - y
            deltas[base + o] = diff * inv_m
            if loss == 0:
                value += 0.5 * float(diff) * float(diff)
            else:
                c = min(max(float(a), eps), 1.0 - eps)
                if loss == 1:
                    value -= float(y) * math.log(c) + (1.0 - float(y)) * math.log1p(-c)
                else:
                    value -= float(y) * math.log(c)
    return value


@njit(**_JIT)
def _weight_grads(src, rows, deltas, grads, lay, li, m):
    fan_in, fan_out, w_off, b_off = lay[li, 0], lay[li, 1], lay[li, 2], lay[li, 3]
    a_off = lay[li, 5]
    for j in range(w_off, w_off + fan_in * fan_out):
        grads[j] = 0.0
    for o in range(fan_out):
        grads[b_off + o] = 0.0
    for r in range(m):
        d_base = a_off + r * fan_out
        s_base = rows[r]
        for i in range(fan_in):
            x = src[s_base + i]
            w_row = w_off + i * fan_out
            for o in range(fan_out):
                grads[w_row + o] += x * deltas[d_base + o]
        for o in range(fan_out):
            grads[b_off + o] += deltas[d_base + o]


@njit(**_JIT_SUM)
def _back_delta(params, deltas, lay, li, m):
    """``deltas[li-1] = deltas[li] @ W_l.T`` (before the derivative of layer ``li-1``)."""
    fan_in, fan_out, w_off, a_off = lay[li, 0], lay[li, 1], lay[li, 2], lay[li, 5]
    p_off = lay[li - 1, 5]
    for r in range(m):
        d_base = a_off + r * fan_out
        for i in range(fan_in):
            w_row = w_off + i * fan_out
            s = deltas[d_base] * 0.0
            for o in range(fan_out):
                s += deltas[d_base + o] * params[w_row + o]
            deltas[p_off + r * fan_in + i] = s


@njit(**_JIT)
def _update(params, grads, s1, s2, opt, hp, hp64, sc, t):
    """One optimiser step over the flat arrays (the NumPy optimisers' arithmetic: ``hp`` holds
    the hyper-parameters in the parameters' dtype, ``hp64`` the same in float64, for the scalars
    that NumPy's Adam computes in Python floats); returns Adam's new step count."""
    n = np.uint64(params.shape[0])
    lr = hp[0]
    if opt == 1:  # sgd: hp = lr, momentum, nesterov
        mu = hp[1]
        if hp[1] == 0.0:
            for j in range(n):
                params[j] -= grads[j] * lr
        elif hp[2] != 0.0:
            for j in range(n):
                g = grads[j] * lr
                s1[j] = s1[j] * mu - g
                params[j] = (params[j] - g) + s1[j] * mu
        else:
            for j in range(n):
                s1[j] = s1[j] * mu - grads[j] * lr
                params[j] += s1[j]
    elif opt == 2:  # adagrad: lr, epsilon
        for j in range(n):
            g = grads[j]
            s1[j] += g * g
            params[j] -= (g / (np.sqrt(s1[j]) + hp[1])) * lr
    elif opt == 3:  # rmsprop: lr, epsilon, rho, 1 - rho
        for j in range(n):
            g = grads[j]
            s1[j] = s1[j] * hp[2] + (g * g) * hp[3]
            params[j] -= (g / (np.sqrt(s1[j]) + hp[1])) * lr
    elif opt == 4:  # adam: lr, epsilon, beta1, beta2, 1 - beta1, 1 - beta2 (float64 in hp64)
        t += 1
        b1, b2 = hp64[2], hp64[3]
        c2 = math.sqrt(1.0 - math.pow(b2, float(t)))  # libm pow, as Python's float ** int
        sc[0] = hp64[0] * c2 / (1.0 - math.pow(b1, float(t)))
        sc[1] = hp64[1] * c2
        step, eps = sc[0], sc[1]
        for j in range(n):
            g = grads[j]
            s1[j] = s1[j] * hp[2] + g * hp[4]
            s2[j] = s2[j] * hp[3] + (g * g) * hp[5]
            params[j] -= (s1[j] / (np.sqrt(s2[j]) + eps)) * step
    elif opt == 5:  # rprop: lr, eta_plus, eta_minus, step_min, step_max
        for j in range(n):
            g = grads[j]
            prod = g * s2[j]
            if prod > 0.0:
                s1[j] *= hp[1]
            elif prod < 0.0:
                s1[j] *= hp[2]
            s1[j] = min(max(s1[j], hp[3]), hp[4])
            if prod < 0.0:
                s2[j] = 0.0
                continue
            s2[j] = g
            if g > 0.0:
                params[j] -= s1[j]
            elif g < 0.0:
                params[j] -= -s1[j]
            elif g != g:
                params[j] = g
    return t


@njit(**_JIT)
def run_batches(X, Y, labels, perm, first, last, batch, params, grads, lay, n_weights,
                acts, deltas, rows, idx, loss, fused, eps, l2, opt, hp, hp64, k, sc, s1, s2, t,
                total, correct):
    """Train on batches ``first..last-1`` of rows ``perm`` (in that order) with batch size
    ``batch``; add each batch's summed loss (with its L2 term times its rows) to ``total`` and
    its correct guesses (``labels[row]`` when not empty) to ``correct``. Returns
    ``(total, correct, t)``. ``opt == 0`` computes ``grads`` only (one batch: gradient checks)."""
    n, width = X.shape[0], np.uint64(X.shape[1])
    depth = lay.shape[0]
    Xf = X.reshape(X.size)
    n_out = lay[depth - 1, 1]
    out_off = lay[depth - 1, 5]
    n_weights = np.uint64(n_weights)
    one = np.uint64(1)
    for bat in range(first, last):
        start = np.uint64(bat * batch)
        m = np.uint64(min(batch, n - bat * batch))
        for r in range(m):
            idx[r] = perm[start + r]
            rows[0, r] = idx[r] * width
        _forward(Xf, rows[0], params, lay, acts, m, 0, k)
        for li in range(1, depth):
            _forward(acts, rows[li], params, lay, acts, m, li, k)
        sc[2] = 1.0 / m
        value = _output_delta(Y, idx, acts, deltas, out_off, n_out, m, loss, fused, eps, sc[2])
        if not fused:
            _derivative(acts, deltas, out_off, n_out, m, lay[depth - 1, 4], k)
        for li in range(depth - 1, 0, -1):
            _weight_grads(acts, rows[li], deltas, grads, lay, li, m)
            _back_delta(params, deltas, lay, li, m)
            _derivative(acts, deltas, lay[li - 1, 5], lay[li - 1, 1], m, lay[li - 1, 4], k)
        _weight_grads(Xf, rows[0], deltas, grads, lay, 0, m)
        if l2 != 0.0:
            sc[3] = l2
            norm = 0.0
            for j in range(n_weights):
                w = params[j]
                grads[j] += w * sc[3]
                norm += float(w) * float(w)
            value += 0.5 * l2 * norm * m
        total += value
        if labels.shape[0] > 0:
            for r in range(m):
                base = out_off + r * n_out
                guess = np.uint64(0)
                if n_out == 1:
                    if acts[base] > 0.5:
                        guess = one
                else:
                    for o in range(one, n_out):
                        if acts[base + o] > acts[base + guess]:
                            guess = o
                if guess == labels[idx[r]]:
                    correct += 1
        if opt != 0:
            t = _update(params, grads, s1, s2, opt, hp, hp64, sc, t)
    return total, correct, t


@njit(**_JIT)
def run_epochs(X, Y, labels, perms, shuffled, rates, count, batch, batches, params, grads, lay,
               n_weights, acts, deltas, rows, idx, loss, fused, eps, l2, opt, hp, hp64, k, sc,
               s1, s2, t, last_good, totals, corrects):
    """``count`` whole epochs: epoch ``e`` takes its rows in the order ``perms[e]`` (``perms[0]``
    for all when not ``shuffled``) at learning rate ``rates[e]``, and writes its summed loss and
    correct guesses to ``totals[e]``, ``corrects[e]``. Stops at the first epoch whose loss or
    weights are not finite (``last_good`` then holds the weights from before it). Returns
    ``(epochs done, t)``."""
    size = np.uint64(params.shape[0])
    for e in range(count):
        for j in range(size):
            last_good[j] = params[j]
        hp[0] = rates[e]
        hp64[0] = rates[e]
        perm = perms[e] if shuffled else perms[0]
        total, correct, t = run_batches(X, Y, labels, perm, 0, batches, batch, params, grads,
                                        lay, n_weights, acts, deltas, rows, idx, loss, fused,
                                        eps, l2, opt, hp, hp64, k, sc, s1, s2, t, 0.0, 0)
        totals[e] = total
        corrects[e] = correct
        norm = params[0] * 0.0  # in the parameters' dtype, as the NumPy path's check
        for j in range(size):
            norm += params[j] * params[j]
        if not (np.isfinite(total) and np.isfinite(norm)):
            return e, t
    return count, t
