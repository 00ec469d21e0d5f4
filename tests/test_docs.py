"""The documentation: the site builds strictly, links resolve, the README stays an entry point,
and every shell command the docs show is either run here exactly as written or accounted for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
README_LIMIT = 10 * 1024
PAGES = sorted([README, REPO / "CHANGELOG.md", *DOCS.rglob("*.md")])
BIN = Path(sys.executable).parent

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
_INLINE_CODE = re.compile(r"`[^`]*`")


def _prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with inline code removed (links there are text)."""
    fence: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line.strip())
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield _INLINE_CODE.sub("", line)


def _code_blocks(text: str, language: str) -> Iterator[str]:
    fence: str | None = None
    block: list[str] = []
    keep = False
    for line in text.splitlines():
        match = _FENCE.match(line.strip())
        if match and fence is None:
            fence = match.group(1)[0] * 3
            keep = match.group(2).strip() == language
            block = []
            continue
        if match and fence is not None and match.group(1).startswith(fence):
            if keep:
                yield "\n".join(block)
            fence = None
            continue
        if fence is not None:
            block.append(line)


def shell_commands(text: str) -> list[str]:
    """Commands of the ```sh blocks: continuation lines joined, comments and blanks dropped."""
    commands: list[str] = []
    for block in _code_blocks(text, "sh"):
        pending = ""
        for raw in block.splitlines():
            line = raw.rstrip()
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            line = pending + line.strip()
            pending = ""
            # A trailing "# comment" (outside quotes) is not part of the command.
            hash_at = _comment_start(line)
            if hash_at >= 0:
                line = line[:hash_at].rstrip()
            commands.append(re.sub(r"\s+", " ", line))
    return commands


def _comment_start(line: str) -> int:
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return -1


# --- the strict site build ----------------------------------------------------------------------


def _require_mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") and importlib.util.find_spec("material"):
        return
    message = "mkdocs / mkdocs-material are not installed (pip install -r docs/requirements.txt)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message}: CI must build the docs")
    pytest.skip(message)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_mkdocs_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(outcome):
        _require_mkdocs()


def test_site_builds_strictly_without_warnings(tmp_path: Path) -> None:
    _require_mkdocs()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


# --- README size and links ----------------------------------------------------------------------


def test_readme_is_an_entry_point_under_10_kb() -> None:
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size} bytes; move details into docs/"


def _relative_targets(page: Path) -> Iterator[tuple[str, Path]]:
    for line in _prose_lines(page.read_text(encoding="utf-8")):
        for target in [*_LINK.findall(line), *_HTML_LINK.findall(line)]:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0].split("?", 1)[0]
            yield target, (page.parent / path).resolve()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file(page: Path) -> None:
    missing = [target for target, path in _relative_targets(page) if not path.exists()]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def _anchors(page: Path) -> set[str]:
    """The heading anchors MkDocs gives a page (Python-Markdown's toc slugs)."""
    from markdown.extensions.toc import slugify  # type: ignore[import-untyped]

    anchors: set[str] = set()
    for line in _prose_lines(page.read_text(encoding="utf-8").replace("`", "")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if match:
            anchors.add(slugify(match.group(1), "-"))
    return anchors


@pytest.mark.parametrize("page", [README, REPO / "CHANGELOG.md"], ids=lambda p: p.name)
def test_links_from_outside_the_site_name_existing_headings(page: Path) -> None:
    # MkDocs checks the anchors of links between docs pages; these two pages are not in it.
    _require_mkdocs()
    wrong = [
        target
        for target, path in _relative_targets(page)
        if "#" in target and path.suffix == ".md" and path.is_file()
        and target.split("#", 1)[1] not in _anchors(path)
    ]
    assert not wrong, f"{page.name} links to headings that do not exist: {wrong}"


def test_the_link_check_sees_links_and_ignores_code(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "[a](there.md#x) ![img](img/chart.svg) [web](https://example.com) [here](#top)\n"
        "`[not](inline.md)`\n```sh\n[nor](block.md)\n```\n",
        encoding="utf-8",
    )
    assert [t for t, _ in _relative_targets(page)] == ["there.md#x", "img/chart.svg"]


# --- the shell commands the docs show -----------------------------------------------------------

# Every command of a ```sh block in the README or the docs, and where it is proven to work.
# "run here" commands are executed below exactly as written; the others need Docker, AWS or a
# published package, and the test named beside them does the same thing another way.
RUN_HERE = "tests/test_docs.py (exactly as written)"
COMMANDS: dict[str, str] = {
    "make run": RUN_HERE,
    "make test": ".ci/run (CI runs exactly this)",
    "python -m runtime app.handler":
        "tests/e2e/test_runtime.py (the start_runtime fixture runs python -m runtime HANDLER "
        "against a Runtime API stub; it needs AWS_LAMBDA_RUNTIME_API)",
    "lambda-runtime invoke app.handler --task-root examples/hello --event '{\"name\":\"Ada\"}'":
        RUN_HERE,
    "lambda-runtime serve app.handler --task-root examples/hello": RUN_HERE,
    "curl -d '{\"name\":\"Ada\"}' http://127.0.0.1:9000/2015-03-31/functions/function/invocations":
        RUN_HERE,
    "lambda-runtime serve app.handler --runtime-cmd \"$PWD/.venv/bin/python -m awslambdaric\"":
        RUN_HERE,
    "lambda-runtime serve app.handler --no-spawn --runtime-api 127.0.0.1:9001": RUN_HERE,
    ".venv/bin/lambda-runtime invoke app.handler --task-root examples/observability "
    "--log-format JSON --env LAMBDA_RUNTIME_METRICS=emf --otel-console "
    "--event '{\"orderId\": \"o-42\", \"items\": [{\"sku\": \"tea\", \"price\": 4.5}]}'": RUN_HERE,
    "pip install 'lambda-runtime[emulator]'": "not run: needs the package on an index",
    "pip install 'lambda-runtime[debug]'": "not run: needs the package on an index",
    "lambda-runtime invoke app.handler --task-root src": RUN_HERE,
    "lambda-runtime invoke app.handler --task-root src --strict-imports": RUN_HERE,
    "make mutate": "not run in CI: slow, see testing page (hours for the full set)",
    "lambda-runtime package examples/hello --output out/package --arch x86_64 --python 3.12":
        "tests/packaging/test_package.py (same command on a test function, real pip)",
    "docker build -f container/Dockerfile -t hello .":
        "tests/packaging/test_container.py (buildah)",
    "docker build -f container/Dockerfile -t my-fn . --build-arg FUNCTION_DIR=path/to/my-fn "
    "--build-arg BASE_IMAGE=python:3.13-slim": "tests/packaging/test_container.py (buildah)",
    "docker build -f container/Dockerfile --build-arg WITH=otel,structlog -t my-fn .":
        "tests/packaging/test_container.py (buildah, WITH=emulator,otel,structlog)",
    "docker build -f container/Dockerfile --build-arg WITH=emulator -t hello-local .":
        "tests/packaging/test_container.py (buildah, WITH=emulator,otel,structlog)",
    "docker run --rm -p 9000:8080 hello-local":
        "tests/packaging/test_container.py (the image's entrypoint and CMD, buildah run)",
    "lambda-runtime serve --template template.yaml --parameter-overrides Stage=prod": RUN_HERE,
    "lambda-runtime serve --template template.yaml --http-port 3000": RUN_HERE,
    "curl http://127.0.0.1:3000/hello/Ada": RUN_HERE,
    "lambda-runtime serve app.handler --task-root examples/hello --max-concurrency 64": RUN_HERE,
    "curl -d '{\"name\": \"Ada\"}' "
    "http://127.0.0.1:9000/2015-03-31/functions/hello-prod/invocations": RUN_HERE,
    "curl -d '{\"name\": \"you\"}' http://localhost:9000/2015-03-31/functions/function/invocations":
        "tests/packaging/test_container.py (the same request to the image's emulator)",
    "docker build -f container/Dockerfile.al2023 -t hello-al2023 . [--build-arg PYTHON=python3.11]":
        "tests/packaging/test_container.py (buildah)",
    "aws ecr create-repository --repository-name lambda-runtime-hello": "not run: needs AWS",
    "aws ecr get-login-password | docker login --username AWS --password-stdin "
    "ACCOUNT.dkr.ecr.REGION.amazonaws.com": "not run: needs AWS",
    "docker build -f container/Dockerfile -t "
    "ACCOUNT.dkr.ecr.REGION.amazonaws.com/lambda-runtime-hello:latest .":
        "tests/packaging/test_container.py (buildah)",
    "docker push ACCOUNT.dkr.ecr.REGION.amazonaws.com/lambda-runtime-hello:latest":
        "not run: needs AWS",
    "sam deploy --template-file examples/template.yaml --stack-name lambda-runtime-hello "
    "--resolve-s3 --capabilities CAPABILITY_IAM --parameter-overrides Architecture=x86_64 "
    "ImageUri=ACCOUNT.dkr.ecr.REGION.amazonaws.com/lambda-runtime-hello:latest "
    "PythonLayerArn=arn:aws:lambda:REGION:ACCOUNT:layer:python312:1":
        "not run: needs AWS; tests/packaging/test_template.py checks the template (cfn-lint)",
    "aws cloudformation package --template-file examples/template.yaml --s3-bucket BUCKET "
    "--output-template-file out/packaged.yaml": "not run: needs AWS",
    "aws cloudformation deploy --template-file out/packaged.yaml --stack-name "
    "lambda-runtime-hello --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND "
    "--parameter-overrides ImageUri=… PythonLayerArn=…": "not run: needs AWS",
    "aws cloudformation describe-stacks --stack-name lambda-runtime-hello --query "
    "'Stacks[0].Outputs'": "not run: needs AWS",
    "python -m bench --charts-from bench/results/latest.json": RUN_HERE,
    "python -m bench --charts-from out/bench.json --charts-dir /tmp/img":
        "tests/bench/test_bench_charts.py (--charts-from with --charts-dir, as a real process)",
    "lambda-runtime serve app.handler --task-root examples/streaming --http-port 8080": RUN_HERE,
    "curl -N 'http://127.0.0.1:8080/countdown?from=5'": RUN_HERE,
    "lambda-runtime invoke app.handler --task-root examples/snapstart --snap-start": RUN_HERE,
    "aws lambda invoke --function-name ZIP_OR_IMAGE_FUNCTION_NAME --cli-binary-format "
    "raw-in-base64-out --payload '{\"name\": \"AWS\"}' /dev/stdout": "not run: needs AWS",
}


def _documented_commands() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for page in PAGES:
        for command in shell_commands(page.read_text(encoding="utf-8")):
            found.setdefault(command, []).append(str(page.relative_to(REPO)))
    return found


def test_every_documented_command_is_accounted_for() -> None:
    documented = _documented_commands()
    unknown = {c: pages for c, pages in documented.items() if c not in COMMANDS}
    assert not unknown, (
        "commands shown in the docs that no test runs; run them in tests/test_docs.py or say "
        f"in COMMANDS which test covers them: {unknown}"
    )
    stale = sorted(set(COMMANDS) - set(documented))
    assert not stale, f"COMMANDS lists commands the docs no longer show: {stale}"


def test_command_extraction_joins_continuations_and_drops_comments() -> None:
    text = (
        "```sh\n# a comment\nmake run    # explained\n"
        "lambda-runtime serve app.handler \\\n    --port 1   # more\n"
        "curl -d '{\"a\": \"#1\"}' http://x/\n```\n```python\nprint(1)\n```\n"
    )
    assert shell_commands(text) == [
        "make run",
        "lambda-runtime serve app.handler --port 1",
        "curl -d '{\"a\": \"#1\"}' http://x/",
    ]


def _shell(command: str, cwd: Path = REPO, **kwargs: object) -> subprocess.Popen[str]:
    """Runs a documented command as a user would in a shell (at the repo root unless the docs
    say where), with the project's .venv/bin first on PATH (where `make setup` put
    lambda-runtime)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    # Under `make test` these say "a sub-make": make would print Entering/Leaving lines that a
    # user's own `make run` does not.
    for name in ("PYTHONPATH", "MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
        env.pop(name, None)
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        ["sh", "-c", command], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kwargs,
    )


def _documented(command: str) -> str:
    assert command in _documented_commands(), f"the docs no longer show: {command}"
    assert COMMANDS[command] == RUN_HERE
    return command


def _run(command: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = _shell(_documented(command))
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, out, err


def test_make_run_prints_the_hello_answer() -> None:
    if not (REPO / ".venv" / ".installed").exists():
        pytest.skip("make run sets up .venv; here there is none to reuse")
    status, out, err = _run("make run", timeout=300)
    assert status == 0, err
    # make echoes the command first; the answer is the last line.
    assert json.loads(out.splitlines()[-1])["message"] == "Hello, world!"


def test_charts_redrawn_as_documented_match_the_committed_ones() -> None:
    """The committed charts are the ones the committed results draw: redrawing them in place, as
    the performance page shows, leaves docs/img/ unchanged."""
    before = {p.name: p.read_bytes() for p in (REPO / "docs" / "img").glob("*.svg")}
    status, _, err = _run("python -m bench --charts-from bench/results/latest.json")
    assert status == 0, err
    after = {p.name: p.read_bytes() for p in (REPO / "docs" / "img").glob("*.svg")}
    assert before and after == before


def test_invoke_hello_as_documented() -> None:
    status, out, err = _run(
        "lambda-runtime invoke app.handler --task-root examples/hello --event '{\"name\":\"Ada\"}'"
    )
    assert status == 0, err
    assert json.loads(out)["message"] == "Hello, Ada!"
    assert "REPORT RequestId:" in err


def test_observability_example_as_documented() -> None:
    if not (REPO / ".venv" / "bin" / "lambda-runtime").exists():
        pytest.skip("the command uses .venv/bin/lambda-runtime, which make setup creates")
    status, out, err = _run(
        ".venv/bin/lambda-runtime invoke app.handler --task-root examples/observability "
        "--log-format JSON --env LAMBDA_RUNTIME_METRICS=emf --otel-console "
        "--event '{\"orderId\": \"o-42\", \"items\": [{\"sku\": \"tea\", \"price\": 4.5}]}'"
    )
    assert status == 0, err
    assert json.loads(out) == {"orderId": "o-42", "total": 4.5}
    assert "SPANS RequestId:" in err
    assert '"_aws"' in err  # the EMF metrics line


def test_snapstart_example_as_documented() -> None:
    status, out, err = _run(
        "lambda-runtime invoke app.handler --task-root examples/snapstart --snap-start"
    )
    assert status == 0, err
    # The after-restore hooks ran once, in the restored environment, before the invoke.
    assert json.loads(out)["restores"] == 1
    assert err.index("RESTORE_START") < err.index("connection reopened after the restore")
    assert err.index("RESTORE_REPORT Restore Duration:") < err.index("START RequestId:")
    report = err[err.index("REPORT RequestId:") :]
    assert "Restore Duration:" in report and "Init Duration" not in report


def test_import_checks_as_documented(tmp_path: Path) -> None:
    """The local-development page's two commands, in a folder holding ``src/app.py`` that
    imports a package only the virtual environment has: a warning naming it, then, with
    --strict-imports, the init error a deployed function would get."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(
        "import yaml\n\n\ndef handler(event, context):\n    return {'ok': True}\n",
        encoding="utf-8",
    )
    outcomes = []
    for command in (
        "lambda-runtime invoke app.handler --task-root src",
        "lambda-runtime invoke app.handler --task-root src --strict-imports",
    ):
        proc = _shell(_documented(command), cwd=tmp_path)
        out, err = proc.communicate(timeout=90)
        outcomes.append((proc.returncode, out, err))
    (status, out, err), (strict_status, strict_out, strict_err) = outcomes
    assert status == 0, err
    assert json.loads(out) == {"ok": True}
    assert "`yaml` came from your virtual environment; on Lambda it must be in the function " \
        "package or a layer" in err, err
    assert strict_status == 1, strict_err
    error = json.loads(strict_out)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"].startswith(
        "Unable to import module 'app': No module named 'yaml'"
    ), error


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(
    command: str, ready: str, ports: tuple[int, ...], cwd: Path = REPO
) -> tuple[subprocess.Popen[str], str]:
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        pytest.skip(f"the documented command needs port(s) {busy}, in use on this machine")
    proc = _shell(_documented(command), cwd=cwd)
    assert proc.stderr is not None
    banner = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ready not in banner:
        line = proc.stderr.readline()
        if not line:
            break
        banner += line
    if ready not in banner:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{command!r} did not print {ready!r} within 30 s:\n{banner}")
    return proc, banner


def _stop(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert "lambda-runtime emulator: stopping" in err, err
    return err


def test_serve_and_curl_as_documented() -> None:
    proc, _ = _serve(
        "lambda-runtime serve app.handler --task-root examples/hello", "Invoke API:", (9000,)
    )
    try:
        status, out, err = _run(
            "curl -d '{\"name\":\"Ada\"}' "
            "http://127.0.0.1:9000/2015-03-31/functions/function/invocations"
        )
        assert status == 0, err
        assert json.loads(out)["message"] == "Hello, Ada!"
    finally:
        _stop(proc)


def test_streaming_function_url_and_curl_as_documented() -> None:
    proc, banner = _serve(
        "lambda-runtime serve app.handler --task-root examples/streaming --http-port 8080",
        "Function URL (payload 2.0):", (9000, 8080),
    )
    try:
        assert "http://127.0.0.1:8080/" in banner
        status, out, err = _run("curl -N 'http://127.0.0.1:8080/countdown?from=5'")
        assert status == 0, err
        ticks = [json.loads(line[6:]) for line in out.splitlines() if line.startswith('data: {"')]
        assert [tick["remaining"] for tick in ticks] == [5, 4, 3, 2, 1]
        assert out.rstrip().endswith("event: done\ndata: {}")
    finally:
        _stop(proc)


def test_serve_with_another_runtime_as_documented() -> None:
    proc, banner = _serve(
        "lambda-runtime serve app.handler --runtime-cmd \"$PWD/.venv/bin/python -m awslambdaric\"",
        "Invoke API:", (9000,),
    )
    _stop(proc)
    assert "app.handler" in banner


def test_serve_no_spawn_as_documented() -> None:
    proc, banner = _serve(
        "lambda-runtime serve app.handler --no-spawn --runtime-api 127.0.0.1:9001",
        "export _HANDLER", (9000, 9001),
    )
    _stop(proc)
    assert "export AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001" in banner


def _page_template(resource: str) -> str:
    """The local-development page's template that defines ``resource``."""
    page = (DOCS / "local-development.md").read_text(encoding="utf-8")
    (template,) = [block for block in _code_blocks(page, "yaml") if f"  {resource}:" in block]
    return template + "\n"


def test_serve_a_template_as_documented(tmp_path: Path) -> None:
    """The local-development page's template, written where the page says (next to a copy of
    examples/hello), served and invoked with the page's own commands."""
    (tmp_path / "template.yaml").write_text(_page_template("HelloFunction"), encoding="utf-8")
    shutil.copytree(REPO / "examples" / "hello", tmp_path / "hello")
    proc, banner = _serve(
        "lambda-runtime serve --template template.yaml --parameter-overrides Stage=prod",
        "GoodbyeFunction: app.handler", (9000,), cwd=tmp_path,
    )
    try:
        assert "hello-prod (HelloFunction)" in banner and "GoodbyeFunction" in banner, banner
        status, out, err = _run(
            "curl -d '{\"name\": \"Ada\"}' "
            "http://127.0.0.1:9000/2015-03-31/functions/hello-prod/invocations"
        )
        assert status == 0, err
        answer = json.loads(out)
        assert (answer["message"], answer["function_name"]) == ("Hello, Ada!", "hello-prod")
        assert answer["memory_limit_in_mb"] == "256"
    finally:
        err = _stop(proc)
    assert "[hello-prod] REPORT RequestId:" in err


def test_template_http_routes_as_documented(tmp_path: Path) -> None:
    """The page's HTTP API template, alone in a folder, served with --http-port and reached with
    the page's curl: the route matched, its path parameter decoded into the event."""
    (tmp_path / "template.yaml").write_text(_page_template("GreetFunction"), encoding="utf-8")
    proc, banner = _serve(
        "lambda-runtime serve --template template.yaml --http-port 3000",
        "GET /hello/{name} -> GreetFunction (HTTP API, payload 2.0)", (9000, 3000), cwd=tmp_path,
    )
    try:
        assert "HTTP routes on http://127.0.0.1:3000:" in banner, banner
        status, out, err = _run("curl http://127.0.0.1:3000/hello/Ada")
        assert status == 0, err
        assert json.loads(out) == {"message": "Hello, Ada!", "route": "GET /hello/{name}"}
    finally:
        err = _stop(proc)
    assert "[GreetFunction] REPORT RequestId:" in err, err


def test_serve_with_max_concurrency_as_documented() -> None:
    """The multi-concurrency page's commands: one environment takes several invokes at once,
    each with its own JSON platform records."""
    proc, banner = _serve(
        "lambda-runtime serve app.handler --task-root examples/hello --max-concurrency 64",
        "Invoke API:", (9000,),
    )
    curl = (
        "curl -d '{\"name\":\"Ada\"}' "
        "http://127.0.0.1:9000/2015-03-31/functions/function/invocations"
    )
    try:
        assert "concurrency 10 environments x 64 invokes each" in banner, banner
        callers = [_shell(_documented(curl)) for _ in range(4)]
        answers = [caller.communicate(timeout=60) for caller in callers]
        for caller, (out, err) in zip(callers, answers, strict=True):
            assert caller.returncode == 0, err
            assert json.loads(out)["message"] == "Hello, Ada!"
    finally:
        err = _stop(proc)
    # Four invokes, one environment: a single init, a JSON report per invoke.
    assert err.count('"type":"platform.initStart"') == 1, err
    assert err.count('"type":"platform.report"') == 4, err


# --- the configuration table is the code's ------------------------------------------------------


def _table_cells(page: str) -> set[str]:
    """The backticked words that start a table row's first or second cell."""
    cells: set[str] = set()
    for line in page.splitlines():
        if line.startswith("|"):
            for cell in line.strip("|").split("|")[:2]:
                cells.update(re.findall(r"`([^`]+)`", cell))
    return {cell.split()[0] for cell in cells if cell.split()}


def test_every_option_of_the_code_is_in_the_configuration_table() -> None:
    """Every flag of serve, invoke and package, every keyword of Emulator(...), and every
    build argument of the two Dockerfiles has a row in docs/configuration.md."""
    from runtime.emulator import cli as emulator_cli
    from runtime.emulator.config import OPTIONS
    from runtime.packaging import package

    documented = _table_cells((DOCS / "configuration.md").read_text(encoding="utf-8"))
    parsers = [emulator_cli._parser("serve"), emulator_cli._parser("invoke"), package._parser()]
    flags = {
        flag
        for parser in parsers
        for action in parser._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag not in ("--help", "--version")
    }
    keywords = {option.name for option in OPTIONS if option.name != "handler"}
    build_args = {
        match
        for recipe in ("Dockerfile", "Dockerfile.al2023")
        for match in re.findall(
            r"^ARG (\w+)", (REPO / "container" / recipe).read_text(encoding="utf-8"), re.M
        )
    }
    missing = sorted((flags | keywords | build_args) - documented)
    assert not missing, f"docs/configuration.md has no row for: {missing}"


def test_the_testing_page_lists_every_judged_mutant_with_its_reason() -> None:
    """The testing page is where mutants judged equivalent are listed with their reasons: its
    table must be exactly what tests/mutation/equivalent.tsv holds (regenerate it with
    `.venv/bin/python tests/mutation/report.py --docs docs/testing.md`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("report", REPO / "tests/mutation/report.py")
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    page = (DOCS / "testing.md").read_text("utf-8")
    assert page == report.with_judged_table(page)
