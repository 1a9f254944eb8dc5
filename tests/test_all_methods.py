"""Every registered method trains, stays finite and resumes from a checkpoint exactly."""

import dataclasses
import math

import pytest
import torch
from test_trainer import QUIET, make_config, without_timings

from mtbench.methods import get_method, list_methods
from mtbench.train.config import RunConfig
from mtbench.train.trainer import Trainer

METHODS = [name for name in list_methods() if not get_method(name).single_task]


class Interrupted(Exception):
    """Raised by the test trainer to stop a run between two epochs."""


class StopsBeforeEpoch(Trainer):
    """A trainer that stops at the start of a given epoch, after the previous epoch's checkpoint."""

    stop_at = 2

    def train_epoch(self, epoch, progress):
        if epoch == self.stop_at:
            raise Interrupted
        return super().train_epoch(epoch, progress)


def interrupt_and_resume(config: RunConfig) -> tuple[Trainer, dict]:
    """Run ``config`` until it stops before epoch 2, then resume it to the end; return the resumed trainer and its record."""
    with pytest.raises(Interrupted):
        StopsBeforeEpoch(config, QUIET).run()
    resumed = Trainer(dataclasses.replace(config, resume=True), QUIET)
    return resumed, resumed.run()


def test_at_least_twenty_methods_are_registered():
    assert len(list_methods()) >= 20


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_two_epochs_and_resumes_exactly(method, tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path / "straight", method=method)
    straight = Trainer(config, QUIET)
    record = straight.run()

    assert all(math.isfinite(value) for value in record["test"].values())
    for entry in record["history"]:
        assert all(math.isfinite(value) for value in entry["train_loss"].values())
        assert all(math.isfinite(value) for value in entry["train"].values())
    assert math.isfinite(record["sigma_cos"])

    resumed, resumed_record = interrupt_and_resume(make_config(tiny_data_root, tmp_path / "interrupted", method=method))

    assert without_timings(resumed_record) == without_timings(record)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    for name, value in straight.method.state_dict().items():
        assert torch.equal(value, resumed.method.state_dict()[name]), name
