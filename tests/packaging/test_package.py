"""`lambda-runtime package`: builds real zips for the example function with pip and checks them.

Wheels come from the package index through pip; downloads are cached under out/cache/pip so
repeated runs are fast. Whether the zips really start on Lambda's file layout is checked by
tests/packaging/test_provided.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / "out" / "cache" / "pip"
HOST_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
HOST_MACHINE = os.uname().machine

pytestmark = pytest.mark.timeout(300)


def package(
    *args: str | Path, source: Path = REPO, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run the command in `cwd` (default `source`, the folder holding `runtime` and `bootstrap`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", "package", *map(str, args),
         "--cache-dir", str(CACHE)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd or source, check=False,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its content, to prove a build left it untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def wheel_tags(layer: Path, dist: str) -> list[str]:
    with zipfile.ZipFile(layer) as zf:
        wheel = next(n for n in zf.namelist()
                     if re.fullmatch(rf"python/{dist}-[^/]+\.dist-info/WHEEL", n))
        text = zf.read(wheel).decode()
    return re.findall(r"^Tag: (\S+)$", text, flags=re.M)


Built = tuple[Path, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("pkg")
    proc = package(REPO / "examples" / "hello", "--output", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def layer_entries(layer: Path) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(layer) as zf:
        return {info.filename: info for info in zf.infolist()}


def assert_no_dangling_links(archive: Path) -> None:
    """Every symlink stored in the zip points at an entry of the same zip."""
    with zipfile.ZipFile(archive) as zf:
        listing = set(zf.namelist())
        for info in zf.infolist():
            if stat.S_ISLNK(info.external_attr >> 16):
                target = os.path.normpath(
                    os.path.join(os.path.dirname(info.filename), zf.read(info).decode())
                )
                assert target in listing or f"{target}/" in listing, (info.filename, target)


def test_layer_has_bootstrap_the_runtime_core_and_orjson_only(built: Built) -> None:
    out, _ = built
    layer = out / "runtime-layer.zip"
    with zipfile.ZipFile(layer) as zf:
        boot = zf.getinfo("bootstrap")
        assert zf.read(boot) == (REPO / "bootstrap").read_bytes()
        assert stat.S_IMODE(boot.external_attr >> 16) == 0o755
    listing = set(layer_entries(layer))
    for required in [
        "python/runtime/__init__.py",
        "python/runtime/__main__.py",
        "python/runtime/bootstrap.py",
        "python/runtime/protocol.py",
    ]:
        assert required in listing, required
    assert any(re.fullmatch(rf"python/orjson/orjson\.cpython-{HOST_TAG[2:]}-{HOST_MACHINE}"
                            r"-linux-gnu\.so", n) for n in listing)
    # Developer tooling never runs on Lambda.
    for tooling in ("python/runtime/emulator/", "python/runtime/packaging/",
                    "python/runtime/cli.py", "python/runtime/_data/"):
        assert not any(n.startswith(tooling) for n in listing), tooling
    # Nor do the emulator's HTTP libraries, nor the opt-in observability libraries unless asked.
    tops = {n.split("/")[1] for n in listing if n.startswith("python/") and n.count("/") > 1}
    assert not tops & {"httpx", "h11", "structlog", "opentelemetry"}, tops
    assert_no_dangling_links(layer)
    assert not any(stat.S_ISLNK(info.external_attr >> 16)
                   for info in layer_entries(layer).values())
    # Console scripts would carry this machine's interpreter path in their shebang.
    assert not any(n.startswith("python/bin/") for n in listing)
    # Nothing from the function, and nothing stale from this checkout.
    assert "app.py" not in listing
    assert not any(n.endswith(".pyc") and f".cpython-{HOST_TAG[2:]}." not in n for n in listing)


def test_layer_with_otel_and_structlog_adds_them_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = package(REPO / "examples" / "hello", "--output", out, "--no-compile",
                   "--with", "structlog,otel")
    assert proc.returncode == 0, proc.stderr
    listing = set(layer_entries(out / "runtime-layer.zip"))
    assert "python/structlog/__init__.py" in listing
    assert "python/opentelemetry/sdk/trace/__init__.py" in listing
    assert not any(n.startswith(("python/httpx/", "python/h11/", "python/runtime/emulator/"))
                   for n in listing)
    assert "Runtime layer: runtime core, orjson, otel, structlog;" in proc.stdout


def test_unknown_optional_part_is_refused(tmp_path: Path) -> None:
    proc = package(REPO / "examples" / "hello", "--output", tmp_path / "out", "--with", "emulator")
    assert proc.returncode == 2
    assert "unknown optional part 'emulator'; choose from otel, structlog" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_function_zip_has_the_code_at_the_root(
    built: Built,
) -> None:
    out, _ = built
    listing = names(out / "function.zip")
    assert "app.py" in listing
    assert not any(n.startswith(("python/", "runtime/")) for n in listing)
    with zipfile.ZipFile(out / "function.zip") as zf:
        assert zf.read("app.py") == (REPO / "examples/hello/app.py").read_bytes()


def test_pyc_are_precompiled_for_the_target_and_hash_based(
    built: Built,
) -> None:
    out, _ = built
    pyc = f"__pycache__/app.cpython-{HOST_TAG[2:]}.pyc"
    with zipfile.ZipFile(out / "function.zip") as zf:
        data = zf.read(pyc)
    import importlib.util

    assert data[:4] == importlib.util.MAGIC_NUMBER
    # PEP 552 flags: 0b01 = hash-based, not checked against the source (read-only /var/task).
    assert int.from_bytes(data[4:8], "little") == 0b01
    with zipfile.ZipFile(out / "runtime-layer.zip") as zf:
        assert f"python/runtime/__pycache__/bootstrap.cpython-{HOST_TAG[2:]}.pyc" in zf.namelist()


def test_summary_reports_sizes_limits_and_hashes(
    built: Built,
) -> None:
    out, proc = built
    for name in ("runtime-layer.zip", "function.zip"):
        assert sha256(out / name) in proc.stdout
    # The layer's unzipped size is what counts against Lambda's 250 MiB with the function's.
    with zipfile.ZipFile(out / "runtime-layer.zip") as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    match = re.search(r"Runtime layer: runtime core, orjson; (\d+) entries, ([\d.]+) (KiB|MiB) "
                      r"unzipped", proc.stdout)
    assert match, proc.stdout
    shown = float(match.group(2)) * (1024 if match.group(3) == "KiB" else 1024 * 1024)
    assert abs(shown - unzipped) <= 0.05 * 1024 * 1024, (shown, unzipped)
    # Core and orjson: a few MiB at most, not the tens that the full stack would add.
    assert unzipped < 5 * 1024 * 1024
    assert "of 50 MiB" in proc.stdout
    assert "of 250 MiB" in proc.stdout
    # Not a terminal: plain progress lines, no cursor tricks.
    assert "==> zipping" in proc.stderr
    assert "\r" not in proc.stderr
    assert "\x1b" not in proc.stderr


def test_same_input_gives_identical_zips(tmp_path: Path) -> None:
    # A frozen copy of the runtime, so that edits to the checkout cannot race the two builds.
    source = tmp_path / "src"
    shutil.copytree(REPO / "runtime", source / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "bootstrap", source / "bootstrap")
    shutil.copy2(REPO / "pyproject.toml", source / "pyproject.toml")
    fn = tmp_path / "hello"
    shutil.copytree(REPO / "examples" / "hello", fn, ignore=shutil.ignore_patterns("__pycache__"))
    first = tmp_path / "out1"
    proc = package(fn, "--output", first, source=source)
    assert proc.returncode == 0, proc.stderr

    # Other timestamps and permissions, and local clutter that must not be packaged.
    for path in [*fn.rglob("*"), *source.rglob("*")]:
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    (fn / "app.py").chmod(0o600)
    (fn / "__pycache__").mkdir()
    (fn / "__pycache__" / "app.cpython-39.pyc").write_bytes(b"stale")
    (fn / ".git").mkdir()
    (fn / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    second = tmp_path / "out2"
    proc = package(fn, "--output", second, source=source)
    assert proc.returncode == 0, proc.stderr
    assert sha256(second / "function.zip") == sha256(first / "function.zip")
    assert sha256(second / "runtime-layer.zip") == sha256(first / "runtime-layer.zip")

    (fn / "app.py").write_text((fn / "app.py").read_text() + "\n# changed\n")
    third = tmp_path / "out3"
    assert package(fn, "--output", third, source=source).returncode == 0
    assert sha256(third / "function.zip") != sha256(first / "function.zip")
    assert sha256(third / "runtime-layer.zip") == sha256(first / "runtime-layer.zip")


def test_over_the_size_limit_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = package(REPO / "examples" / "hello", "--output", out, "--no-compile",
                   "--max-unzipped-mb", "0.2", "--max-zipped-mb", "0.05")
    assert proc.returncode == 1
    assert "too large for Lambda" in proc.stderr
    assert re.search(r"unzip to \d+\.\d [KM]iB .*over the limit of 0.2 MiB", proc.stderr)
    assert re.search(r"runtime-layer\.zip is \d+\.\d [KM]iB zipped, over the limit of 0\.05 MiB",
                     proc.stderr)
    assert "function.zip is" not in proc.stderr  # the tiny function zip is within the limit
    assert not out.exists()  # nothing written


def test_arch_and_python_select_the_wheels(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("import markupsafe\n\ndef handler(event, context):\n"
                               "    return str(markupsafe.escape(event))\n")
    (fn / "requirements.txt").write_text("markupsafe\n")
    other = "3.12" if HOST_PYTHON != "3.12" else "3.13"
    tag = "cp" + other.replace(".", "")
    out = tmp_path / "out"
    proc = package(fn, "--output", out, "--arch", "arm64", "--python", other)
    assert proc.returncode == 0, proc.stderr
    assert f"Python {other} on arm64" in proc.stdout

    layer = out / "runtime-layer.zip"
    tags = wheel_tags(layer, "orjson")
    assert tags and all(t.startswith(f"{tag}-{tag}-manylinux") for t in tags), tags
    assert all(t.endswith("_aarch64") for t in tags), tags
    assert f"python/orjson/orjson.cpython-{tag[2:]}-aarch64-linux-gnu.so" in names(layer)

    fn_names = names(out / "function.zip")
    assert f"markupsafe/_speedups.cpython-{tag[2:]}-aarch64-linux-gnu.so" in fn_names
    assert "app.py" in fn_names
    # Bytecode of the build machine's Python would be useless there.
    assert not any(f".cpython-{HOST_TAG[2:]}.pyc" in n for n in names(layer) + fn_names)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--python", "3.9"], 2, "unsupported Python '3.9'"),
        (["--arch", "sparc"], 2, "invalid choice: 'sparc'"),
        (["--glibc", "2.99"], 2, "unsupported glibc '2.99'"),
        (["--max-zipped-mb", "0"], 2, "must be above zero"),
    ],
)
def test_bad_options_are_rejected(args: list[str], status: int, message: str,
                                  tmp_path: Path) -> None:
    proc = package(REPO / "examples" / "hello", "--output", tmp_path, *args)
    assert proc.returncode == status
    assert message in proc.stderr


def test_missing_function_folder(tmp_path: Path) -> None:
    proc = package(tmp_path / "nope", "--output", tmp_path / "out")
    assert proc.returncode == 1
    assert f"function folder {tmp_path / 'nope'} does not exist" in proc.stderr


def test_unsatisfiable_requirement_names_pip_error(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (fn / "requirements.txt").write_text("orjson==0.0.0\n")
    out = tmp_path / "out"
    proc = package(fn, "--output", out, "--no-compile")
    assert proc.returncode == 1
    assert "pip could not install" in proc.stderr
    assert "orjson==0.0.0" in proc.stderr
    assert not out.exists()  # nothing written


def function_with_requirement(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("import markupsafe\n\ndef handler(event, context):\n"
                                   "    return str(markupsafe.escape(event))\n")
    (folder / "requirements.txt").write_text("markupsafe\n")
    return folder


def test_relative_paths_as_in_the_readme_build_complete_zips_and_leave_the_source_alone(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    fn = function_with_requirement(project / "examples" / "hello")
    before = snapshot(fn)
    # The README's command, word for word, run from the project folder.
    proc = package("examples/hello", "--output", "out/package", "--arch", "x86_64",
                   "--python", "3.12", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = project / "out" / "package"
    assert sorted(p.name for p in out.iterdir()) == ["function.zip", "runtime-layer.zip"]
    fn_names = names(out / "function.zip")
    assert "app.py" in fn_names
    assert any(n.startswith("markupsafe/") for n in fn_names), fn_names
    assert snapshot(fn) == before  # nothing installed into, or left in, the function folder

    # A second build from the same folder gives the same function zip: no leftovers picked up.
    proc = package("examples/hello", "--output", "out/again", "--arch", "x86_64",
                   "--python", "3.12", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert sha256(project / "out/again/function.zip") == sha256(out / "function.zip")


def test_output_inside_the_function_folder_is_not_packaged(tmp_path: Path) -> None:
    fn = function_with_requirement(tmp_path / "fn")
    before = snapshot(fn)
    proc = package(".", "--output", "dist", "--no-compile", cwd=fn)
    assert proc.returncode == 0, proc.stderr
    after = snapshot(fn)
    added = sorted(set(after) - set(before))
    assert added == ["dist", "dist/function.zip", "dist/runtime-layer.zip"], added
    assert {k: after[k] for k in before} == before
    fn_names = names(fn / "dist" / "function.zip")
    assert not any(n.startswith("dist/") for n in fn_names)
    assert any(n.startswith("markupsafe/") for n in fn_names)


def test_output_above_the_function_folder_still_packages_the_function(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(e, c):\n    return 1\n")
    proc = package("fn", "--output", ".", "--no-compile", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "app.py" in names(tmp_path / "function.zip")


def test_output_that_is_the_function_folder_is_refused(tmp_path: Path) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(e, c):\n    return 1\n")
    proc = package(".", "--output", ".", "--no-compile", cwd=fn)
    assert proc.returncode == 1
    assert "the output folder . is the function folder ." in proc.stderr
    assert sorted(p.name for p in fn.iterdir()) == ["app.py"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda fn: (fn / "secrets").symlink_to("../outside.txt"),
         "fn/secrets is a symlink to '../outside.txt', outside the function folder; "
         "replace it with the file it points to"),
        (lambda fn: (fn / "gone").symlink_to("missing.txt"),
         "fn/gone is a symlink to 'missing.txt', which does not exist"),
        (lambda fn: os.mkfifo(fn / "pipe"),
         "fn/pipe is not a regular file"),
    ],
    ids=["link-outside", "dangling-link", "fifo"],
)
def test_unsafe_file_is_reported_with_the_users_path_in_one_line(
    tmp_path: Path, make: object, reason: str
) -> None:
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "outside.txt").write_text("not for Lambda")
    make(fn)  # type: ignore[operator]
    proc = package("fn", "--output", "out", "--no-compile", cwd=tmp_path)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith(f"lambda-runtime package: error: {reason}"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "lambda-runtime-package-" not in proc.stderr  # no staging folder named
    assert not (tmp_path / "out").exists()
