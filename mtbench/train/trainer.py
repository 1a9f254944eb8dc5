"""Train one model with one method on one benchmark and return its result record.

The loop reads top to bottom: seed, data, model, method, optimiser, then per
epoch a training pass, a validation pass and model selection. The test split is
scored once, with the weights of the epoch that scored best on validation.
"""

import contextlib
import copy
import functools
import math
import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mtbench.benchmarks import get_benchmark
from mtbench.benchmarks.base import SplitTensors
from mtbench.errors import MtbenchError
from mtbench.methods import StepContext, get_method
from mtbench.metrics.gradient_cosine import CosineTracker, pairwise_cosines
from mtbench.train.allocator import keep_freed_memory
from mtbench.train.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from mtbench.train.config import RunConfig
from mtbench.train.distributed import (
    Distributed,
    average_gradients,
    average_rows,
    from_environment,
    global_losses,
    local_share,
    sum_statistics,
)
from mtbench.train.environment import git_commit, peak_memory_mb, resolve_device, use_deterministic_algorithms, versions
from mtbench.train.optimizer import build_adam, match_state_layout
from mtbench.train.runtime_options import ForwardOptions, autocast_dtype, check_compile, prepare_model


class TrainingDiverged(MtbenchError):
    """A task loss became NaN or infinite."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return the generator that shuffles batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def _check_gradients(parameters: list[torch.nn.Parameter], logged: dict[str, float], step: int, method: str) -> None:
    """Stop the run when a method's update or logged values are NaN or infinite."""
    gradients = [parameter.grad for parameter in parameters if parameter.grad is not None]
    if gradients and not bool(torch.stack([gradient.isfinite().all() for gradient in gradients]).all()):
        raise TrainingDiverged(
            f"Method '{method}' produced NaN or infinite gradients at training step {step}. "
            "The run stopped and no record was written. Lower the learning rate or the method's hyper-parameters, "
            "or fix the method, and run again."
        )
    for name, value in logged.items():
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"Method '{method}' logged {name} = {value} at training step {step}. "
                "The run stopped and no record was written."
            )


def _check_finite(task_losses: dict[str, torch.Tensor], step: int, method: str) -> None:
    for task, loss in task_losses.items():
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"The loss of task '{task}' is {value} at training step {step} with method '{method}'. "
                "The run stopped and no record was written. Lower the learning rate or the method's "
                "hyper-parameters and run again."
            )


@torch.no_grad()
def evaluate(
    model,
    benchmark,
    split: SplitTensors,
    tasks: list[str],
    batch_size: int,
    device,
    distributed: Distributed = Distributed(),
    forward: ForwardOptions = ForwardOptions(),
) -> dict[str, float]:
    """Score ``model`` on a whole split; metrics accumulate over all batches before computing.

    In data-parallel training each process scores its part of the split and the
    evaluators' additive statistics (counts, sums, confusion matrices) are
    summed over processes. An evaluator without ``statistics()`` makes every
    process score the whole split instead, which gives the same result.
    ``forward`` sets autocast and the memory format of the inputs; outputs are
    scored in float32.
    """
    model.eval()
    evaluator = benchmark.evaluator(tasks)
    shares = distributed.enabled and hasattr(evaluator, "statistics")
    rows = torch.arange(len(split))
    if shares:
        rows = torch.tensor_split(rows, distributed.world_size)[distributed.rank]
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        inputs = forward.inputs(benchmark.prepare_batch(split.inputs[batch].to(device)))
        with forward.autocast(device):
            _, outputs = model(inputs)
        outputs = {task: output.float() for task, output in outputs.items()}
        targets = {task: split.targets[task][batch].to(device) for task in tasks}
        evaluator.update(outputs, targets)
    if shares:
        evaluator.load_statistics(sum_statistics(evaluator.statistics(), distributed))
    return evaluator.compute()


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


class Trainer:
    """One run: a model, a method and an optimiser trained for a fixed number of epochs."""

    def __init__(self, config: RunConfig, console: Console | None = None) -> None:
        self.config = config
        use_deterministic_algorithms(config.deterministic)
        self.device = resolve_device(config.device)
        self.forward = ForwardOptions(autocast_dtype(config.train.precision, self.device), config.channels_last)
        check_compile(get_method(config.method), config.compile)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.distributed = from_environment(self.device)
        if self.distributed.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.distributed.local_rank)
            torch.cuda.set_device(self.device)
        # Only the first process prints, writes checkpoints and returns records.
        self.console = console or Console()
        if not self.distributed.is_main:
            self.console = Console(quiet=True)
        self.benchmark = get_benchmark(config.benchmark)
        self.tasks = list(config.tasks)
        self.generator = seed_everything(config.seed)

        self.train_split = self.benchmark.load_split(config.data_root, "train")
        self.validation_split = self.benchmark.load_split(config.data_root, "val")
        # Loaded now so that a damaged test split stops the run before training, not after it.
        self.test_split = self.benchmark.load_split(config.data_root, "test")
        self.dataset_checksum = self.benchmark.dataset_checksum(config.data_root)

        try:
            self.model = self.benchmark.build_model(self.tasks, config.model_config).to(self.device)
        except (RuntimeError, MemoryError) as error:
            if "allocate" not in str(error) and not isinstance(error, MemoryError):
                raise
            raise MtbenchError(
                f"Out of memory while building the model with options {config.model_config}. "
                "Use a smaller --width, --kernel-size or --hidden-units."
            ) from error
        self.model = prepare_model(self.model, config.channels_last, config.active_compile_backend)
        self.method = build_method(config.method, self.tasks, config.method_config).to(self.device)
        self.method.check_epochs(config.train.epochs)
        self.parameters = list(self.model.parameters()) + list(self.method.parameters())
        self.optimizer = build_adam(self.parameters, config.train.learning_rate, self.device)
        self.scheduler = None
        if config.train.lr_decay_every:
            self.scheduler = torch.optim.lr_scheduler.StepLR(
                self.optimizer, step_size=config.train.lr_decay_every, gamma=config.train.lr_decay_factor or 1.0
            )
        self.evaluation_batch_size = int(self.benchmark.definition.training.get("evaluation_batch_size", 256))

        self.cosines = CosineTracker()
        self.step = 0
        self.step_seconds: list[float] = []
        # Indices into step_seconds of the steps that compiled the model: the first of each process with --compile.
        self.compile_steps: list[int] = []
        self._compiled_in_process = False

    def train_step(self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], epoch: int, global_count: int = 0) -> dict[str, float]:
        """Train on one batch; ``global_count`` is the size of the global batch in data-parallel training."""
        # Freed before the forward pass, so the previous step's gradients do not add to this step's activations.
        self.optimizer.zero_grad(set_to_none=True)
        representation, task_losses = self._task_losses(inputs, targets, global_count)
        _check_finite(task_losses, self.step, self.config.method)

        context = StepContext(
            task_losses=task_losses,
            shared_parameters=self.model.shared_parameters(),
            last_shared_parameters=self.model.last_shared_parameters(),
            shared_representation=representation,
            step=self.step,
            epoch=epoch,
            task_parameters={task: self.model.task_parameters(task) for task in self.tasks},
            reduce_rows=functools.partial(average_rows, distributed=self.distributed) if self.distributed.enabled else None,
        )
        track_cosines = len(self.tasks) > 1 and self.step % self.config.cosine_every == 0
        if track_cosines and not self.method.fills_last_shared_gradients():
            # Taken before backward() frees the graph; no second-order graph is built.
            context.last_shared_task_gradients(create_graph=False)

        logged = self._method_backward(context)
        average_gradients(self.parameters, self.distributed)
        _check_gradients(self.parameters, logged, self.step, self.config.method)
        self.optimizer.step()
        self._method_after_step()
        if self.method.needs_losses_after_step():
            self._method_losses_after_step(inputs, targets, global_count)

        gradients = context.cached_task_gradients()
        if track_cosines and gradients is not None:
            self.cosines.update(pairwise_cosines(gradients))
        logged.update({f"loss/{task}": float(loss.detach()) for task, loss in task_losses.items()})
        return logged

    @contextlib.contextmanager
    def _method_errors(self, where: str, hint: str = "") -> Iterator[None]:
        """Report any failure inside the method's code as one MtbenchError naming the method and step."""
        try:
            yield
        except TrainingDiverged:
            raise
        except MtbenchError as error:
            if str(error).startswith(f"Method '{self.config.method}'"):
                raise
            raise MtbenchError(f"Method '{self.config.method}' failed{where} at training step {self.step}: {error}") from error
        except (Exception, SystemExit) as error:
            raise MtbenchError(
                f"Method '{self.config.method}' failed{where} at training step {self.step}: "
                f"{type(error).__name__}: {error}.{hint}"
            ) from error

    def _method_backward(self, context: StepContext) -> dict[str, float]:
        hint = " loss() must return (a scalar tensor with a graph, a dict of floats) and backward() a dict of floats."
        with self._method_errors("", hint):
            logged = self.method.backward(context)
            return {name: float(value) for name, value in dict(logged).items()}

    def _method_after_step(self) -> None:
        with self._method_errors(" in after_optimizer_step()"), torch.no_grad():
            self.method.after_optimizer_step()

    def _task_losses(
        self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], global_count: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the model on the batch; return the shared representation and each task's float32 loss over the global batch."""
        with self.forward.autocast(self.device):
            representation, outputs = self.model(inputs)
            task_losses = {task: self.benchmark.task_loss(task, outputs[task], targets[task]) for task in self.tasks}
        # Methods get float32 losses under autocast too; for float32 losses .float() returns the same tensor.
        task_losses = {task: loss.float() for task, loss in task_losses.items()}
        if self.distributed.enabled:
            task_losses = global_losses(task_losses, inputs.shape[0], global_count)
        return representation, task_losses

    def _method_losses_after_step(self, inputs: torch.Tensor, targets: dict[str, torch.Tensor], global_count: int) -> None:
        """Recompute the task losses of the batch with the updated model, without gradients, and pass them to the method."""
        with torch.no_grad():
            _, task_losses = self._task_losses(inputs, targets, global_count)
            with self._method_errors(" in losses_after_step()"):
                self.method.losses_after_step(task_losses)

    def train_epoch(self, epoch: int, progress: Progress) -> dict[str, float]:
        self.model.train()
        self.method.train()
        self.cosines.start_epoch()
        order = torch.randperm(len(self.train_split), generator=self.generator)
        batch_size = self.config.train.batch_size
        batches = range(0, len(order), batch_size)
        bar = progress.add_task(f"epoch {epoch}/{self.config.train.epochs}", total=len(batches))

        sums: dict[str, float] = {}
        trained = 0
        for start in batches:
            global_indices = order[start : start + batch_size]
            if len(global_indices) < self.distributed.world_size:
                # Some process would get no sample; every process skips the batch alike.
                progress.advance(bar)
                continue
            indices = local_share(global_indices, self.distributed)
            raw = self.train_split.inputs[indices].to(self.device)
            targets = {task: self.train_split.targets[task][indices].to(self.device) for task in self.tasks}
            if hasattr(self.benchmark, "augment"):
                raw, targets = self._augment(raw, targets, global_indices, indices)
            inputs = self.forward.inputs(self.benchmark.prepare_batch(raw))

            began = time.perf_counter()
            logged = self.train_step(inputs, targets, epoch, len(global_indices))
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            if self.config.compile and not self._compiled_in_process:
                self.compile_steps.append(len(self.step_seconds))
                self._compiled_in_process = True
            self.step_seconds.append(time.perf_counter() - began)

            for key, value in logged.items():
                sums[key] = sums.get(key, 0.0) + value
            self.step += 1
            trained += 1
            progress.advance(bar)

        progress.remove_task(bar)
        return {key: value / max(trained, 1) for key, value in sums.items()}

    @property
    def checkpoint_path(self) -> Path:
        return self.config.runs_dir / self.config.benchmark / self.config.run_id / "checkpoint.pt"

    def _augment(self, raw, targets, global_indices, indices):
        """Apply the benchmark's random transformations, drawn for the whole global batch.

        Every process draws for all samples of the global batch from the same
        generator and keeps the part of its own samples, so a run gives the
        same batches with any number of processes.
        """
        if not self.distributed.enabled:
            return self.benchmark.augment(raw, targets, self.generator)
        full = self.train_split.inputs[global_indices].to(self.device)
        full_targets = {task: self.train_split.targets[task][global_indices].to(self.device) for task in self.tasks}
        full, full_targets = self.benchmark.augment(full, full_targets, self.generator)
        own = torch.isin(global_indices, indices).to(self.device)
        return full[own], {task: target[own] for task, target in full_targets.items()}

    def save_checkpoint(self, epoch: int, best: dict, history: list[dict]) -> None:
        """Write everything the rest of the run depends on after ``epoch``, atomically (first process only)."""
        if not self.distributed.is_main:
            return
        save_checkpoint(
            self.checkpoint_path,
            {
                "run_id": self.config.run_id,
                "epoch": epoch,
                "step": self.step,
                "model": self.model.state_dict(),
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else {},
                "best": best,
                "history": history,
                "cosines": self.cosines.state(),
                "step_seconds": torch.tensor(self.step_seconds, dtype=torch.float64),
                "compile_steps": list(self.compile_steps),
                "rng": rng_state(self.generator),
            },
        )

    def restore_checkpoint(self) -> tuple[int, dict, list[dict]]:
        """Load the run's checkpoint; return the next epoch, the best epoch so far and the history.

        Without a checkpoint the run starts from epoch 1.
        """
        try:
            state = load_checkpoint(self.checkpoint_path, self.config.run_id)
        except FileNotFoundError:
            self.console.print(f"No checkpoint at {self.checkpoint_path}; starting run {self.config.run_id} from epoch 1.")
            return 1, _no_best(), []

        try:
            self.model.load_state_dict(state["model"])
            self.method.load_state_dict(state["method"])
            self.optimizer.load_state_dict(state["optimizer"])
            match_state_layout(self.optimizer)
            if self.scheduler:
                self.scheduler.load_state_dict(state["scheduler"])
            self.cosines.load_state(state["cosines"])
            self.step_seconds = state["step_seconds"].tolist()
            # Checkpoints written before mtbench stored compile steps lack the key.
            self.compile_steps = [int(index) for index in state.get("compile_steps", [])]
            self.step = state["step"]
            restore_rng_state(state["rng"], self.generator)
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise MtbenchError(
                f"The checkpoint {self.checkpoint_path} is incomplete or damaged ({type(error).__name__}: {error}). "
                "Delete it and run again without --resume to start the run from the beginning."
            ) from error
        self.console.print(f"Resuming run {self.config.run_id} after epoch {state['epoch']} from {self.checkpoint_path}.")
        return state["epoch"] + 1, state["best"], state["history"]

    def _evaluate(self, split: SplitTensors) -> dict[str, float]:
        return evaluate(self.model, self.benchmark, split, self.tasks, self.evaluation_batch_size, self.device, self.distributed, self.forward)

    def run(self) -> dict:
        """Train, select the epoch on validation, score it on test and return the record."""
        config = self.config
        selection_metric = self.benchmark.selection_metric(self.tasks)
        started = time.perf_counter()
        first_epoch, best, history = self.restore_checkpoint() if config.resume else (1, _no_best(), [])

        with _progress(self.console) as progress:
            for epoch in range(first_epoch, config.train.epochs + 1):
                epoch_started = time.perf_counter()
                train_logged = self.train_epoch(epoch, progress)
                if self.scheduler:
                    self.scheduler.step()
                validation = self._evaluate(self.validation_split)
                mu_cos, sigma_cos = self.cosines.epoch_summary()
                seconds = time.perf_counter() - epoch_started

                if validation[selection_metric] > best["score"]:
                    best = {
                        "epoch": epoch,
                        "score": validation[selection_metric],
                        "model": copy.deepcopy(self.model.state_dict()),
                        "validation": validation,
                    }
                history.append(_epoch_entry(epoch, train_logged, validation, mu_cos, sigma_cos, seconds))
                self.console.print(_epoch_line(history[-1], config.train.epochs, selection_metric))
                self.save_checkpoint(epoch, best, history)

        self.model.load_state_dict(best["model"])
        test = self._evaluate(self.test_split)
        return self._record(selection_metric, best, test, history, time.perf_counter() - started)

    def _record(self, selection_metric: str, best: dict, test: dict, history: list[dict], wall_seconds: float) -> dict:
        config = self.config
        mu_cos, sigma_cos = self.cosines.run_summary()
        return {
            "schema_version": 1,
            "status": "finished",
            "failure": None,
            "run_id": config.run_id,
            "config_id": config.config_id,
            **config.identity(),
            "seed": config.seed,
            "method_module": type(self.method).__module__,
            "dataset_checksum": self.dataset_checksum,
            "selection_metric": selection_metric,
            "selected_epoch": best["epoch"],
            "validation": best["validation"],
            "test": test,
            "history": history,
            "mu_cos": mu_cos,
            "sigma_cos": sigma_cos,
            "first_epoch_sigma_cos": history[0]["sigma_cos"] if history else None,
            "cosines_file": None,
            "seconds_per_step": mean_step_seconds(self.step_seconds, self.compile_steps),
            "peak_memory_mb": peak_memory_mb(self.device),
            "wall_seconds": wall_seconds,
            "device": str(self.device),
            "runtime": {"channels_last": config.channels_last, "compile_backend": config.active_compile_backend},
            **versions(),
            "git_commit": git_commit(),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def mean_step_seconds(step_seconds: list[float], compile_steps: list[int]) -> float:
    """Return the mean step time, leaving out the steps that compiled the model unless no other step is left; 0 without steps.

    NOTE: a recompilation within a process, such as for a last batch of another size, still counts.
    """
    left_out = set(compile_steps)
    times = [seconds for index, seconds in enumerate(step_seconds) if index not in left_out] or step_seconds
    return float(np.mean(times)) if times else 0.0


def build_method(name: str, tasks: list[str], method_config: dict):
    """Return an instance of the registered method ``name`` for ``tasks`` with the hyper-parameters ``method_config``.

    Raises MtbenchError naming the method when it rejects a value or fails to initialise.
    """
    method_class = get_method(name)
    try:
        return method_class(tasks, **_method_arguments(method_class, method_config))
    except MtbenchError:
        raise
    except TypeError as error:
        raise MtbenchError(f"Invalid hyper-parameters {method_config} for method '{name}': {error}.") from error
    except Exception as error:
        raise MtbenchError(f"Method '{name}' failed to initialise: {type(error).__name__}: {error}.") from error


def _no_best() -> dict:
    return {"epoch": 0, "score": -math.inf, "model": None, "validation": None}


def _method_arguments(method_class, method_config: dict) -> dict:
    """Map record keys (``lambda``) to constructor keywords (``lambda_``)."""
    keywords = {hyperparameter.name: hyperparameter.keyword for hyperparameter in method_class.hyperparameters}
    return {keywords.get(name, name): value for name, value in method_config.items()}


def _epoch_entry(epoch, train_logged, validation, mu_cos, sigma_cos, seconds) -> dict:
    train_loss = {key.removeprefix("loss/"): value for key, value in train_logged.items() if key.startswith("loss/")}
    extra = {key: value for key, value in train_logged.items() if not key.startswith("loss/")}
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "train": extra,
        "validation": validation,
        "mu_cos": mu_cos,
        "sigma_cos": sigma_cos,
        "seconds": seconds,
    }


def _epoch_line(entry: dict, epochs: int, selection_metric: str) -> str:
    losses = " ".join(f"{task} {value:.4f}" for task, value in entry["train_loss"].items())
    scores = " ".join(f"{name} {value:.4f}" for name, value in entry["validation"].items())
    sigma = "-" if entry["sigma_cos"] is None else f"{entry['sigma_cos']:.3f}"
    mu = "-" if entry["mu_cos"] is None else f"{entry['mu_cos']:+.3f}"
    return (
        f"epoch {entry['epoch']}/{epochs}  train loss: {losses}  validation: {scores}  "
        f"mu_cos {mu}  sigma_cos {sigma}  {entry['seconds']:.1f} s"
    )
