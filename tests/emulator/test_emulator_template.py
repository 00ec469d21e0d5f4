"""Serving a SAM template: several functions, each with its own settings, reached by name,
logical id or ARN through boto3; the control-plane reads; errors that name what cannot be
resolved."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import httpx
import pytest
from botocore.exceptions import ClientError
from emulator_support import MARK, MARK_VAR

from runtime.emulator import ConfigError, Emulator
from runtime.emulator.template import TemplateError, load_template

APP = Path(__file__).parent / "template_app"
TEMPLATE = APP / "template.yaml"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


@pytest.fixture
def app(lambda_emulator: Callable[..., Emulator]) -> Callable[..., Emulator]:
    def start(**options: Any) -> Emulator:
        options.setdefault("template", TEMPLATE)
        options.setdefault("env", {MARK_VAR: MARK})
        return lambda_emulator(**options)

    return start


@pytest.fixture
def client() -> Iterator[Callable[[str], Any]]:
    made = []

    def make(url: str) -> Any:
        c = boto3.client(
            "lambda",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=30),
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
    gc.collect()


def _payload(response: dict[str, Any]) -> Any:
    import json

    return json.loads(response["Payload"].read())


# ---------------------------------------------------------------------- serving


def test_each_function_runs_with_its_own_settings(app: Callable[..., Emulator]) -> None:
    emu = app()
    assert emu.functions == ["hello-dev", "UsersFunction", "StreamFunction"]
    # Nothing starts before the first invoke, however many functions the template has.
    assert emu.stats()["started"] == 0

    hello = emu.function("HelloFunction").invoke({"name": "Ada"}).raise_for_error()
    assert hello.payload["message"] == "Hello, Ada!"
    assert hello.payload["function"] == "hello-dev"
    assert hello.payload["memory"] == "256"  # Globals.Function.MemorySize
    assert hello.payload["env"] == {
        "STAGE": "dev",
        "USERS_ARN": f"{ARN}UsersFunction",
        "SIZE": "small",
        "WHERE": "us-east-1/123456789012",
    }
    assert emu.stats("UsersFunction")["started"] == 0

    # The layer (shared_util) comes from the template's LayerVersion's ContentUri.
    users = emu.function("UsersFunction").invoke({"pathParameters": {"id": "ada"}})
    assert users.raise_for_error().payload == {"user": "ADA!", "function": "UsersFunction"}
    assert users.report is not None and users.report.memory_size_mb == 512
    assert emu.stats("hello-dev")["started"] == 1
    assert emu.stats()["started"] == 2


def test_console_lines_say_which_function(app: Callable[..., Emulator]) -> None:
    import io

    echo = io.BytesIO()
    emu = app(echo=echo)
    result = emu.function("UsersFunction").invoke({})
    assert "START RequestId" in result.log  # (the invoke's own log is not tagged)
    deadline = time.monotonic() + 5
    while b"[UsersFunction] REPORT" not in echo.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert f"[UsersFunction] START RequestId: {result.request_id}".encode() in echo.getvalue()
    assert b"[UsersFunction] REPORT" in echo.getvalue()


def test_python_api_needs_a_function_name_with_several(app: Callable[..., Emulator]) -> None:
    emu = app()
    with pytest.raises(RuntimeError, match=r"serves 3 functions .*emulator.function\(NAME\)"):
        emu.invoke({})
    with pytest.raises(KeyError, match=r"Function not found: .*Nope"):
        emu.function("Nope")


def test_boto3_invokes_by_name_logical_id_and_arn(
    app: Callable[..., Emulator], client: Callable[[str], Any]
) -> None:
    emu = app()
    lam = client(emu.url)
    for name in ("hello-dev", "HelloFunction", f"{ARN}hello-dev", "hello-dev:$LATEST"):
        body = _payload(lam.invoke(FunctionName=name, Payload=b'{"name": "Bob"}'))
        assert body["message"] == "Hello, Bob!", name
    # Both functions' environments are separate: one warm environment per function.
    _payload(lam.invoke(FunctionName="UsersFunction", Payload=b"{}"))
    assert emu.stats("HelloFunction")["environments"] == 1
    assert emu.stats("UsersFunction")["environments"] == 1
    with pytest.raises(ClientError) as info:
        lam.invoke(FunctionName="Missing", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert f"{ARN}Missing" in str(info.value)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        lam.invoke(FunctionName="arn:aws:lambda:eu-west-1:123456789012:function:hello-dev")


def test_concurrency_is_per_function(
    tmp_path: Path, lambda_emulator: Callable[..., Emulator]
) -> None:
    import threading

    from emulator_support import HANDLERS

    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            Globals:
              Function:
                CodeUri: {HANDLERS}
            Resources:
              Slow:
                Type: AWS::Serverless::Function
                Properties: {{Handler: app.sleep}}
              Echo:
                Type: AWS::Serverless::Function
                Properties: {{Handler: app.echo, Timeout: 9}}
            """
        )
    )
    emu = lambda_emulator(template=path, concurrency=1, env={MARK_VAR: MARK})
    slow = emu.function("Slow")
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(slow.invoke({"seconds": 1.0}).ok))
    worker.start()
    deadline = time.monotonic() + 5
    while emu.stats("Slow")["busy"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Slow's only slot is taken: Slow refuses a second invoke, Echo has its own.
    assert slow.invoke({"seconds": 0}).status_code == 429
    assert emu.function("Echo").invoke({"x": 1}).payload["event"] == {"x": 1}
    worker.join(timeout=10)
    assert done == [True]
    config = {fn.name: fn.config for fn in emu._core.functions}
    assert (config["Slow"].timeout, config["Echo"].timeout) == (3, 9)


def test_parameter_overrides_and_env(app: Callable[..., Emulator]) -> None:
    emu = app(
        parameter_overrides={"Stage": "prod", "Greeting": "Howdy"},
        env={MARK_VAR: MARK, "SIZE": "from-env"},
    )
    assert "hello-prod" in emu.functions
    result = emu.function("hello-prod").invoke({"name": "Cy"}).raise_for_error()
    assert result.payload["message"] == "Howdy, Cy!"
    # --env wins over the template: it is how local values are given.
    assert result.payload["env"]["SIZE"] == "from-env"
    assert result.payload["env"]["STAGE"] == "prod"


def test_parameter_overrides_pick_the_if_branch() -> None:
    template = load_template(TEMPLATE, parameter_overrides={"Stage": "prod"})
    spec = template.function("HelloFunction")
    assert spec is not None and spec.environment["SIZE"] == "large"


def test_registry_names_and_shutdown() -> None:
    from runtime.emulator.config import EmulatorConfig
    from runtime.emulator.functions import FunctionRegistry, ShuttingDown, function_configs

    base = EmulatorConfig(template=TEMPLATE)
    template = load_template(TEMPLATE)
    registry = FunctionRegistry(function_configs(base, template), region="us-east-1")
    hello = registry.get("hello-dev")
    assert hello is not None and registry.get("HelloFunction") is hello
    for ref in (
        "hello-dev",
        "HelloFunction",
        f"{ARN}hello-dev:$LATEST",
        "123456789012:function:hello-dev",
    ):
        assert registry.lookup(ref) is hello, ref
    assert registry.lookup("hello-dev", "v2") == f"Function not found: {ARN}hello-dev:v2"
    assert registry.lookup("arn:aws:s3:::bucket") == "Function not found: arn:aws:s3:::bucket"
    # Without a template there is no RIE alias for several functions.
    assert isinstance(registry.lookup("function"), str)
    made = []
    registry.bind(lambda fn: made.append(fn) or "scheduler")  # type: ignore[arg-type, func-returns-value]
    assert registry.scheduler(hello) == "scheduler"
    assert registry.close() == ["scheduler"]
    users = registry.get("UsersFunction")
    assert users is not None
    with pytest.raises(ShuttingDown):
        registry.scheduler(users)
    assert made == [hello]


# ---------------------------------------------------------------------- control plane


def test_control_plane_reads(app: Callable[..., Emulator], client: Callable[[str], Any]) -> None:
    emu = app()
    lam = client(emu.url)
    config = lam.get_function_configuration(FunctionName="HelloFunction")
    assert config["FunctionName"] == "hello-dev"
    assert config["FunctionArn"] == f"{ARN}hello-dev"
    assert config["Handler"] == "hello.handler"
    assert config["Runtime"] == "python3.12"
    assert (config["Timeout"], config["MemorySize"]) == (5, 256)
    assert config["Environment"]["Variables"]["GREETING"] == "Hello"
    assert config["Description"] == "says hello"
    assert config["State"] == "Active" and config["PackageType"] == "Zip"

    users = lam.get_function(FunctionName=f"{ARN}UsersFunction")
    assert users["Configuration"]["MemorySize"] == 512
    assert users["Configuration"]["Timeout"] == 10
    assert len(users["Configuration"]["Layers"]) == 1
    assert users["Code"]["Location"] == (APP / "src").as_uri()

    listed = lam.list_functions()
    assert [f["FunctionName"] for f in listed["Functions"]] == [
        "hello-dev",
        "UsersFunction",
        "StreamFunction",
    ]
    page = lam.list_functions(MaxItems=2)
    assert len(page["Functions"]) == 2
    rest = lam.list_functions(Marker=page["NextMarker"])
    assert [f["FunctionName"] for f in rest["Functions"]] == ["StreamFunction"]
    assert "NextMarker" not in rest

    with pytest.raises(ClientError) as info:
        lam.get_function(FunctionName="Nope")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Other reads are not emulated: they say so; a GET of an invoke path is still a 405.
    with httpx.Client(base_url=emu.url) as http:
        policy = http.get("/2015-03-31/functions/HelloFunction/policy")
        assert (policy.status_code, policy.headers["x-amzn-ErrorType"]) == (
            404,
            "UnknownOperationException",
        )
        assert http.get("/2015-03-31/functions/HelloFunction/invocations").status_code == 405
    # None of it started an environment.
    assert emu.stats()["started"] == 0


def test_control_plane_single_function(
    lambda_emulator: Callable[..., Emulator], client: Callable[[str], Any]
) -> None:
    emu = lambda_emulator(
        "hello.handler",
        task_root=APP / "src",
        function_name="solo",
        memory=1024,
        timeout=7,
        env={MARK_VAR: MARK, "GREETING": "Hi"},
    )
    lam = client(emu.url)
    config = lam.get_function_configuration(FunctionName="solo")
    assert (config["FunctionName"], config["MemorySize"], config["Timeout"]) == ("solo", 1024, 7)
    assert [f["FunctionName"] for f in lam.list_functions()["Functions"]] == ["solo"]
    assert lam.get_function(FunctionName="solo")["Configuration"]["Handler"] == "hello.handler"
    assert _payload(lam.invoke(FunctionName="solo"))["message"] == "Hi, World!"


# ---------------------------------------------------------------------- the command line


def test_serve_template_from_the_command_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "serve",
            "--template",
            str(TEMPLATE),
            "--port",
            str(port),
            "--parameter-overrides",
            "Stage=prod",
            "Greeting=Yo",
            "--env",
            f"{MARK_VAR}={MARK}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]
        assert "3 functions of template.yaml" in lines[0]
        assert "hello-prod (HelloFunction): hello.handler" in lines[1]
        c = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        body = _payload(c.invoke(FunctionName="HelloFunction", Payload=b'{"name": "Di"}'))
        assert body["message"] == "Yo, Di!"
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
        gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)


def test_parameter_overrides_flag_takes_sam_forms() -> None:
    from runtime.emulator.cli import _config, _parser

    args = _parser("serve").parse_args(
        [
            "--template",
            str(TEMPLATE),
            "--parameter-overrides",
            "Stage=prod",
            "Greeting='Good day'",
            "--parameter-overrides",
            "ParameterKey=Extra,ParameterValue=a=b",
        ]
    )
    config = _config(args)
    assert config.template == TEMPLATE
    assert config.parameter_overrides == {"Stage": "prod", "Greeting": "Good day", "Extra": "a=b"}


def test_cli_reports_template_errors(tmp_path: Path) -> None:
    bad = tmp_path / "template.yaml"
    bad.write_text(TEMPLATE.read_text())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "serve",
            "--template",
            str(bad),
            "--parameter-overrides",
            "Stag=prod",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "'Stag' is not a parameter of template.yaml (did you mean Stage?)" in result.stderr


# ---------------------------------------------------------------------- errors


def _template(tmp_path: Path, body: str) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "app.py").write_text("def handler(e, c):\n    return e\n")
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def _function(props: str, extra: str = "") -> str:
    return (
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: src/\n      Handler: app.handler\n"
        + textwrap.indent(textwrap.dedent(props), "      ")
        + extra
    )


@pytest.mark.parametrize(
    ("props", "extra", "message"),
    [
        (
            "Environment:\n  Variables:\n    TABLE: !Ref Table\n",
            "  Table:\n    Type: AWS::DynamoDB::Table\n",
            "Resources.Fn.Properties.Environment.Variables.TABLE: Ref to Table "
            "(AWS::DynamoDB::Table): its physical id only exists once deployed; give TABLE its "
            "local value with --env TABLE=VALUE",
        ),
        (
            "Timeout: !Ref Missing\n",
            "",
            "Resources.Fn.Properties.Timeout: Ref to 'Missing': no parameter or resource",
        ),
        (
            "Timeout: !Ref Limit\n",
            "Parameters:\n  Limit:\n    Type: Number\n",
            "Resources.Fn.Properties.Timeout: parameter Limit has no Default; give it a value "
            "with --parameter-overrides Limit=VALUE",
        ),
        (
            "Environment:\n  Variables:\n    X: !GetAtt Bucket.Arn\n",
            "  Bucket:\n    Type: AWS::S3::Bucket\n",
            "Fn::GetAtt Bucket.Arn (AWS::S3::Bucket): only the Arn of the template's functions",
        ),
        (
            "Layers:\n  - arn:aws:lambda:us-east-1:123456789012:layer:x:1\n",
            "",
            "Resources.Fn.Properties.Layers[0]: 'arn:aws:lambda:us-east-1:123456789012:layer:x:1' "
            "is not a layer of this template",
        ),
        (
            "FunctionName: !Sub 'x-${Fn.Arn}'\n",
            "",
            "Resources.Fn.Properties.FunctionName: the FunctionName of Fn depends on itself",
        ),
        (
            "MemorySize: 64\n",
            "",
            "Resources.Fn.Properties.MemorySize: 64 is not a whole number 128-10240",
        ),
        (
            "Environment:\n  Variables:\n    X: !If [Nope, a, b]\n",
            "",
            "Environment.Variables.X: condition 'Nope' is not defined under Conditions",
        ),
        (
            "Environment:\n  Variables:\n    X: !ImportValue shared-table\n",
            "",
            "Fn::ImportValue reads another stack's output",
        ),
    ],
)
def test_unresolvable_values_are_named(
    tmp_path: Path, props: str, extra: str, message: str
) -> None:
    body = _function(props)
    if extra.startswith("Parameters"):
        body = extra + body
    else:
        body += extra
    path = _template(tmp_path, body)
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert message in str(info.value)
    assert str(info.value).startswith("template.yaml: ") or "--" in str(info.value)


def test_env_gives_a_value_only_known_once_deployed(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _function(
            "Environment:\n  Variables:\n    TABLE: !Ref Table\n",
            "  Table:\n    Type: AWS::DynamoDB::Table\n",
        ),
    )
    template = load_template(path, env_overrides={"TABLE": "local-table"})
    assert template.functions[0].environment == {}


def test_images_and_other_runtimes_are_not_served(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        _function(
            "",
            "  Image:\n    Type: AWS::Serverless::Function\n    Properties:\n"
            "      PackageType: Image\n      ImageUri: app:latest\n"
            "  Node:\n    Type: AWS::Serverless::Function\n    Properties:\n"
            "      CodeUri: src/\n      Handler: index.handler\n      Runtime: nodejs20.x\n",
        ),
    )
    template = load_template(path)
    assert [f.logical_id for f in template.functions] == ["Fn"]
    assert "PackageType Image is not supported" in template.unsupported["Image"]
    assert "Runtime nodejs20.x is not supported" in template.unsupported["Node"]


def test_invoking_an_unsupported_function_says_why(
    tmp_path: Path, lambda_emulator: Callable[..., Emulator], client: Callable[[str], Any]
) -> None:
    path = _template(
        tmp_path,
        _function("") + "  Image:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      PackageType: Image\n      ImageUri: app:latest\n",
    )
    emu = lambda_emulator(template=path, env={MARK_VAR: MARK})
    lam = client(emu.url)
    with pytest.raises(ClientError, match="Image is not served: PackageType Image is not supp"):
        lam.invoke(FunctionName="Image")
    # A single function answers the RIE path too, and Emulator.invoke needs no name.
    assert emu.invoke({"a": 1}).payload == {"a": 1}


def test_plain_cloudformation_json_with_inline_code(
    tmp_path: Path, lambda_emulator: Callable[..., Emulator]
) -> None:
    import json

    path = tmp_path / "template.json"
    path.write_text(
        json.dumps(
            {
                "Parameters": {"Name": {"Type": "String", "Default": "inline"}},
                "Resources": {
                    "Inline": {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "FunctionName": {"Fn::Sub": ["fn-${N}", {"N": {"Ref": "Name"}}]},
                            "Handler": "index.handler",
                            "Runtime": "python3.12",
                            "Code": {"ZipFile": "def handler(e, c):\n    return 'inline!'\n"},
                            "Environment": {
                                "Variables": {
                                    "JOINED": {"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}]]}
                                }
                            },
                        },
                    }
                },
            }
        )
    )
    emu = lambda_emulator(template=path, env={MARK_VAR: MARK}, region="eu-west-1")
    assert emu.functions == ["fn-inline"]
    assert emu.function("Inline").invoke().payload == "inline!"
    assert emu._core.functions.default.config.env["JOINED"] == "a-eu-west-1"


def test_conditions_leave_out_resources_and_no_value(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        """\
        Parameters:
          WithExtra: {Type: String, Default: "no"}
        Conditions:
          Extra: !Equals [!Ref WithExtra, "yes"]
          NotExtra: !Not [!Condition Extra]
          Both: !And [!Condition NotExtra, !Or [!Condition Extra, !Equals [a, a]]]
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Environment:
                Variables:
                  DROPPED: !If [Extra, here, !Ref AWS::NoValue]
                  BOTH: !If [Both, "yes", "no"]
          ExtraFn:
            Type: AWS::Serverless::Function
            Condition: Extra
            Properties:
              CodeUri: src/
              Handler: app.handler
        """,
    )
    template = load_template(path)
    assert [f.logical_id for f in template.functions] == ["Fn"]
    assert template.functions[0].environment == {"BOTH": "yes"}
    with_extra = load_template(path, parameter_overrides={"WithExtra": "yes"})
    assert [f.logical_id for f in with_extra.functions] == ["Fn", "ExtraFn"]
    assert with_extra.functions[0].environment == {"DROPPED": "here", "BOTH": "no"}


def test_globals_merge_and_architecture_note(tmp_path: Path) -> None:
    path = _template(
        tmp_path,
        """\
        Globals:
          Function:
            Timeout: 30
            Environment:
              Variables: {A: global, B: global}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Architectures: [arm64]
              Environment:
                Variables: {B: own}
        """,
    )
    from runtime.emulator.template import host_architecture

    template = load_template(path)
    spec = template.functions[0]
    assert spec.timeout == 30 and spec.environment == {"A": "global", "B": "own"}
    if host_architecture() != "arm64":
        assert any("Architectures arm64 but this host is x86_64" in n for n in template.notes)


def test_template_option_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--template: .* is not a file"):
        Emulator(template=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="--template and HANDLER exclude each other"):
        Emulator("app.handler", template=TEMPLATE)
    with pytest.raises(ConfigError, match="--parameter-overrides only applies with --template"):
        Emulator("app.handler", parameter_overrides=["A=1"])
    with pytest.raises(ConfigError, match="'A' is not Key=Value"):
        Emulator(template=TEMPLATE, parameter_overrides=["A"])
    with pytest.raises(
        TemplateError,
        match=r"parameter Stage = 'qa' \(from --parameter-overrides\) is not one of its Allowed",
    ):
        Emulator(template=TEMPLATE, parameter_overrides=["ParameterKey=Stage,ParameterValue=qa"])
    (tmp_path / "broken.yaml").write_text("Resources: [\n")
    with pytest.raises(TemplateError, match="neither valid YAML nor JSON"):
        Emulator(template=tmp_path / "broken.yaml")


def test_layers_local_and_not(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / name / "python").mkdir(parents=True)
    path = _template(
        tmp_path,
        """\
        Globals:
          Function:
            Layers: [!Ref One]
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Layers: [!Ref Two]
          One:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: one/}
          Two:
            Type: AWS::Lambda::LayerVersion
            Properties: {Content: two}
          InS3:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: {Bucket: b, Key: k}}
        """,
    )
    spec = load_template(path).functions[0]
    # Globals' layers come first, as SAM merges lists.
    assert spec.layers == (tmp_path / "one", tmp_path / "two")
    path.write_text(path.read_text().replace("Layers: [!Ref Two]", "Layers: [!Ref InS3]"))
    with pytest.raises(
        TemplateError, match=r"Resources.InS3.Properties.ContentUri: layer content in S3"
    ):
        load_template(path)
