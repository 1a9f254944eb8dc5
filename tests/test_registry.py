import sys
import textwrap

import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods import Method, get_method, list_methods, load_plugin, register_method
from mtbench.methods import registry


def test_builtin_methods_registered():
    assert {"equal", "single", "cosreg"} <= set(list_methods())
    assert list_methods("cos*") == ["cosreg"]


def test_unknown_method_names_value_and_fix():
    with pytest.raises(MtbenchError, match="Unknown method 'nope'.*--plugin"):
        get_method("nope")


def test_plugin_file_registers_method(tmp_path):
    plugin = tmp_path / "halfweights.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import torch
            from mtbench.methods import Method, register_method

            @register_method
            class HalfWeights(Method):
                name = "half-weights-test"
                title = "Every task weighted 0.5"

                def loss(self, context):
                    return 0.5 * torch.stack(list(context.task_losses.values())).sum(), {}
            """
        )
    )
    load_plugin(plugin)
    method = get_method("half-weights-test")(["a", "b"])
    assert method.config() == {}
    registry._METHODS.pop("half-weights-test")


def test_plugin_loaded_twice_registers_again(tmp_path):
    plugin = tmp_path / "twice.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from mtbench.methods import Method, register_method

            @register_method
            class Twice(Method):
                name = "twice-test"
            """
        )
    )
    load_plugin(plugin)
    load_plugin(plugin)
    assert get_method("twice-test").__qualname__ == "Twice"
    registry._METHODS.pop("twice-test")


def test_plugin_forgetting_decorator(tmp_path):
    plugin = tmp_path / "forgot.py"
    plugin.write_text("from mtbench.methods import Method\n\nclass Forgot(Method):\n    name = 'forgot-test'\n")
    with pytest.raises(MtbenchError, match=r"forgot\.py defines Forgot but registered no method. Decorate the class with @register_method"):
        load_plugin(plugin)
    assert "forgot-test" not in list_methods()
    assert not any(name.startswith("mtbench_plugin_forgot_") for name in sys.modules)


def test_plugin_subclassing_builtin_without_decorator(tmp_path):
    plugin = tmp_path / "halfequal.py"
    plugin.write_text("from mtbench.methods.equal import EqualWeights\n\nclass HalfEqual(EqualWeights):\n    name = 'half-equal-test'\n")
    with pytest.raises(MtbenchError, match="defines HalfEqual but registered no method"):
        load_plugin(plugin)


@pytest.mark.parametrize("source", ["", "from mtbench.methods.equal import EqualWeights\n"], ids=["empty", "imports-builtin"])
def test_plugin_registering_nothing(tmp_path, source):
    plugin = tmp_path / "nothing.py"
    plugin.write_text(source)
    with pytest.raises(MtbenchError, match=r"nothing\.py registered no method. Decorate its Method subclass"):
        load_plugin(plugin)


def test_plugin_importing_its_methods_loads_twice(tmp_path, monkeypatch):
    """The second load imports nothing new, because the module that registers the method is already imported."""
    (tmp_path / "helper_methods_test.py").write_text(
        "from mtbench.methods import Method, register_method\n\n@register_method\nclass Helper(Method):\n    name = 'helper-test'\n"
    )
    plugin = tmp_path / "via_module.py"
    plugin.write_text("import helper_methods_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    load_plugin(plugin)
    load_plugin(plugin)

    assert get_method("helper-test").__qualname__ == "Helper"
    registry._METHODS.pop("helper-test")
    sys.modules.pop("helper_methods_test")


def test_plugin_that_raises_gives_clear_error(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(MtbenchError, match=r"broken\.py failed to import: RuntimeError: boom"):
        load_plugin(plugin)
    assert "mtbench_plugin_broken" not in sys.modules


def test_missing_plugin_file(tmp_path):
    with pytest.raises(MtbenchError, match="Plugin file not found"):
        load_plugin(tmp_path / "absent.py")


def test_duplicate_name_rejected():
    class Impostor(Method):
        name = "equal"

    with pytest.raises(MtbenchError, match="already registered"):
        register_method(Impostor)


def test_register_rejects_non_method():
    with pytest.raises(MtbenchError, match="subclass"):
        register_method(torch.nn.Linear)


def test_entry_point_is_loaded(monkeypatch):
    class EntryPointMethod(Method):
        name = "entry-point-test"

    class FakeEntryPoint:
        name = "entry-point-test"
        value = "somepackage:EntryPointMethod"

        def load(self):
            return EntryPointMethod

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [FakeEntryPoint()])
    assert get_method("entry-point-test") is EntryPointMethod
    registry._METHODS.pop("entry-point-test")


def test_single_rejects_several_tasks():
    with pytest.raises(MtbenchError, match="one task per model"):
        get_method("single")(["left", "right"])


def test_plugin_cannot_replace_builtin(tmp_path):
    plugin = tmp_path / "hijack.py"
    plugin.write_text(
        "from mtbench.methods import Method, register_method\n"
        "@register_method\n"
        "class EqualWeights(Method):\n"
        "    name = 'equal'\n"
    )
    with pytest.raises(MtbenchError, match="'equal' is already registered by mtbench.methods.equal.EqualWeights"):
        load_plugin(plugin)
    assert get_method("equal").__module__ == "mtbench.methods.equal"


def test_plugin_syntax_error_names_line(tmp_path):
    plugin = tmp_path / "syntax.py"
    plugin.write_text("x = 1\ndef broken(:\n")
    with pytest.raises(MtbenchError, match=r"SyntaxError.*syntax\.py, line 2"):
        load_plugin(plugin)


def test_plugin_calling_exit_is_reported(tmp_path):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(0)\n")
    with pytest.raises(MtbenchError, match="exits.py failed to import: SystemExit"):
        load_plugin(plugin)
