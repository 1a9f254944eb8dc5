import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mtbench.benchmarks import benchmark_names, get_benchmark
from mtbench.benchmarks.definition import read_definition
from mtbench.benchmarks.dense import DenseBenchmark
from mtbench.cli.main import main
from mtbench.data.dense_format import write_dense_dataset
from mtbench.errors import MtbenchError
from mtbench.paths import project_root

NYU_CLASSES = ["bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv", "wall", "window"]


def make_split(rng: np.random.Generator, count: int, image_size: tuple[int, int], target_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Random NYUv2 fields with a void row, an invalid depth column and an invalid normal column."""
    segmentation = rng.integers(0, 13, (count, *target_size)).astype(np.uint8)
    segmentation[:, 0] = 255
    depth = rng.uniform(0.5, 5.0, (count, *target_size)).astype(np.float32)
    depth[:, :, 0] = 0.0
    normal = rng.normal(size=(count, 3, *target_size))
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal = normal.astype(np.float32)
    normal[:, :, :, -1] = 0.0
    image = rng.integers(0, 256, (count, 3, *image_size), dtype=np.uint8)
    return {"image": image, "segmentation": segmentation, "depth": depth, "normal": normal}


def write_nyuv2(folder: Path, image_size: tuple[int, int], target_size: tuple[int, int], counts=(8, 4, 4), drop: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    splits = {split: make_split(rng, count, image_size, target_size) for split, count in zip(("train", "val", "test"), counts)}
    class_names = {"segmentation": NYU_CLASSES}
    if drop:
        for fields in splits.values():
            del fields[drop]
        class_names.pop(drop, None)
    return write_dense_dataset(folder, splits, {"dataset": "nyuv2", "class_names": class_names}, log=lambda message: None)


def small_definitions(root: Path, image_side: int = 32, target_side: int = 8) -> Path:
    """A repository root whose nyuv2 definition uses random weights and small sizes, for CPU runs in seconds."""
    text = (project_root() / "datasets" / "nyuv2" / "benchmark.toml").read_text()
    text = text.replace("pretrained = true", "pretrained = false")
    text = text.replace("input_size = [320, 320]", f"input_size = [{image_side}, {image_side}]")
    text = text.replace("target_size = [80, 80]", f"target_size = [{target_side}, {target_side}]")
    folder = root / "datasets" / "nyuv2"
    folder.mkdir(parents=True)
    (folder / "benchmark.toml").write_text(text)
    return root


def test_dense_benchmarks_registered():
    assert {"nyuv2", "nyuv2-288x384", "sunrgbd"} <= set(benchmark_names())
    for name in ("nyuv2", "nyuv2-288x384", "sunrgbd"):
        assert get_benchmark(name).definition.name == name


def test_nyuv2_definition():
    definition = read_definition("nyuv2")
    assert [(task.name, task.kind, task.loss) for task in definition.tasks] == [
        ("segmentation", "segmentation", "cross_entropy"),
        ("depth", "depth", "mse"),
        ("normal", "normal", "mse"),
    ]
    assert definition.tasks[0].classes == tuple(NYU_CLASSES)
    assert definition.input_size == (320, 320)
    assert definition.target_size == (80, 80)
    assert definition.model_options == {"width": 64, "pretrained": True}
    assert definition.training == {"optimizer": "adam", "batch_size": 2, "learning_rate": 0.0001, "epochs": 25, "evaluation_batch_size": 8}
    assert definition.augmentation == ()
    assert definition.selection_metric == "mean_task_score"


def test_nyuv2_288x384_definition():
    definition = read_definition("nyuv2-288x384")
    assert definition.input_size == definition.target_size == (288, 384)
    assert definition.task_names == ["segmentation", "depth", "normal"]


def test_sunrgbd_definition():
    definition = read_definition("sunrgbd")
    assert definition.task_names == ["segmentation13", "segmentation37", "depth"]
    assert [len(task.classes) for task in definition.tasks] == [13, 37, 0]
    assert definition.augmentation == ("horizontal_flip",)
    assert definition.training["batch_size"] == 3
    assert definition.training["lr_decay_factor"] == 0.5
    assert definition.training["lr_decay_every"] == 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("input_size = [320, 320]\n", "", "input_size is missing"),
        ("target_size = [80, 80]", "target_size = [80]", r"target_size = \[80\] must be \[height, width\]"),
        ('kind = "depth"\nloss = "mse"', 'kind = "depth"\nloss = "huber"', "task 'depth' has loss 'huber'"),
        ('kind = "normal"', 'kind = "normals"', "task 'normal' has unknown kind 'normals'"),
        ('selection_metric = "mean_task_score"', 'selection_metric = "depth_rmse"', "selection_metric = 'depth_rmse' is not one of"),
        ("evaluation_batch_size = 8", "evaluation_batch_size = 0", "training.evaluation_batch_size = 0 must be a positive number"),
        ('name = "normal"', 'name = "depth"', "are not distinct"),
        ('[model_options]', 'augmentation = ["rotate"]\n[model_options]', "augmentation \\['rotate'\\] is not supported"),
    ],
)
def test_invalid_dense_definition_is_named(tmp_path, monkeypatch, old, new, message):
    copy = tmp_path / "datasets" / "nyuv2"
    shutil.copytree(project_root() / "datasets" / "nyuv2", copy)
    path = copy / "benchmark.toml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    monkeypatch.setenv("MTBENCH_ROOT", str(tmp_path))
    with pytest.raises(MtbenchError, match=message):
        read_definition("nyuv2")


def test_per_task_selection_metric_accepted(tmp_path, monkeypatch):
    copy = tmp_path / "datasets" / "nyuv2"
    shutil.copytree(project_root() / "datasets" / "nyuv2", copy)
    path = copy / "benchmark.toml"
    path.write_text(path.read_text().replace('selection_metric = "mean_task_score"', 'selection_metric = "segmentation_miou"'))
    monkeypatch.setenv("MTBENCH_ROOT", str(tmp_path))
    benchmark = DenseBenchmark("nyuv2")
    assert benchmark.selection_metric(["segmentation", "depth"]) == "segmentation_miou"
    assert benchmark.selection_metric(["depth", "normal"]) == "mean_task_score"


def test_selection_metric_per_task_count():
    benchmark = get_benchmark("nyuv2")
    assert benchmark.selection_metric(["segmentation", "depth", "normal"]) == "mean_task_score"
    assert benchmark.selection_metric(["segmentation"]) == "segmentation_miou"
    assert benchmark.selection_metric(["depth"]) == "depth_delta1"
    assert benchmark.selection_metric(["normal"]) == "normal_within_22_5"


def test_segmentation_loss_ignores_void():
    benchmark = get_benchmark("nyuv2")
    # Equal logits over 13 classes: the labelled pixel costs ln 13 and the void pixel nothing.
    logits = torch.zeros(1, 13, 1, 2, requires_grad=True)
    target = torch.tensor([[[3, 255]]], dtype=torch.uint8)
    loss = benchmark.task_loss("segmentation", logits, target)
    assert loss.item() == pytest.approx(math.log(13))
    loss.backward()
    assert torch.all(logits.grad[0, :, 0, 1] == 0)


def test_losses_finite_without_valid_pixels():
    benchmark = get_benchmark("nyuv2")
    logits = torch.zeros(1, 13, 1, 2, requires_grad=True)
    outputs = {"segmentation": logits, "depth": torch.ones(1, 1, 1, 2, requires_grad=True), "normal": torch.ones(1, 3, 1, 2, requires_grad=True)}
    targets = {"segmentation": torch.full((1, 1, 2), 255, dtype=torch.uint8), "depth": torch.zeros(1, 1, 2), "normal": torch.zeros(1, 3, 1, 2)}
    for task in outputs:
        loss = benchmark.task_loss(task, outputs[task], targets[task])
        assert loss.item() == 0.0
        loss.backward()


def test_depth_losses_over_valid_pixels():
    benchmark = get_benchmark("nyuv2")
    # Valid pixels: errors 1 (3 vs 2) and 2 (6 vs 4); the invalid pixel's error 9 is skipped.
    output = torch.tensor([[[[9.0, 3.0, 6.0]]]])
    target = torch.tensor([[[0.0, 2.0, 4.0]]])
    assert benchmark.task_loss("depth", output, target).item() == pytest.approx(2.5)
    benchmark.losses["depth"] = "l1"
    assert benchmark.task_loss("depth", output, target).item() == pytest.approx(1.5)


def test_normal_losses_over_valid_pixels():
    benchmark = get_benchmark("nyuv2")
    # Pixel 1 points the right way (longer than 1), pixel 2 is 90 degrees off, pixel 3 has no ground truth.
    output = torch.tensor([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    # Squared error per pixel averaged over channels: 0 and (1 + 0 + 1) / 3.
    assert benchmark.task_loss("normal", output, target).item() == pytest.approx(1 / 3)
    # 1 - cosine: 0 and 1.
    benchmark.losses["normal"] = "cosine"
    assert benchmark.task_loss("normal", output, target).item() == pytest.approx(0.5)


def test_loss_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one shape"):
        get_benchmark("nyuv2").task_loss("depth", torch.ones(1, 1, 4, 4), torch.ones(1, 2, 2))


def test_prepare_batch_normalises_with_imagenet_statistics():
    inputs = torch.zeros(1, 3, 1, 1, dtype=torch.uint8)
    inputs[0, :, 0, 0] = torch.tensor([124, 116, 104], dtype=torch.uint8)
    prepared = get_benchmark("nyuv2").prepare_batch(inputs)
    assert prepared.dtype == torch.float32
    expected = (torch.tensor([124, 116, 104]) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(prepared.flatten(), expected)


def test_flip_mirrors_images_and_targets():
    benchmark = get_benchmark("sunrgbd")
    inputs = torch.arange(16 * 3 * 2 * 4, dtype=torch.uint8).reshape(16, 3, 2, 4)
    targets = {"segmentation13": torch.arange(16 * 2 * 4).reshape(16, 2, 4) % 13, "depth": torch.rand(16, 2, 4)}
    generator = torch.Generator().manual_seed(5)
    expected_flips = torch.rand(16, generator=torch.Generator().manual_seed(5)) < 0.5
    assert 0 < int(expected_flips.sum()) < 16

    flipped_inputs, flipped_targets = benchmark.augment(inputs, targets, generator)
    for index, flipped in enumerate(expected_flips.tolist()):
        transform = (lambda tensor: tensor.flip(-1)) if flipped else (lambda tensor: tensor)
        assert torch.equal(flipped_inputs[index], transform(inputs[index]))
        for task in targets:
            assert torch.equal(flipped_targets[task][index], transform(targets[task][index]))
    assert torch.equal(inputs, torch.arange(16 * 3 * 2 * 4, dtype=torch.uint8).reshape(16, 3, 2, 4))


def test_flip_negates_normal_x():
    benchmark = get_benchmark("nyuv2")
    benchmark.definition = dataclasses.replace(benchmark.definition, augmentation=("horizontal_flip",))
    normal = torch.zeros(8, 3, 1, 2)
    normal[:, :, 0, 0] = torch.tensor([0.6, 0.0, 0.8])
    normal[:, :, 0, 1] = torch.tensor([0.0, 0.6, 0.8])
    expected_flips = torch.rand(8, generator=torch.Generator().manual_seed(1)) < 0.5
    assert 0 < int(expected_flips.sum()) < 8

    _, targets = benchmark.augment(torch.zeros(8, 3, 1, 2), {"normal": normal}, torch.Generator().manual_seed(1))
    for index, flipped in enumerate(expected_flips.tolist()):
        if flipped:
            assert targets["normal"][index, :, 0, 0].tolist() == pytest.approx([0.0, 0.6, 0.8])
            assert targets["normal"][index, :, 0, 1].tolist() == pytest.approx([-0.6, 0.0, 0.8])
        else:
            assert torch.equal(targets["normal"][index], normal[index])


def test_no_augmentation_leaves_batch_and_generator():
    benchmark = get_benchmark("nyuv2")
    generator = torch.Generator().manual_seed(3)
    inputs, targets = torch.zeros(2, 3, 4, 4), {"depth": torch.ones(2, 4, 4)}
    augmented_inputs, augmented_targets = benchmark.augment(inputs, targets, generator)
    assert augmented_inputs is inputs
    assert augmented_targets is targets
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())


def test_model_options_resolution():
    benchmark = get_benchmark("nyuv2")
    assert benchmark.model_options({}) == {"width": 64, "pretrained": True}
    fixed_options = {"width": 4, "kernel_size": 3, "batchnorm": True, "dropout": 0.0}
    assert benchmark.model_options(fixed_options) == {"width": 4, "pretrained": True}
    assert benchmark.model_options({"width": 4, "pretrained": False}) == {"width": 4, "pretrained": False}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": 3}, r"Unknown model option\(s\) \['depth'\]"),
        ({"hidden_units": 50}, r"Unknown model option\(s\) \['hidden_units'\]"),
        ({"kernel_size": 5}, "3 x 3"),
        ({"dropout": 0.5}, "no dropout"),
        ({"width": 8}, "exist only for width 64"),
    ],
)
def test_invalid_model_options(options, message):
    with pytest.raises(MtbenchError, match=message):
        get_benchmark("nyuv2").build_model(["depth"], options)


def test_build_model_at_protocol_size():
    model = get_benchmark("nyuv2").build_model(["segmentation", "normal"], {"width": 2, "pretrained": False})
    _, outputs = model(torch.zeros(1, 3, 320, 320))
    assert set(outputs) == {"segmentation", "normal"}
    assert outputs["segmentation"].shape == (1, 13, 80, 80)
    assert outputs["normal"].shape == (1, 3, 80, 80)


def test_load_split_at_protocol_size(tmp_path):
    write_nyuv2(tmp_path / "nyuv2", (320, 320), (80, 80), counts=(2, 1, 1))
    benchmark = get_benchmark("nyuv2")
    split = benchmark.load_split(tmp_path, "train")
    assert split.inputs.shape == (2, 3, 320, 320)
    assert split.inputs.dtype == torch.uint8
    assert split.targets["segmentation"].dtype == torch.uint8
    assert split.targets["depth"].shape == (2, 80, 80)
    assert split.targets["normal"].shape == (2, 3, 80, 80)
    # The tensors own their memory, so a batch may be changed in place.
    split.inputs[0, 0, 0, 0] = 7
    assert benchmark.verify(tmp_path) == benchmark.dataset_checksum(tmp_path)


def test_load_split_rejects_other_size(tmp_path):
    write_nyuv2(tmp_path / "nyuv2", (64, 64), (16, 16), counts=(1, 1, 1))
    with pytest.raises(MtbenchError, match="image size 64x64, but benchmark 'nyuv2' expects 320x320"):
        get_benchmark("nyuv2").load_split(tmp_path, "train")


def test_load_split_rejects_missing_field(tmp_path):
    write_nyuv2(tmp_path / "nyuv2", (320, 320), (80, 80), counts=(1, 1, 1), drop="normal")
    with pytest.raises(MtbenchError, match="no field normal"):
        get_benchmark("nyuv2").verify(tmp_path)


def test_load_split_rejects_other_class_order(tmp_path):
    rng = np.random.default_rng(0)
    splits = {split: make_split(rng, 1, (320, 320), (80, 80)) for split in ("train", "val", "test")}
    swapped = [NYU_CLASSES[1], NYU_CLASSES[0], *NYU_CLASSES[2:]]
    write_dense_dataset(tmp_path / "nyuv2", splits, {"dataset": "nyuv2", "class_names": {"segmentation": swapped}}, log=lambda message: None)
    with pytest.raises(MtbenchError, match="lists the classes"):
        get_benchmark("nyuv2").load_split(tmp_path, "val")


def test_missing_data_is_not_found(tmp_path):
    with pytest.raises(MtbenchError, match="not found"):
        get_benchmark("sunrgbd").verify(tmp_path)


def test_run_command_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MTBENCH_ROOT", str(small_definitions(tmp_path / "repository")))
    write_nyuv2(tmp_path / "data" / "nyuv2", (32, 32), (8, 8))
    # Batch 4 keeps every forward pass at one shape, which keeps CPU start-up costs down.
    status = main(
        [
            "run", "--benchmark", "nyuv2", "--method", "equal", "--epochs", "1", "--width", "4", "--batch-size", "4",
            "--device", "cpu", "--data-root", str(tmp_path / "data"),
            "--leaderboard-dir", str(tmp_path / "leaderboard"), "--runs-dir", str(tmp_path / "runs"),
        ]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err

    (record,) = [json.loads(line) for line in (tmp_path / "leaderboard" / "results" / "nyuv2.jsonl").read_text().splitlines()]
    assert record["status"] == "finished"
    assert record["model"] == "segnet"
    assert record["selection_metric"] == "mean_task_score"
    assert set(record["test"]) == set(record["validation"])
    assert {"segmentation_miou", "depth_rmse", "normal_mean_angle_error", "mean_task_score"} <= set(record["test"])
    for split in ("validation", "test"):
        for name, value in record[split].items():
            assert math.isfinite(value), (split, name)
    assert (tmp_path / "runs" / "nyuv2" / record["run_id"] / "checkpoint.pt").is_file()
