import re
import textwrap
from collections import Counter

import pytest

from mtbench.cli.main import main
from mtbench.methods import Hyperparameter, Method, get_method, list_methods, registry


class BracketMethod(Method):
    """A method whose title and help contain square brackets, which rich would read as markup."""

    name = "bracket-test"
    title = "Doe, 2020: A [bold] Title"
    hyperparameters = (Hyperparameter("rate", float, 0.5, "step size in [0, 1]"),)


class PlainMethod(Method):
    name = "plain-test"
    title = "Roe, 2021: No Options"


@pytest.fixture
def private_registry(monkeypatch):
    """Replace the registry with a copy that the test may extend. The original is restored after the test."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def render(capsys, monkeypatch, columns: int, *arguments: str) -> str:
    """Return what `mtbench methods` prints to a terminal of ``columns`` characters, without colours."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(variable, raising=False)
    status = main(["methods", *arguments])
    captured = capsys.readouterr()
    assert status == 0
    assert captured.err == ""
    return captured.out


def visible_characters(text: str) -> Counter:
    """Count the characters other than whitespace and box-drawing characters (U+2500 to U+257F)."""
    return Counter(character for character in text if not character.isspace() and not "\u2500" <= character <= "\u257f")


def hyperparameter_line(hyperparameter: Hyperparameter) -> re.Pattern:
    """Match ``name = default (type)`` followed, after the grid's padding, by the help text on one line."""
    default = f"{hyperparameter.name} = {hyperparameter.default!r} ({hyperparameter.type.__name__})"
    return re.compile(re.escape(default) + " {2,}" + re.escape(hyperparameter.help))


def test_every_method_listed_with_reference_and_defaults(capsys, monkeypatch):
    # A wide terminal wraps nothing, so every title and hyper-parameter is on one line.
    output = render(capsys, monkeypatch, 1000)
    lines = output.splitlines()

    names = list_methods()
    assert {"famo", "stch", "gradnorm", "uncertainty", "dwa"} <= set(names)
    for name in names:
        method_class = get_method(name)
        rows = [line for line in lines if line.startswith(f"│ {name} ")]
        assert len(rows) == 1, f"{name}: {len(rows)} rows"
        assert method_class.title in rows[0], name
        for hyperparameter in method_class.hyperparameters:
            assert hyperparameter_line(hyperparameter).search(output), f"{name}: {hyperparameter.name}"


def test_stch_row_shows_published_defaults(capsys, monkeypatch):
    output = render(capsys, monkeypatch, 1000)
    assert "mu = 1.0 (float)" in output
    assert "warmup_epochs = 5 (int)" in output
    assert "logit_learning_rate = 0.025 (float)" in output


def test_fits_100_columns_without_losing_text(capsys, monkeypatch):
    narrow = render(capsys, monkeypatch, 100)
    wide = render(capsys, monkeypatch, 1000)

    lines = narrow.splitlines()
    too_long = [line for line in lines if len(line) > 100]
    assert too_long == []
    assert "…" not in narrow
    # Wrapping moves text between lines but must not drop or cut any of it.
    assert visible_characters(narrow) == visible_characters(wide)
    first_column = {line.split("│")[1].strip() for line in lines if line.startswith("│")}
    assert set(list_methods()) <= first_column


def test_methods_are_separated_by_lines(capsys, monkeypatch):
    lines = render(capsys, monkeypatch, 100).splitlines()
    separators = [line for line in lines if line.startswith("├")]
    assert len(separators) == len(list_methods()) - 1


def test_square_brackets_printed_literally(capsys, monkeypatch, private_registry):
    registry.register_method(BracketMethod)
    output = render(capsys, monkeypatch, 1000)
    assert "Doe, 2020: A [bold] Title" in output
    assert hyperparameter_line(BracketMethod.hyperparameters[0]).search(output)


def test_method_without_hyperparameters(capsys, monkeypatch, private_registry):
    registry.register_method(PlainMethod)
    lines = render(capsys, monkeypatch, 100).splitlines()
    row = next(index for index, line in enumerate(lines) if line.startswith("│ plain-test "))
    assert "Roe, 2021: No Options" in lines[row]
    assert "no hyper-parameters" in lines[row + 1]


def test_plugin_methods_listed(capsys, monkeypatch, private_registry, tmp_path):
    plugin = tmp_path / "listed_plugin.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from mtbench.methods import Hyperparameter, Method, register_method

            @register_method
            class Listed(Method):
                name = "listed-plugin"
                title = "Poe, 2022: A Plugin Method"
                hyperparameters = (Hyperparameter("strength", float, 2.0, "penalty weight (dimensionless)"),)
            """
        )
    )
    output = render(capsys, monkeypatch, 1000, "--plugin", str(plugin))
    assert "│ listed-plugin " in output
    assert "Poe, 2022: A Plugin Method" in output
    assert re.search(r"strength = 2\.0 \(float\) {2,}penalty weight \(dimensionless\)", output)
