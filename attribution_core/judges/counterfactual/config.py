"""Settings of the counterfactual checks (docs/method.md §7, §8): the base model both checks share, the queries,
the methods, the sizes K of leave-K-out's removed sets and the subsets of the linear datamodeling score."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ...core.config import option
from ...core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ...diffusion.config import ModelConfig, TrainConfig

#: Methods compared: unlearning, the demo feature spaces, and the baselines: the caption-only rule and random scores.
METHODS = (
    "unlearning",
    "demo_efficientnet_lite0_tuned",
    "demo_efficientnet_lite0",
    "demo_pixel",
    "caption-only",
    "random",
)


@dataclass(frozen=True)
class BaseModelConfig:
    """The base model and how a query's loss is measured: shared by leave-K-out and the LDS (the CLI's flags are
    generated from these fields)."""

    testbed: str = option("demo-photos", "the registered testbed: the training set's subjects and the queries' prompts")
    photos: tuple[str, ...] = option((), "subjects (corpus photos) in the training set (default: every one)")
    views_per_photo: int = option(
        0, "training images per subject (its first views; 0: the testbed's: demo-photos 8, finetune 4)", minimum=0
    )
    steps: int = option(
        0,
        "training steps of the base model and of every retrain (0: the testbed's: demo-photos 1000, finetune "
        "150 fine-tuning steps)",
        minimum=0,
    )
    batch_size: int = option(0, "images per training step (0: the testbed's, 32)", minimum=0)
    ema_decay: float = option(
        0.95,
        "EMA decay of the weights (short runs need a short average: 0.995 would keep ~37% of the random init)",
        minimum=0,
        maximum=1,
    )
    seed: int = option(0, "training seed of the base model and every retrain (same seed, same schedule)")
    training_seeds: tuple[int, ...] = option(
        (),
        "training seeds of every subset model, the measured loss averaged over them (default: the testbed's: "
        "demo-photos --seed alone, finetune 0 1 2)",
    )
    loss_timesteps: int = option(
        0,
        "timesteps, strided over the schedule, at which the query's loss is measured (0: the testbed's: demo-photos "
        "100, finetune 24)",
        minimum=0,
    )
    loss_draws: int = option(
        0,
        "fixed noise draws per timestep for the query's loss (0: the testbed's: demo-photos 4, finetune 2)",
        minimum=0,
    )
    paired: bool = option(
        True,
        "retrain on the base model's own sequence of batches, noise and timesteps, each slot that drew a removed "
        "image given a kept one (the base differs from a retrain by the removal alone); off: train on the "
        "remaining images from scratch with the same seed",
    )
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)
    methods: tuple[str, ...] = field(default=METHODS, metadata={"help": "methods to compare"})

    def train_config(self) -> TrainConfig:
        """The one training schedule of the base model and every retrain (of a configuration its testbed has
        resolved: ``Testbed.resolve`` fills the options left at 0).

        Raises:
            ValueError: an unresolved configuration (steps or batch size still 0).
        """
        if not (self.steps and self.batch_size):
            raise ValueError("unresolved configuration: pass it through its testbed's resolve() first")
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            warmup=max(1, self.steps // 10),
            ema_decay=self.ema_decay,
            seed=self.seed,
            checkpoint_every=max(1, self.steps // 3),
            device=self.device,
        )

    def model_config(self) -> ModelConfig:
        """8×8 pixels and a small UNet: one retrain in under 2 minutes on 2 cores, with samples that show their
        photo's layout (checked on the validation queries only)."""
        return ModelConfig(
            resolution=8, block_out_channels=(16, 32), attention_levels=(False, True), text_dim=32, text_layers=1
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CounterfactualConfig(BaseModelConfig):
    """Options of ``attribute counterfactual`` (leave-K-out)."""

    queries_reported: tuple[str, ...] = option(
        (), "reported queries as PHOTO:SEED (default: the testbed's: the first 12 photos, seed 1)", flag="--queries"
    )
    queries_validation: tuple[str, ...] = option(
        (),
        "validation queries as PHOTO:SEED (any setting is chosen on these; default: the testbed's: four other "
        "photos, seed 101)",
        flag="--validation-queries",
    )
    validation: bool = option(False, "run the validation queries instead of the reported ones")
    ks: tuple[int, ...] = option(
        (),
        "sizes K of the removed sets (default: the testbed's: demo-photos 2 and 6, 1.5% and 4.4% of 136 images; "
        "finetune 3 and 10, 1.2% and 3.9% of 256)",
        minimum=1,
    )
    random_draws: int = option(3, "random removals (query-independent: one retrain per draw and K)", minimum=0)

    def query_specs(self) -> tuple[str, ...]:
        """The queries this run asks about, as ``PHOTO:SEED`` (parsed by the testbed)."""
        return self.queries_validation if self.validation else self.queries_reported


@dataclass(frozen=True)
class LdsConfig(BaseModelConfig):
    """Options of ``attribute lds``: the linear datamodeling score over shared subset retrains (docs/method.md §8)."""

    subsets: int = option(
        64,
        "subset retrains M (shared by every query and method; the LDS's standard error shrinks as 1/sqrt(M))",
        minimum=2,
    )
    alpha: float = option(0.5, "fraction of the training set in each subset", minimum=0.01, maximum=0.99)
    subset_seed: int = option(0, "seed of the subset draws (subset j uses seed + j)")
    seeds: tuple[int, ...] = option((1, 2), "generation seeds of the reported queries (one query per photo and seed)")
    validation_seeds: tuple[int, ...] = option((101,), "generation seeds of the validation queries")
    bootstrap: int = option(
        10_000,
        "bootstrap resamples (query clusters and subset models together) for every interval",
        minimum=100,
    )
    track: str = option(
        "reported",
        "validation: measure the validation queries, choose every setting on them and freeze the choices "
        "(frozen.json); reported: measure the reported queries under the frozen choices",
    )
    no_validation: bool = option(
        False, "run the reported track without a frozen validation (its report says so)", flag="--no-validation"
    )

    def identity(self) -> dict:
        """What a frozen validation holds for: every setting but the track and how the run is carried out."""
        return {k: v for k, v in self.to_dict().items() if k not in ("track", "no_validation", "device", "bootstrap")}
