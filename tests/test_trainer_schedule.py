"""The learning-rate schedule of a benchmark definition, and its place in run identities."""

import dataclasses

import pytest
from test_trainer import QUIET, make_config

from mtbench.train.config import TrainConfig
from mtbench.train.trainer import Trainer


def test_step_schedule_halves_the_learning_rate_every_epoch(tiny_data_root, tmp_path):
    config = make_config(tiny_data_root, tmp_path, epochs=2)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, lr_decay_factor=0.5, lr_decay_every=1))
    trainer = Trainer(config, QUIET)
    trainer.run()

    # 3e-3 halved after epoch 1 and after epoch 2.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.25)


def test_unused_schedule_keeps_old_configuration_ids():
    plain = TrainConfig(epochs=12, batch_size=64, learning_rate=1e-3)
    assert plain.identity() == {"epochs": 12, "batch_size": 64, "learning_rate": 1e-3, "optimizer": "adam"}

    scheduled = dataclasses.replace(plain, lr_decay_factor=0.5, lr_decay_every=2)
    assert scheduled.identity()["lr_decay_every"] == 2
    assert scheduled.identity()["lr_decay_factor"] == 0.5
