"""A pipeline parameter is declared once, in a settings field (a stage's settings or `videogen.runs.RunSettings`), and
every other place agrees with it: the pipeline signature (name, type, default), the wiring (some task takes it), each
receiving component (passes it on to the library), `videogen run` (has the flag, same default) and the README's
Configuration table (a row for it). docs/design.md, "Adding a parameter", is the recipe this test checks.
"""

import collections
import dataclasses
import inspect
import re
import typing
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl

import components
from pipeline import cli
from pipeline.pipeline import build_pipeline
from tests.component_calls import component_defaults
from videogen import runs

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = build_pipeline()
SIGNATURE = inspect.signature(PIPELINE.pipeline_func).parameters
PARAMETERS = list(SIGNATURE)
COMPONENTS = {f"comp-{c.component_spec.name}": c for c in (getattr(components, n) for n in components.__all__)}
# What each stage module's component builds and calls; the stand-ins replace them to record what the component
# passes (module, settings class or None, stage function).
STAGES = (("dataset", "PrepareSettings", "prepare"), ("train", "TrainSettings", "train"),
          ("generate", "GenerateSettings", "generate"), ("evaluate", "EvaluateSettings", "evaluate"),
          ("encode", None, "encode"), ("sources", None, "clip_items"), ("trainjob", None, "train_on_nodes"),
          ("runs", None, "clip_scope"))


@pytest.fixture(scope="module")
def wiring(tmp_path_factory):
    """{pipeline parameter: [(component key, component input name)]} from the compiled pipeline's tasks, also those
    inside a ParallelFor (its sub-DAG's inputs traced back to the pipeline parameters)."""
    path = tmp_path_factory.mktemp("yaml") / "p.yaml"
    compiler.Compiler().compile(PIPELINE, package_path=str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    wired = collections.defaultdict(list)
    _collect_wiring(spec, spec["root"]["dag"], {name: name for name in PARAMETERS}, wired)
    return wired


def _collect_wiring(spec, dag, parameters, wired):
    """Add each task of ``dag`` that takes a pipeline parameter (``parameters``: the DAG's input name -> pipeline
    parameter) to ``wired``, as ("condition", input) where a ``dsl.If`` decides on it; descend into sub-DAGs
    (ParallelFor, If/Else). A component used twice (``comp-train-model-2``) counts as itself."""
    for task in dag["tasks"].values():
        ref = task["componentRef"]["name"]
        inputs = {name: parameters[value["componentInputParameter"]]
                  for name, value in task.get("inputs", {}).get("parameters", {}).items()
                  if value.get("componentInputParameter") in parameters}
        condition = task.get("triggerPolicy", {}).get("condition", "")
        for name, parameter in inputs.items():
            if f"parameter_values['{name}']" in condition:
                wired[parameter].append(("condition", name))
        if "dag" in spec["components"][ref]:
            _collect_wiring(spec, spec["components"][ref]["dag"], inputs, wired)
            continue
        for name, parameter in inputs.items():
            wired[parameter].append((ref if ref in COMPONENTS else re.sub(r"-\d+$", "", ref), name))


def _settings_type(settings_cls, name):
    return typing.get_type_hints(settings_cls)[name]


def _sentinel(name, kind, baseline):
    """A value of the parameter's type that no default has, recognisable where it lands."""
    if kind is bool:
        return not baseline
    return {int: 7919, float: 0.4375}.get(kind, f"sentinel-{name}")


def _artifacts(component, tmp_path):
    values = {}
    for name, param in inspect.signature(component.python_func).parameters.items():
        cls = typing.get_args(param.annotation)[0] if typing.get_args(param.annotation) else param.annotation
        if isinstance(cls, type) and issubclass(cls, dsl.Artifact):
            values[name] = cls(name=name, uri=str(tmp_path / name), metadata={})
    return values


class _Recorder:
    """Stand-ins for the library: settings classes and stage functions that record what they get."""

    def __init__(self):
        self.settings = []  # (settings class name, kwargs)
        self.calls = []  # (function name, args, kwargs)

    def settings_class(self, class_name):
        return lambda **kwargs: self.settings.append((class_name, kwargs)) or kwargs

    def function(self, name):
        def stand_in(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "encode":
                Path(args[1]).write_bytes(b"mp4")
            if name == "evaluate":
                for file_name in runs.REPORT_NAMES:
                    (Path(args[2]) / file_name).write_text("{}")
            return collections.defaultdict(int)
        return stand_in

    def reached(self, value) -> bool:
        text = str(value)
        return any(text in str(arg) for _, args, kwargs in self.calls for arg in (*args, *kwargs.values()))


def _call_with_stand_ins(component, name, value, tmp_path):
    """Call ``component`` with every input at its baseline and ``name`` at ``value``; return what the library got."""
    import videogen

    recorder = _Recorder()
    arguments = {**component_defaults(component), "video": "in.mp4", "videos": ["in.mp4"], "run_id": "run-1",
                 "output_root": str(tmp_path / "out"), "checkpoint_root": str(tmp_path / "ckpt"),
                 **_artifacts(component, tmp_path)}
    arguments = {key: arguments[key] for key in inspect.signature(component.python_func).parameters}
    arguments[name] = value
    with pytest.MonkeyPatch.context() as patch:
        for module_name, settings_name, function_name in STAGES:
            module = getattr(__import__(f"videogen.{module_name}"), module_name)
            if settings_name:
                patch.setattr(module, settings_name, recorder.settings_class(settings_name))
            patch.setattr(module, function_name, recorder.function(function_name))
        patch.setattr(videogen.storage, "put", recorder.function("put"))
        patch.setattr(videogen.storage, "fetch", recorder.function("fetch"))
        component.python_func(**arguments)
    recorder.artifact_metadata = {key: value for artifact in arguments.values() if isinstance(artifact, dsl.Artifact)
                                  for key, value in artifact.metadata.items()}
    return recorder


@pytest.fixture(scope="module")
def receivers(wiring, tmp_path_factory):
    """{pipeline parameter: [(component key, settings classes that got the sentinel, whether the library got it)]}."""
    found = collections.defaultdict(list)
    for parameter, targets in wiring.items():
        for component_key, input_name in targets:
            if component_key == "condition":  # it decides a branch: no component to pass it on
                continue
            component = COMPONENTS[component_key]
            kind = inspect.signature(component.python_func).parameters[input_name].annotation
            baseline = component_defaults(component).get(input_name)
            value = _sentinel(input_name, kind, baseline)
            recorder = _call_with_stand_ins(component, input_name, value, tmp_path_factory.mktemp(component_key))
            got = [cls for cls, kwargs in recorder.settings if input_name in kwargs and kwargs[input_name] == value]
            expected = [cls for cls, _ in recorder.settings
                        if input_name in {f.name for f in dataclasses.fields(_settings_class(cls))}]
            reached = recorder.reached(value)
            if "cache_key" in runs.parameter_field(parameter)[1].metadata:  # it only has to key KFP's cache: the
                reached = reached or recorder.artifact_metadata.get(input_name) == value  # library or artifact has it
            found[parameter].append((component_key, input_name, got, expected, reached))
    return found


def _settings_class(class_name):
    return next(cls for cls in runs.stage_settings_classes() if cls.__name__ == class_name)


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_parameter_is_a_settings_field_with_the_pipelines_type_and_default(name):
    try:
        settings_cls, field = runs.parameter_field(name)
    except LookupError as error:
        pytest.fail(f"pipeline parameter {name!r}: {error}: add the field to its stage's settings (or RunSettings)")
    param = SIGNATURE[name]
    assert param.annotation is _settings_type(settings_cls, name), (
        f"pipeline parameter {name!r} is {param.annotation.__name__}, {settings_cls.__name__}.{name} is "
        f"{_settings_type(settings_cls, name)}")
    settings_default = None if field.default is dataclasses.MISSING else field.default
    pipeline_default = None if param.default is inspect.Parameter.empty else param.default
    assert pipeline_default == settings_default, (
        f"pipeline parameter {name!r} defaults to {pipeline_default!r}, {settings_cls.__name__}.{name} to "
        f"{settings_default!r}")


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_parameter_reaches_a_component_that_passes_it_to_the_library(name, wiring, receivers):
    assert wiring.get(name), (f"pipeline parameter {name!r} is passed to no component: pass it in the pipeline "
                              f"call of the stage that uses it")
    for component_key, input_name, got, expected, reached in receivers[name]:
        assert got == expected and reached, (
            f"{component_key} takes {input_name!r} but does not pass it on to the library: put it in the settings "
            f"object the component builds (settings built: {expected or 'none'}; got the value: {got or 'none'})")
        for class_name in got:
            default = next(f.default for f in dataclasses.fields(_settings_class(class_name)) if f.name == input_name)
            if SIGNATURE[name].default is not inspect.Parameter.empty:
                assert default == SIGNATURE[name].default, (
                    f"{class_name}.{input_name} defaults to {default!r}, the pipeline to {SIGNATURE[name].default!r}")


@pytest.mark.parametrize("name", PARAMETERS)
def test_videogen_run_has_the_flag_with_the_settings_default(name):
    settings_cls, field = runs.parameter_field(name)
    flag = "--" + name.replace("_", "-")
    kind = _settings_type(settings_cls, name)
    value = _sentinel(name, kind, field.default)
    options = ([flag] if value else ["--no-" + name.replace("_", "-")]) if kind is bool else [flag, str(value)]
    video = [] if name == "video" else ["--video", "v.mp4"]
    parser = cli.build_parser()
    try:
        args = parser.parse_args(["run", *video, *options])
    except SystemExit:
        pytest.fail(f"`videogen run` has no {flag} flag")
    assert getattr(args, name) == value and cli._run_arguments(args)[name] == value, f"{flag} does not reach the run"
    if name != "video":
        default = getattr(parser.parse_args(["run", *video]), name)
        runner_fills_in = "local" in field.metadata or "runner" in field.metadata
        assert default == (None if runner_fills_in else field.default), f"{flag} default {default!r}"


def _readme_table_names():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in first_cells for name in re.findall(r"`([a-z_0-9]+)`", cell)}


@pytest.mark.parametrize("name", PARAMETERS)
def test_the_readme_configuration_table_has_a_row_for_the_parameter(name):
    assert name in _readme_table_names(), (
        f"README.md's Configuration table has no row for `{name}`: add `| `{name}` | default | meaning |`")


@pytest.mark.parametrize("key", sorted(COMPONENTS))
def test_components_carry_no_defaults_of_their_own(key):
    params = inspect.signature(COMPONENTS[key].python_func).parameters.values()
    with_default = [p.name for p in params if p.default is not inspect.Parameter.empty]
    assert not with_default, f"{key} has defaults for {with_default}: the settings field holds the default"
