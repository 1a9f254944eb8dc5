"""The configuration of one training run and the identifiers derived from it."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    ``learning_rate`` is Adam's step size and ``epochs`` counts full passes over
    the training split. With ``lr_decay_every`` set, the learning rate is
    multiplied by ``lr_decay_factor`` after every ``lr_decay_every`` epochs.
    ``precision`` is the number format of the forward pass and the task
    losses: "fp32", or "bf16" for bfloat16 autocast.
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lr_decay_factor: float | None = None
    lr_decay_every: int | None = None
    precision: str = DEFAULT_PRECISION

    def identity(self) -> dict:
        """Return the settings for the configuration id; an unused learning-rate schedule and the default precision are left out.

        Leaving them out keeps the ids of configurations that predate these settings.
        """
        identity = {name: value for name, value in asdict(self).items() if value is not None}
        if identity["precision"] == DEFAULT_PRECISION:
            del identity["precision"]
        return identity


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result, plus where its outputs go and how it runs.

    ``channels_last``, ``compile`` and ``compile_backend`` choose how the
    forward pass runs (see ``mtbench run --help``). Like ``device`` and
    ``deterministic`` they are not part of the configuration id.
    """

    benchmark: str
    protocol: str
    method: str
    method_config: dict
    tasks: tuple[str, ...]
    model: str
    model_config: dict
    train: TrainConfig
    seed: int
    device: str = "cpu"
    data_root: Path = field(default=Path("."))
    leaderboard_dir: Path = field(default=Path("leaderboard"))
    runs_dir: Path = field(default=Path("runs"))
    cosine_every: int = 1
    resume: bool = False
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    compile_backend: str = "inductor"

    def identity(self) -> dict:
        """Return the fields that define the configuration (a leaderboard row), without the seed."""
        return {
            "benchmark": self.benchmark,
            "protocol": self.protocol,
            "method": self.method,
            "method_config": self.method_config,
            "tasks": list(self.tasks),
            "model": self.model,
            "model_config": self.model_config,
            "train_config": self.train.identity(),
        }

    @property
    def active_compile_backend(self) -> str | None:
        """Return the torch.compile backend of the run, or None when it runs without --compile."""
        return self.compile_backend if self.compile else None

    @property
    def config_id(self) -> str:
        return configuration_id(self.identity())

    @property
    def run_id(self) -> str:
        return run_id_for(self.config_id, self.seed)


IDENTITY_KEYS = ("benchmark", "protocol", "method", "method_config", "tasks", "model", "model_config", "train_config")


def configuration_id(identity: dict) -> str:
    """Return the 16-hex-digit id of a configuration from its ``IDENTITY_KEYS`` fields."""
    return _short_hash({key: identity[key] for key in IDENTITY_KEYS})


def run_id_for(config_id: str, seed: int) -> str:
    """Return the id of one seed's run of a configuration."""
    return _short_hash({"config_id": config_id, "seed": seed})


def _short_hash(value: dict) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
