"""Call a component's ``python_func`` directly: the parameters a test leaves out get the default of the settings
field that declares them (components have no defaults of their own; the pipeline passes every parameter)."""

import inspect

from videogen import runs


def component_defaults(component) -> dict:
    """Every settings-declared parameter of ``component`` with its settings default."""
    values = {}
    for name in inspect.signature(component.python_func).parameters:
        try:
            _, field = runs.parameter_field(name)
        except LookupError:  # artifacts and run_id come from the pipeline, not from settings
            continue
        values[name] = field.default
    return values


def call_component(component, **given):
    return component.python_func(**{**component_defaults(component), **given})
