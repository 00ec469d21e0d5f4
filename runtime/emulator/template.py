"""SAM and CloudFormation templates: every function of a template as emulator settings.

:func:`load_template` reads a template (YAML with the short-form tags ``!Ref``, ``!Sub``,
``!GetAtt``, ``!If``, ... or JSON), merges ``Globals.Function`` into each
``AWS::Serverless::Function`` and resolves, for every ``AWS::Serverless::Function`` and
``AWS::Lambda::Function``, what running it locally needs: handler, code folder, timeout, memory,
environment variables, the local layers it uses, its name and its HTTP events. Only those
properties are resolved, so an unresolvable value elsewhere (a ``Role``, ``Policies``) does not
matter; one in a property that is used is a :class:`TemplateError` naming the resource, the
property path and why, never a guess.

Intrinsic functions resolved: ``Ref`` (parameters, pseudo parameters, functions and layers of
the template), ``Fn::Sub`` (both forms), ``Fn::GetAtt`` (``Arn`` of functions), ``Fn::If`` with
``Conditions`` made of ``Fn::Equals``/``Fn::Not``/``Fn::And``/``Fn::Or``/``Condition``, and
``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``; ``AWS::NoValue`` drops the
value. Anything else names what it met.
"""

from __future__ import annotations

import difflib
import functools
import platform
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from .config import DEFAULT_ACCOUNT, ConfigError

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
FUNCTION_TYPES = (SERVERLESS_FUNCTION, LAMBDA_FUNCTION)
LAYER_TYPES = (SERVERLESS_LAYER, LAMBDA_LAYER)

# Lambda's defaults for properties a template leaves out.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128


class TemplateError(ConfigError):
    """The template cannot be served as written; the message names where and why."""


class _NoValue:
    """``AWS::NoValue``: the property (or list item) holding it is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# ---------------------------------------------------------------------- reading


def _tag_constructor(name: str) -> Callable[[Any, Any], dict[str, Any]]:
    import yaml

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                # !GetAtt Resource.Attribute
                resource, _, attribute = str(value).partition(".")
                value = [resource, attribute]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


_SHORT_FUNCTIONS = (
    "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Join", "Select", "Split", "FindInMap",
    "ImportValue", "GetAZs", "Base64", "Cidr", "Transform", "Length", "ToJsonString",
)  # fmt: skip


@functools.cache
def _loader() -> type[Any]:
    """A SafeLoader that turns CloudFormation's short-form tags (``!Ref``, ``!Sub``, ...) into
    their long form. PyYAML is imported only when a template is read."""
    try:
        import yaml
    except ImportError:
        raise TemplateError(
            "--template needs PyYAML to read templates: pip install pyyaml"
        ) from None

    class Loader(yaml.SafeLoader):
        pass

    tags = {"Ref": "Ref", "Condition": "Condition"}
    tags.update((short, f"Fn::{short}") for short in _SHORT_FUNCTIONS)
    for short, long in tags.items():
        Loader.add_constructor(f"!{short}", _tag_constructor(long))
    return Loader


def read_template(path: Path) -> dict[str, Any]:
    """The template as plain data (short-form tags as their ``Fn::`` mappings)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"--template: cannot read {path}: {exc.strerror}") from None
    loader = _loader()
    import yaml

    try:
        # JSON is YAML, so one parser reads both.
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise TemplateError(f"--template: {path} is neither valid YAML nor JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"--template: {path} has no Resources section")
    return data


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class HttpEvent:
    """An ``HttpApi`` or ``Api`` event of a function (what routes.py matches requests to)."""

    function: str  # the function's logical id
    name: str  # the event's name under Events
    kind: str  # "HttpApi" or "Api"
    method: str  # upper case, "ANY" for any
    path: str | None  # None: the HttpApi's $default route
    api_id: str | None  # logical id of the API resource; None: the implicit API
    payload_format: str  # "2.0" or "1.0"


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the template, resolved."""

    logical_id: str
    function_name: str
    handler: str
    code_uri: Path
    runtime: str | None
    timeout: int
    memory: int
    environment: Mapping[str, str]
    layers: tuple[Path, ...]
    architectures: tuple[str, ...]
    description: str
    events: tuple[HttpEvent, ...] = ()
    # FunctionUrlConfig, resolved (AuthType, Cors, InvokeMode), or None.
    function_url: Mapping[str, Any] | None = None
    # Environment variables whose value only exists once deployed: the user must give them.
    unresolved_env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Template:
    path: Path
    region: str
    functions: list[FunctionSpec]
    # Functions that cannot be served here, with the reason (images, other runtimes).
    unsupported: dict[str, str]
    # Things worth saying at start (architecture, runtime version).
    notes: list[str]
    # HTTP API / REST API resources by logical id: their resolved properties of interest.
    apis: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Globals.HttpApi / Globals.Api, resolved (Cors settings of the implicit APIs).
    api_globals: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    # Folders holding inline code (InlineCode, Code.ZipFile): removed with the Template.
    temp_dirs: list[tempfile.TemporaryDirectory[str]] = field(default_factory=list, repr=False)

    def function(self, name: str) -> FunctionSpec | None:
        for spec in self.functions:
            if name in (spec.logical_id, spec.function_name):
                return spec
        return None


# ---------------------------------------------------------------------- resolving


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def host_architecture() -> str:
    machine = platform.machine().lower()
    return "arm64" if machine in ("arm64", "aarch64") else "x86_64"


class _Unresolvable(Exception):
    """Raised inside resolution; turned into a TemplateError with the property path."""

    def __init__(self, message: str, *, env_hint: bool = False) -> None:
        super().__init__(message)
        self.env_hint = env_hint


class _Resolver:
    def __init__(
        self,
        data: Mapping[str, Any],
        path: Path,
        overrides: Mapping[str, str],
        region: str,
    ) -> None:
        self.path = path
        self.region = region
        self.resources: dict[str, Any] = data["Resources"]
        self.mappings: Mapping[str, Any] = data.get("Mappings") or {}
        self.condition_defs: Mapping[str, Any] = data.get("Conditions") or {}
        self.conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        # Functions whose name is being resolved (a name made from its own ARN is a loop).
        self._naming: set[str] = set()
        self.parameter_defs: Mapping[str, Any] = data.get("Parameters") or {}
        for key in overrides:
            if key not in self.parameter_defs:
                close = difflib.get_close_matches(key, list(self.parameter_defs), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise TemplateError(
                    f"--parameter-overrides: {key!r} is not a parameter of {path.name}{hint}"
                )
        self.overrides = overrides
        self.stack_name = "local"

    # -- names

    def function_name(self, logical_id: str) -> str:
        """The function's name: its FunctionName, else (as SAM CLI does locally) its id."""
        props = self.resources[logical_id].get("Properties") or {}
        if "FunctionName" not in props:
            return logical_id
        if logical_id in self._naming:
            raise _Unresolvable(f"the FunctionName of {logical_id} depends on itself")
        self._naming.add(logical_id)
        try:
            name = self.value(props["FunctionName"])
        finally:
            self._naming.discard(logical_id)
        if isinstance(name, str) and name:
            return name
        raise _Unresolvable(f"FunctionName resolves to {name!r}, not a name")

    def function_arn(self, logical_id: str) -> str:
        name = self.function_name(logical_id)
        return f"arn:aws:lambda:{self.region}:{DEFAULT_ACCOUNT}:function:{name}"

    # -- parameters and conditions

    def parameter(self, name: str) -> Any:
        spec = self.parameter_defs[name] or {}
        if name in self.overrides:
            raw: Any = self.overrides[name]
            source = "--parameter-overrides"
        elif "Default" in spec:
            raw = spec["Default"]
            source = "its Default"
        else:
            raise _Unresolvable(
                f"parameter {name} has no Default; give it a value with "
                f"--parameter-overrides {name}=VALUE"
            )
        kind = str(spec.get("Type", "String"))
        text = _scalar_text(raw) if not isinstance(raw, list) else ",".join(map(str, raw))
        allowed = spec.get("AllowedValues")
        if allowed and kind in ("String", "Number") and text not in map(_scalar_text, allowed):
            raise _Unresolvable(
                f"parameter {name} = {text!r} (from {source}) is not one of its AllowedValues "
                f"{[_scalar_text(v) for v in allowed]}"
            )
        if kind.startswith("AWS::SSM::Parameter::Value") and name not in self.overrides:
            raise _Unresolvable(
                f"parameter {name} is read from SSM Parameter Store ({kind}) once deployed; "
                f"give its value with --parameter-overrides {name}=VALUE"
            )
        if kind == "Number":
            try:
                float(text)
            except ValueError:
                raise _Unresolvable(f"parameter {name} = {text!r} is not a Number") from None
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            return [part.strip() for part in text.split(",")] if text else []
        return text

    def condition(self, name: str) -> bool:
        if name in self.conditions:
            return self.conditions[name]
        if name not in self.condition_defs:
            raise _Unresolvable(f"condition {name!r} is not defined under Conditions")
        if name in self._evaluating:
            raise _Unresolvable(f"condition {name!r} refers to itself")
        self._evaluating.add(name)
        try:
            value = self._truth(self.condition_defs[name], f"condition {name}")
        finally:
            self._evaluating.discard(name)
        self.conditions[name] = value
        return value

    def _truth(self, node: Any, where: str) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals":
                if not isinstance(arg, list) or len(arg) != 2:
                    raise _Unresolvable(f"{where}: Fn::Equals takes two values")
                left, right = (self.value(item) for item in arg)
                return _scalar_text(left) == _scalar_text(right)
            if key == "Fn::Not":
                items = arg if isinstance(arg, list) else [arg]
                if len(items) != 1:
                    raise _Unresolvable(f"{where}: Fn::Not takes one condition")
                return not self._truth(items[0], where)
            if key in ("Fn::And", "Fn::Or"):
                if not isinstance(arg, list) or not 2 <= len(arg) <= 10:
                    raise _Unresolvable(f"{where}: {key} takes 2 to 10 conditions")
                values = [self._truth(item, where) for item in arg]
                return all(values) if key == "Fn::And" else any(values)
        if isinstance(node, bool):
            return node
        raise _Unresolvable(f"{where}: {node!r} is not a condition (Fn::Equals, Fn::Not, ...)")

    # -- values

    def value(self, node: Any) -> Any:
        """``node`` with every intrinsic function replaced by its value."""
        if isinstance(node, dict):
            if len(node) == 1:
                ((key, arg),) = node.items()
                if key == "Ref":
                    return self.ref(arg)
                if key == "Condition" and isinstance(arg, str):
                    return self.condition(arg)
                if key.startswith("Fn::"):
                    return self.function(key, arg)
            result = {}
            for key, item in node.items():
                resolved = self.value(item)
                if resolved is not NO_VALUE:
                    result[key] = resolved
            return result
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        return node

    def ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise _Unresolvable(f"Ref takes a name, not {name!r}")
        pseudo = self.pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.parameter_defs:
            return self.parameter(name)
        resource = self.resources.get(name)
        if resource is None:
            raise _Unresolvable(f"Ref to {name!r}: no parameter or resource has that name")
        kind = resource.get("Type")
        if kind in FUNCTION_TYPES:
            return self.function_name(name)
        if kind in LAYER_TYPES:
            return _LayerRef(name)
        raise _Unresolvable(
            f"Ref to {name} ({kind}): its physical id only exists once deployed",
            env_hint=True,
        )

    def pseudo(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::Region": self.region,
            "AWS::AccountId": DEFAULT_ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{DEFAULT_ACCOUNT}:stack/"
            f"{self.stack_name}/00000000-0000-0000-0000-000000000000",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        return values.get(name)

    def function(self, key: str, arg: Any) -> Any:
        if key == "Fn::Sub":
            return self.sub(arg)
        if key == "Fn::GetAtt":
            return self.get_att(arg)
        if key == "Fn::If":
            if not isinstance(arg, list) or len(arg) != 3 or not isinstance(arg[0], str):
                raise _Unresolvable("Fn::If takes [condition name, value if true, value if false]")
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Join":
            if not isinstance(arg, list) or len(arg) != 2:
                raise _Unresolvable("Fn::Join takes [delimiter, list]")
            items = self.value(arg[1])
            if not isinstance(items, list):
                raise _Unresolvable(f"Fn::Join: {items!r} is not a list")
            return str(self.value(arg[0])).join(_scalar_text(i) for i in items)
        if key == "Fn::Select":
            if not isinstance(arg, list) or len(arg) != 2:
                raise _Unresolvable("Fn::Select takes [index, list]")
            index, items = self.value(arg[0]), self.value(arg[1])
            try:
                return items[int(index)]
            except (ValueError, TypeError, IndexError):
                raise _Unresolvable(f"Fn::Select: no item {index!r} in {items!r}") from None
        if key == "Fn::Split":
            if not isinstance(arg, list) or len(arg) != 2:
                raise _Unresolvable("Fn::Split takes [delimiter, string]")
            return str(self.value(arg[1])).split(str(self.value(arg[0])))
        if key == "Fn::FindInMap":
            if not isinstance(arg, list) or len(arg) not in (3, 4):
                raise _Unresolvable("Fn::FindInMap takes [map, top key, second key]")
            keys = [_scalar_text(self.value(item)) for item in arg[:3]]
            try:
                return self.value(self.mappings[keys[0]][keys[1]][keys[2]])
            except (KeyError, TypeError):
                raise _Unresolvable(f"Fn::FindInMap: Mappings has no {'.'.join(keys)}") from None
        if key == "Fn::ImportValue":
            raise _Unresolvable(
                "Fn::ImportValue reads another stack's output, which only exists once deployed",
                env_hint=True,
            )
        raise _Unresolvable(f"{key} is not resolved by the emulator", env_hint=True)

    def get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not isinstance(arg, list) or len(arg) != 2:
            raise _Unresolvable(f"Fn::GetAtt takes [resource, attribute], not {arg!r}")
        logical_id, attribute = str(arg[0]), str(self.value(arg[1]))
        resource = self.resources.get(logical_id)
        if resource is None:
            raise _Unresolvable(f"Fn::GetAtt: no resource {logical_id!r}")
        kind = resource.get("Type")
        if kind in FUNCTION_TYPES and attribute == "Arn":
            return self.function_arn(logical_id)
        raise _Unresolvable(
            f"Fn::GetAtt {logical_id}.{attribute} ({kind}): only the Arn of the template's "
            "functions is known locally",
            env_hint=True,
        )

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            if len(arg) != 2 or not isinstance(arg[0], str) or not isinstance(arg[1], dict):
                raise _Unresolvable("Fn::Sub takes a string or [string, {name: value}]")
            text, variables = arg[0], arg[1]
        elif isinstance(arg, str):
            text, variables = arg, {}
        else:
            raise _Unresolvable(f"Fn::Sub takes a string, not {arg!r}")

        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                # ${!Literal} is the text ${Literal}.
                return "${" + inner[1:] + "}"
            name = inner.strip()
            if name in variables:
                value = self.value(variables[name])
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.get_att(name.split(".", 1))
            else:
                value = self.ref(name)
            if isinstance(value, (list, dict, _LayerRef)) or value is NO_VALUE:
                raise _Unresolvable(f"Fn::Sub: ${{{name}}} is not a string ({value!r})")
            return _scalar_text(value)

        return re.sub(r"\$\{([^}]*)\}", replace, text)


@dataclass(frozen=True)
class _LayerRef:
    """What ``Ref`` to a layer of the template gives: resolved to its folder by Layers."""

    logical_id: str


# ---------------------------------------------------------------------- functions


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: the function's scalars win, maps merge (recursively), lists add up
    (global items first). An intrinsic function counts as a scalar."""
    merged: dict[str, Any] = dict(global_props)
    for key, value in props.items():
        base = merged.get(key)
        if _is_plain_map(base) and _is_plain_map(value):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = [*base, *value]
        else:
            merged[key] = value
    return merged


def _is_plain_map(value: Any) -> TypeGuard[dict[str, Any]]:
    if not isinstance(value, dict):
        return False
    if len(value) == 1:
        (key,) = value
        return not (key == "Ref" or key == "Condition" or key.startswith("Fn::"))
    return True


_PROPERTY_PATH = "Resources.{id}.Properties.{prop}"


class _Builder:
    def __init__(self, resolver: _Resolver, data: Mapping[str, Any]) -> None:
        self.r = resolver
        self.base = resolver.path.parent
        globals_ = data.get("Globals") or {}
        self.function_globals: Mapping[str, Any] = globals_.get("Function") or {}
        self.globals = globals_
        self.inline_dirs: list[tempfile.TemporaryDirectory[str]] = []

    def fail(self, logical_id: str, prop: str, exc: _Unresolvable) -> TemplateError:
        where = (
            _PROPERTY_PATH.format(id=logical_id, prop=prop) if prop else f"Resources.{logical_id}"
        )
        return TemplateError(f"{self.r.path.name}: {where}: {exc}")

    def prop(self, logical_id: str, props: Mapping[str, Any], name: str, default: Any) -> Any:
        if name not in props:
            return default
        try:
            value = self.r.value(props[name])
        except _Unresolvable as exc:
            raise self.fail(logical_id, name, exc) from None
        return default if value is NO_VALUE else value

    def included(self, logical_id: str, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        if condition is None:
            return True
        try:
            return self.r.condition(str(condition))
        except _Unresolvable as exc:
            raise self.fail(logical_id, "", exc) from None

    def folder(self, logical_id: str, prop: str, value: Any, what: str) -> Path:
        if isinstance(value, dict) or (isinstance(value, str) and value.startswith("s3://")):
            raise self.fail(
                logical_id,
                prop,
                _Unresolvable(
                    f"{what} in S3 ({value!r}) cannot be run locally; point {prop} at a folder"
                ),
            )
        if not isinstance(value, str) or not value:
            raise self.fail(logical_id, prop, _Unresolvable(f"{value!r} is not a folder path"))
        folder = (self.base / value).resolve()
        if folder.suffix.lower() == ".zip" and folder.is_file():
            return folder
        if not folder.is_dir():
            raise self.fail(logical_id, prop, _Unresolvable(f"{folder} is not a folder"))
        return folder

    def inline_code(self, code: str) -> Path:
        # Lambda stores inline Python code as index.py (so handlers read index.handler).
        temp = tempfile.TemporaryDirectory(prefix="lambda-emulator-inline-")
        self.inline_dirs.append(temp)
        Path(temp.name, "index.py").write_text(code, encoding="utf-8")
        return Path(temp.name)

    def layer(self, logical_id: str, index: int, item: Any) -> Path:
        prop = f"Layers[{index}]"
        if isinstance(item, _LayerRef):
            layer = self.r.resources[item.logical_id]
            props = layer.get("Properties") or {}
            key = "ContentUri" if layer.get("Type") == SERVERLESS_LAYER else "Content"
            if key not in props:
                raise self.fail(item.logical_id, key, _Unresolvable("missing"))
            value = self.prop(item.logical_id, props, key, None)
            return self.folder(item.logical_id, key, value, "layer content")
        raise self.fail(
            logical_id,
            prop,
            _Unresolvable(
                f"{item!r} is not a layer of this template: the emulator runs only local "
                f"layers ({SERVERLESS_LAYER} with ContentUri); download a published layer "
                "into a folder and declare it as one"
            ),
        )

    def function(self, logical_id: str, resource: Mapping[str, Any]) -> FunctionSpec | str:
        """The function's spec, or the reason it cannot be served here."""
        kind = resource["Type"]
        props: Mapping[str, Any] = resource.get("Properties") or {}
        if kind == SERVERLESS_FUNCTION:
            props = _merge_globals(self.function_globals, props)
        try:
            name = self.r.function_name(logical_id)
        except _Unresolvable as exc:
            raise self.fail(logical_id, "FunctionName", exc) from None
        package_type = self.prop(logical_id, props, "PackageType", "Zip")
        if package_type == "Image":
            return (
                "PackageType Image is not supported by this emulator (it runs zip functions "
                "with a Python runtime; run an image with its own Runtime Interface Emulator)"
            )
        runtime = self.prop(logical_id, props, "Runtime", None)
        if runtime is not None and not str(runtime).startswith("python"):
            return f"Runtime {runtime} is not supported by this emulator (Python runtimes only)"
        handler = self.prop(logical_id, props, "Handler", None)
        if not isinstance(handler, str) or not handler:
            raise self.fail(logical_id, "Handler", _Unresolvable("a handler is required"))
        if kind == SERVERLESS_FUNCTION:
            if "InlineCode" in props:
                code = self.inline_code(str(self.prop(logical_id, props, "InlineCode", "")))
            else:
                code_uri = self.prop(logical_id, props, "CodeUri", None)
                if code_uri is None:
                    raise self.fail(
                        logical_id, "CodeUri", _Unresolvable("a code folder is required")
                    )
                code = self.folder(logical_id, "CodeUri", code_uri, "code")
        else:
            code_value = self.prop(logical_id, props, "Code", None)
            if isinstance(code_value, dict) and "ZipFile" in code_value:
                code = self.inline_code(str(code_value["ZipFile"]))
            else:
                code = self.folder(logical_id, "Code", code_value, "code")
        if code.is_file():
            raise self.fail(
                logical_id,
                "CodeUri" if kind == SERVERLESS_FUNCTION else "Code",
                _Unresolvable(f"{code} is a zip; the emulator runs a code folder (unzip it)"),
            )
        timeout = self._number(logical_id, props, "Timeout", DEFAULT_TIMEOUT, 1, 900)
        memory = self._number(logical_id, props, "MemorySize", DEFAULT_MEMORY, 128, 10240)
        environment, unresolved = self._environment(logical_id, props)
        layers_value = props.get("Layers") or []
        if not isinstance(layers_value, list):
            raise self.fail(logical_id, "Layers", _Unresolvable("Layers must be a list"))
        layers = []
        for index, item in enumerate(layers_value):
            try:
                resolved = self.r.value(item)
            except _Unresolvable as exc:
                raise self.fail(logical_id, f"Layers[{index}]", exc) from None
            if resolved is NO_VALUE:
                continue
            layers.append(self.layer(logical_id, index, resolved))
        architectures = self.prop(logical_id, props, "Architectures", ["x86_64"])
        if not isinstance(architectures, list) or not all(
            a in ("x86_64", "arm64") for a in architectures
        ):
            raise self.fail(
                logical_id, "Architectures", _Unresolvable(f"{architectures!r}: x86_64 or arm64")
            )
        description = self.prop(logical_id, props, "Description", "")
        function_url = None
        if kind == SERVERLESS_FUNCTION and "FunctionUrlConfig" in props:
            function_url = self.prop(logical_id, props, "FunctionUrlConfig", None)
        events = self._events(logical_id, props) if kind == SERVERLESS_FUNCTION else ()
        return FunctionSpec(
            logical_id=logical_id,
            function_name=name,
            handler=handler,
            code_uri=code,
            runtime=str(runtime) if runtime is not None else None,
            timeout=timeout,
            memory=memory,
            environment=environment,
            layers=tuple(layers),
            architectures=tuple(architectures),
            description=str(description),
            events=events,
            function_url=function_url,
            unresolved_env=unresolved,
        )

    def _number(
        self,
        logical_id: str,
        props: Mapping[str, Any],
        name: str,
        default: int,
        low: int,
        high: int,
    ) -> int:
        value = self.prop(logical_id, props, name, default)
        try:
            number = int(str(value))
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise self.fail(
                logical_id, name, _Unresolvable(f"{value!r} is not a whole number {low}-{high}")
            )
        return number

    def _environment(
        self, logical_id: str, props: Mapping[str, Any]
    ) -> tuple[dict[str, str], dict[str, str]]:
        env_prop = props.get("Environment")
        if env_prop is None:
            return {}, {}
        try:
            env_map = self.r.value(env_prop)
        except _Unresolvable:
            env_map = None
        if env_map is None:
            # Resolve variable by variable, to say which ones need a value.
            env_map = env_prop
        variables = env_map.get("Variables") if isinstance(env_map, dict) else None
        if variables is None:
            return {}, {}
        if not isinstance(variables, dict):
            raise self.fail(
                logical_id, "Environment.Variables", _Unresolvable("Variables must be a map")
            )
        result: dict[str, str] = {}
        unresolved: dict[str, str] = {}
        for key, raw in variables.items():
            prop = f"Environment.Variables.{key}"
            try:
                value = self.r.value(raw)
            except _Unresolvable as exc:
                if exc.env_hint:
                    # Only known once deployed: --env can give it (checked by the caller).
                    unresolved[key] = str(self.fail(logical_id, prop, exc))
                    continue
                raise self.fail(logical_id, prop, exc) from None
            if value is NO_VALUE:
                continue
            if isinstance(value, (dict, list, _LayerRef)) or value is None:
                raise self.fail(logical_id, prop, _Unresolvable(f"{value!r} is not a string value"))
            result[str(key)] = _scalar_text(value)
        return result, unresolved

    def _events(self, logical_id: str, props: Mapping[str, Any]) -> tuple[HttpEvent, ...]:
        events = props.get("Events") or {}
        result = []
        for name, event in events.items():
            if not isinstance(event, dict) or event.get("Type") not in ("HttpApi", "Api"):
                continue
            kind = event["Type"]
            where = f"Events.{name}.Properties"
            raw_props = event.get("Properties") or {}
            # The API id is a Ref to the API resource, kept as its logical id (not resolved).
            resolvable = {k: v for k, v in raw_props.items() if k not in ("ApiId", "RestApiId")}
            try:
                eprops = self.r.value(resolvable)
            except _Unresolvable as exc:
                raise self.fail(logical_id, where, exc) from None
            api_key = "ApiId" if kind == "HttpApi" else "RestApiId"
            api_ref = raw_props.get(api_key)
            api_id = None
            if api_ref is not None:
                if isinstance(api_ref, dict) and isinstance(api_ref.get("Ref"), str):
                    api_id = api_ref["Ref"]
                else:
                    raise self.fail(
                        logical_id,
                        f"{where}.{api_key}",
                        _Unresolvable("must be a Ref to an API resource of this template"),
                    )
            path = eprops.get("Path")
            method = str(eprops.get("Method", "ANY" if kind == "HttpApi" else "")).upper()
            if kind == "Api" and (not path or not method):
                raise self.fail(
                    logical_id, where, _Unresolvable("an Api event needs Path and Method")
                )
            if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" or method == "*":
                method = "ANY"
            default_format = "2.0" if kind == "HttpApi" else "1.0"
            payload_format = str(eprops.get("PayloadFormatVersion", default_format))
            if kind == "HttpApi" and path is None:
                method = "ANY"  # the $default route takes every method
            result.append(
                HttpEvent(
                    function=logical_id,
                    name=str(name),
                    kind=kind,
                    method=method,
                    path=str(path) if path is not None else None,
                    api_id=api_id,
                    payload_format=payload_format,
                )
            )
        return tuple(result)

    def apis(self) -> dict[str, Mapping[str, Any]]:
        result: dict[str, Mapping[str, Any]] = {}
        for logical_id, resource in self.r.resources.items():
            kind = resource.get("Type")
            if kind not in ("AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
                continue
            if not self.included(logical_id, resource):
                continue
            props = resource.get("Properties") or {}
            globals_key = "HttpApi" if kind == "AWS::Serverless::HttpApi" else "Api"
            props = _merge_globals(self.globals.get(globals_key) or {}, props)
            keep = {"Type": kind}
            for name in ("CorsConfiguration", "Cors", "StageName", "StageVariables"):
                value = self.prop(logical_id, props, name, None)
                if value is not None:
                    keep[name] = value
            result[logical_id] = keep
        return result

    def api_globals(self) -> dict[str, Mapping[str, Any]]:
        result: dict[str, Mapping[str, Any]] = {}
        for key in ("HttpApi", "Api"):
            props = self.globals.get(key) or {}
            try:
                result[key] = self.r.value(props)
            except _Unresolvable as exc:
                raise TemplateError(f"{self.r.path.name}: Globals.{key}: {exc}") from None
        return result


def load_template(
    path: Path | str,
    *,
    parameter_overrides: Mapping[str, str] | None = None,
    region: str = "us-east-1",
    env_overrides: Mapping[str, str] | None = None,
) -> Template:
    """Read and resolve ``path``. ``env_overrides`` (the emulator's ``--env``) may give the
    environment variables whose template value only exists once deployed."""
    path = Path(path).resolve()
    data = read_template(path)
    resolver = _Resolver(data, path, parameter_overrides or {}, region)
    builder = _Builder(resolver, data)
    functions: list[FunctionSpec] = []
    unsupported: dict[str, str] = {}
    notes: list[str] = []
    host_arch = host_architecture()
    given = env_overrides or {}
    host_python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    other_versions: dict[str, list[str]] = {}
    for logical_id, resource in resolver.resources.items():
        if not isinstance(resource, dict):
            raise TemplateError(f"{path.name}: Resources.{logical_id} is not a resource")
        if resource.get("Type") not in FUNCTION_TYPES:
            continue
        if not builder.included(logical_id, resource):
            continue
        spec = builder.function(logical_id, resource)
        if isinstance(spec, str):
            unsupported[logical_id] = spec
            continue
        missing = [message for key, message in spec.unresolved_env.items() if key not in given]
        if missing:
            key = next(k for k in spec.unresolved_env if k not in given)
            raise TemplateError(
                f"{missing[0]}; give {key} its local value with --env {key}=VALUE "
                "(or an --env-file)"
            )
        functions.append(spec)
        if host_arch not in spec.architectures:
            notes.append(
                f"{logical_id}: Architectures {', '.join(spec.architectures)} but this host is "
                f"{host_arch}: it runs on the host's architecture, so native packages built "
                f"for {spec.architectures[0]} will not load here"
            )
        if spec.runtime is not None and spec.runtime != host_python:
            other_versions.setdefault(spec.runtime, []).append(logical_id)
    for runtime, ids in other_versions.items():
        notes.append(
            f"{', '.join(ids)}: Runtime {runtime}, run with this host's {host_python} (the "
            "emulator runs functions with the Python it runs on)"
        )
    names: dict[str, str] = {}
    for spec in functions:
        for name in {spec.logical_id, spec.function_name}:
            other = names.get(name)
            if other is not None and other != spec.logical_id:
                raise TemplateError(
                    f"{path.name}: {spec.logical_id} and {other} are both called {name!r}"
                )
            names[name] = spec.logical_id
    if not functions:
        detail = "; ".join(f"{k}: {v}" for k, v in unsupported.items())
        raise TemplateError(
            f"--template: {path.name} has no function the emulator can serve"
            + (f" ({detail})" if detail else "")
        )
    template = Template(path, region, functions, unsupported, notes)
    template.apis = builder.apis()
    template.api_globals = builder.api_globals()
    template.temp_dirs = builder.inline_dirs
    return template
