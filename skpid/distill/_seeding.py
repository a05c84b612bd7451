"""``random_state`` for the distiller: one seeded context per ``fit`` / ``partial_fit`` /
``initialize`` call.

Seeded calls set torch's global generators (weight initialization and dropout have no
other source of randomness) and restore them afterwards, and give the DataLoaders
generators of their own, so that the batch order neither draws from nor depends on
torch's global generator. Every epoch reseeds both from ``(random_state, epoch)``: an
epoch draws the same batch order and dropout masks whether the fit ran in one call, in
``partial_fit`` calls or was resumed from a checkpoint. torch has one global generator
per device for the whole process, so two seeded calls in two threads would draw from,
and restore over, each other's state: they take :data:`SEED_LOCK` for the whole call.
"""

from __future__ import annotations

import contextlib
import numbers
import threading

import numpy as np
import torch

# Re-entrant: fit calls partial_fit, and a callback may fit another net, in the same
# thread.
SEED_LOCK = threading.RLock()
# The seeded calls running in each thread, by id(net): {prefix: torch.Generator}.
_ACTIVE = threading.local()


def check_seed(random_state) -> int:
    """The integer seed of ``random_state`` (an int, or one drawn from a numpy
    generator); a clear ``ValueError`` for anything else."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2 ** 31))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2 ** 31))
    if (not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool)
            or not 0 <= random_state < 2 ** 63):
        raise ValueError("random_state must be None, an int in [0, 2**63) or a numpy "
                         f"random generator; got {random_state!r}.")
    return int(random_state)


def check_random_state(value, name: str = "random_state"):
    """What :func:`check_seed` accepts, without drawing from a generator."""
    if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
        return value
    return check_seed(value)


def _active() -> dict:
    if not hasattr(_ACTIVE, "calls"):
        _ACTIVE.calls = {}
    return _ACTIVE.calls


@contextlib.contextmanager
def seeded(net):
    """Run the block seeded by ``net.random_state`` (nothing changes for ``None``); the
    outermost call of a net seeds, nested ones (fit → partial_fit) run inside it."""
    active = _active()
    if net.random_state is None or id(net) in active:
        yield
        return
    seed = check_seed(net.random_state)
    # Distinct streams for the global generator (weights, dropout) and the two
    # DataLoaders, so that the batch order does not repeat the weights' draws.
    train_seed, valid_seed = np.random.SeedSequence(seed).generate_state(2)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with SEED_LOCK, torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        active[id(net)] = {
            "seed": seed,
            "iterator_train": torch.Generator().manual_seed(int(train_seed)),
            "iterator_valid": torch.Generator().manual_seed(int(valid_seed))}
        try:
            yield
        finally:
            del active[id(net)]


def reseed_epoch(net, epoch: int) -> None:
    """Reseed torch's global generator and the DataLoaders' generators of ``net``'s
    seeded call (if any) for epoch ``epoch`` (1-based, counted over all calls)."""
    call = _active().get(id(net))
    if call is None:
        return
    seeds = np.random.SeedSequence([call["seed"], epoch]).generate_state(3)
    torch.manual_seed(int(seeds[0]))
    call["iterator_train"].manual_seed(int(seeds[1]))
    call["iterator_valid"].manual_seed(int(seeds[2]))


def loader_generator(net, prefix: str):
    """The generator of ``net``'s seeded call for the DataLoader ``prefix``
    (``"iterator_train"`` or ``"iterator_valid"``), or None outside a seeded call."""
    return _active().get(id(net), {}).get(prefix)
