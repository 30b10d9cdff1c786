"""Benchmark tiers: how much data and training each run gets.

Example:
    >>> TIERS["quick"].seeds
    (0,)
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.methods import Budget

#: Epochs MLPerf Tiny trained its reference ResNet-8 for (its train.py, EPOCHS = 500):
#: a pretrained row's total training epochs include them.
MLPERF_PRETRAINING_EPOCHS = 500


@dataclass(frozen=True)
class Tier:
    """A benchmark tier: data subsets, budget and seeds.

    ``train_samples``/``test_samples`` of None mean the whole split;
    ``agreement_samples`` are test images run in TFLite Micro beside TFLite.
    """

    name: str
    train_samples: int | None
    test_samples: int | None
    agreement_samples: int
    budget: Budget
    seeds: tuple[int, ...]
    description: str


TIERS: dict[str, Tier] = {
    "quick": Tier(
        name="quick",
        train_samples=2_000,
        test_samples=500,
        agreement_samples=50,
        budget=Budget(finetune_epochs=1, scratch_epochs=1),
        seeds=(0,),
        description="CI: 2,000 training and 500 test images, one epoch; checks the harness end to end",
    ),
    "standard": Tier(
        name="standard",
        train_samples=None,
        test_samples=None,
        agreement_samples=200,
        # Five epochs from scratch: a ResNet-8 epoch takes about 70 s on the 2-core host, and the
        # from-scratch rows (pruning at initialization) are many; the full tier trains 200.
        budget=Budget(finetune_epochs=5, scratch_epochs=5),
        seeds=(0, 1),
        description="full CIFAR-10, at most 45 minutes per method on a 2-core CPU",
    ),
    "full": Tier(
        name="full",
        train_samples=None,
        test_samples=None,
        agreement_samples=200,
        budget=Budget(finetune_epochs=50, scratch_epochs=200),
        seeds=(0, 1, 2),
        description="paper-scale budgets for a machine with a GPU",
    ),
}
