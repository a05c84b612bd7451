"""Seeded generators of adversarial pmfs for the BROJA solver.

Masses spanning 1e-17...1, sparse supports and near-deterministic relations: the tables
on which the interior-point method once stopped early (a failed line search) or stalled
with gaps up to 0.26 nats (issue 13, class 7).  Both generators draw every table from one
stream, so a table is named by its generator, seed and index.
"""

import numpy as np

SHAPES = [(2, 2, 2), (3, 3, 2), (2, 5, 3), (4, 4, 4), (5, 3, 2), (6, 6, 3), (8, 8, 4),
          (10, 10, 10), (12, 7, 5), (15, 15, 5), (20, 20, 10), (3, 20, 4), (20, 3, 6)]


def mixed_tables(n: int, seed: int = 0) -> list:
    """Five kinds on fixed shapes: Dirichlet with tiny alpha; cells scaled by
    10**uniform(-17, 0), dense or sparse; Y nearly a function of (T, S); S nearly a
    function of T; the last two with noise of 1e-17...1e-3."""
    rng = np.random.default_rng(seed)
    tables = []
    for _ in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        kind = rng.integers(5)
        size = int(np.prod(shape))
        if kind == 0:
            p = rng.dirichlet(np.full(size, 10 ** rng.uniform(-3, -0.5)))
        elif kind == 1:
            p = rng.random(size) * 10 ** rng.uniform(-17, 0, size)
        elif kind == 2:
            p = rng.random(size) * 10 ** rng.uniform(-17, 0, size)
            p *= rng.random(size) < rng.uniform(0.1, 0.6)
        elif kind == 3:
            p = np.zeros(shape)
            f = rng.integers(shape[2], size=shape[:2])
            w = rng.dirichlet(np.ones(shape[0] * shape[1])).reshape(shape[:2])
            for t in range(shape[0]):
                for s in range(shape[1]):
                    p[t, s, f[t, s]] = w[t, s]
            p = p.ravel() + rng.random(size) * 10 ** rng.uniform(-17, -6, size)
        else:
            p = np.zeros(shape)
            g = rng.integers(shape[1], size=shape[0])
            p_t = rng.dirichlet(np.ones(shape[0]))
            for t in range(shape[0]):
                p[t, g[t]] = p_t[t] * rng.dirichlet(np.full(shape[2], 0.3))
            noise = rng.random(size) * 10 ** rng.uniform(-17, -3, size)
            p = p.ravel() + noise * (rng.random(size) < 0.5)
        p = p.reshape(shape)
        if p.sum() <= 0:
            p = np.ones(shape)
        tables.append(p / p.sum())
    return tables


def block_tables(n: int, seed: int = 0) -> list:
    """Random shapes 2x2x2...20x20x10 with tiny structure: cells scaled by
    10**uniform(-17.9, 0); a quarter block of T x S scaled by 1e-17.9...1e-10; teacher
    values (and, less, student values) of tiny mass; classes of tiny mass."""
    rng = np.random.default_rng(seed)
    tables = []
    for _ in range(n):
        shape = tuple(int(v) for v in (rng.integers(2, 21), rng.integers(2, 21),
                                       rng.integers(2, 11)))
        size = int(np.prod(shape))
        kind = rng.integers(4)
        if kind == 0:
            p = (rng.dirichlet(np.full(size, 10 ** rng.uniform(-2, 0)))
                 * 10 ** rng.uniform(-17.9, 0, size))
        elif kind == 1:
            p = rng.random(shape)
            p[: shape[0] // 2, : shape[1] // 2] *= 10 ** rng.uniform(-17.9, -10)
            p = p.ravel() * (rng.random(size) < 0.5)
        elif kind == 2:
            p = rng.random(shape) * (rng.random(shape) < 0.4)
            p *= 10 ** rng.uniform(-17.9, 0, shape[0])[:, None, None]
            p *= 10 ** rng.uniform(-5, 0, shape[1])[None, :, None]
            p = p.ravel()
        else:
            p = rng.random(shape) * (rng.random(shape) < 0.5)
            p *= 10 ** rng.uniform(-17.9, 0, shape[2])
            p = p.ravel()
        if p.sum() <= 0:
            p = np.ones(size)
        tables.append((p / p.sum()).reshape(shape))
    return tables
