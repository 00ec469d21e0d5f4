"""`lambda-runtime package FUNCTION_DIR --output DIR`: zips for the provided.al2/al2023 runtimes.

Builds two deterministic archives:

- `runtime-layer.zip`: `bootstrap` at the root (Lambda runs `/opt/bootstrap`), this runtime and
  its dependencies under `python/` (so they land in `/opt/python`, which `bootstrap` puts on
  the path);
- `function.zip`: the function folder and the packages of its `requirements.txt`, at the root
  (so they land in `/var/task`).

Wheels are chosen for the target (`--arch`, `--python`) with pip's `--platform`,
`--python-version`, `--implementation cp` and `--only-binary=:all:`, so a build on a laptop
gives zips that import on Lambda. Python files are precompiled to unchecked-hash `.pyc` when an
interpreter of the target version is at hand, since `/opt` and `/var/task` are read-only on Lambda
and modules without a `.pyc` are compiled again on every cold start.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from runtime.archive import ZipSummary, iter_tree, write_deterministic_zip

__all__ = ["PackageError", "Target", "build", "main"]

MIB = 1024 * 1024
# Lambda's quotas are binary megabytes: CreateFunction rejects a direct upload over 50 MiB and any
# function whose code plus layers unzip to more than 262,144,000 bytes (250 MiB).
ZIPPED_LIMIT_MIB = 50.0
UNZIPPED_LIMIT_MIB = 250.0
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
LAYER_ZIP = "runtime-layer.zip"
FUNCTION_ZIP = "function.zip"
DISTRIBUTION = "lambda-runtime"

# Never deployed: caches, virtual environments, VCS metadata and build output of common tools.
EXCLUDED_DIRS = frozenset(
    {
        "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".hypothesis", ".aws-sam", "node_modules", ".idea",
        ".vscode",
    }
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".DS_Store")


class PackageError(Exception):
    """The build cannot go on; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# Target
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What the zips are built for: Lambda architecture, Python version and glibc baseline."""

    arch: str = "x86_64"
    python: str = "3.12"
    glibc: str = "2.17"

    @property
    def machine(self) -> str:
        return ARCHES[self.arch]

    @property
    def platforms(self) -> list[str]:
        """pip `--platform` values, newest first, down to manylinux2014 (= manylinux_2_17).

        pip expands manylinux2014 to the older legacy tags itself but does not relate it to the
        PEP 600 spelling, so wheels tagged only `manylinux_2_X` need their own entries.
        """
        newest = int(self.glibc.split(".")[1])
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(newest, 16, -1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    @property
    def cpython_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    def __str__(self) -> str:
        return f"Python {self.python} on {self.arch} (manylinux, glibc {self.glibc})"


def host_arch() -> str | None:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    return None


def host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_interpreter(version: str) -> str | None:
    """An interpreter of exactly `version`: this one, else `pythonX.Y` on PATH if it really runs.

    The PATH entry is run once, because version managers install shims for versions they will
    then refuse to start.
    """
    if version == host_python():
        return sys.executable
    candidate = shutil.which(f"python{version}")
    if candidate is None:
        return None
    try:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0 or probe.stdout.strip() != version:
        return None
    return candidate


def has_pip(interpreter: str) -> bool:
    try:
        probe = subprocess.run(
            [interpreter, "-m", "pip", "--version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


class Progress:
    """Progress on stderr: one line rewritten in place on a terminal, plain lines otherwise.

    Plain mode prints only events worth a log line (steps, downloads), never per-file updates,
    so CI logs stay short.
    """

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._live = False

    def _clear(self) -> None:
        if self._live:
            self.stream.write("\r\x1b[K")
            self._live = False

    def step(self, text: str) -> None:
        self._clear()
        self.stream.write(f"==> {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line kept in the log in both modes."""
        self._clear()
        self.stream.write(f"    {text}\n")
        self.stream.flush()

    def live(self, text: str) -> None:
        """A transient status: shown in place on a terminal, dropped otherwise."""
        if not self.tty:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K    " + text[: max(width - 4, 10)])
        self.stream.flush()
        self._live = True

    def done(self) -> None:
        self._clear()
        self.stream.flush()


_PIP_EVENTS = re.compile(r"^\s*(Collecting|Downloading|Using cached|Processing|Obtaining)\s+(.*)$")


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    function_dir: Path
    output: Path
    target: Target
    bootstrap: Path
    cache_dir: Path | None = None
    max_zipped_mib: float = ZIPPED_LIMIT_MIB
    max_unzipped_mib: float = UNZIPPED_LIMIT_MIB
    compile: bool = True


@dataclass(frozen=True)
class BuildResult:
    layer: ZipSummary
    function: ZipSummary
    layer_sha256: str
    function_sha256: str
    precompiled: bool


def default_bootstrap() -> Path | None:
    """The `bootstrap` script: shipped as package data, or at the root of a source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_data" / "bootstrap", package_dir.parent / "bootstrap"):
        if candidate.is_file():
            return candidate
    return None


def runtime_requirements() -> list[str]:
    """This distribution's own dependencies, as requirement strings for pip."""
    try:
        declared = importlib.metadata.requires(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        declared = None
    if declared is None:
        declared = _requirements_from_pyproject(Path(__file__).resolve().parent.parent)
    # Extras (the dev tools) are not needed on Lambda.
    return [req for req in declared if not re.search(r"\bextra\s*==", req)]


def _requirements_from_pyproject(root: Path) -> list[str]:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise PackageError(
            f"cannot tell the dependencies of {DISTRIBUTION}: it is not installed and "
            f"{pyproject} does not exist; install it with pip first"
        )
    try:
        # Imported by name: tomllib is 3.11+, and mypy checks this file for 3.10.
        tomllib = importlib.import_module("tomllib")
    except ModuleNotFoundError:
        raise PackageError(
            f"cannot tell the dependencies of {DISTRIBUTION}: install it with pip "
            f"(`pip install -e {root}`) so its metadata is available"
        ) from None
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    deps = data.get("project", {}).get("dependencies", [])
    return [str(d) for d in deps]


def _copy_tree(src: Path, dst: Path, *, skip: Path | None = None) -> None:
    """Copy what would be deployed from `src`: no caches, no VCS data, no stale bytecode."""
    skip_real = Path(os.path.realpath(skip)) if skip is not None else None
    listing = iter_tree(src, exclude_dirs=EXCLUDED_DIRS, exclude_suffixes=EXCLUDED_SUFFIXES)
    for name, path in listing:
        if skip_real is not None:
            real = Path(os.path.realpath(path.parent))
            if real == skip_real or skip_real in real.parents:
                continue
        out = dst / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            os.symlink(os.readlink(path), out)
        else:
            shutil.copyfile(path, out)
            shutil.copymode(path, out)


def _run_pip(
    pip_python: str, args: list[str], progress: Progress, *, what: str, cwd: Path | None = None
) -> None:
    cmd = [
        pip_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--no-compile", "--no-warn-script-location", "--progress-bar", "off", *args,
    ]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    output: list[str] = []
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env
    )
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            output.append(line.rstrip("\n"))
            match = _PIP_EVENTS.match(line)
            if match is None:
                continue
            verb, rest = match.groups()
            if verb == "Downloading":
                progress.note(f"downloading {rest.strip()}")
            else:
                progress.live(f"{verb.lower()} {rest.strip()}")
    if proc.returncode != 0:
        tail = "\n".join("    " + line for line in output[-25:])
        raise PackageError(
            f"pip could not install {what}:\n{tail}\n"
            "Only wheels built for the target are used (--only-binary=:all:); a package without "
            "a manylinux wheel for this Python and architecture must be built in the target "
            "environment instead (see the container route in the README)."
        )


def _pip_target_args(target: Target, dest: Path, cache_dir: Path | None) -> list[str]:
    args = ["--target", str(dest), "--only-binary=:all:", "--implementation", "cp",
            "--python-version", target.python]
    for tag in target.platforms:
        args += ["--platform", tag]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    return args


def _drop_scripts(site: Path) -> None:
    """pip --target writes console scripts into bin/ with the build machine's interpreter in
    their shebang; they could not run on Lambda, and they would make builds machine-specific."""
    scripts = site / "bin"
    if scripts.is_dir() and not scripts.is_symlink():
        shutil.rmtree(scripts)


def _precompile(interpreter: str, folder: Path, deployed_at: str, progress: Progress) -> None:
    # unchecked-hash: the .pyc records no source mtime, so it is byte-for-byte reproducible and
    # stays valid whatever timestamps Lambda gives the unzipped files. -d puts the deployed path
    # in tracebacks instead of the temporary build folder.
    proc = subprocess.run(
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
         "unchecked-hash", "-d", deployed_at, str(folder)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        progress.note(f"some files under {deployed_at} did not compile (left as source):")
        for line in lines[-10:]:
            progress.note("  " + line)


def _zip(stage: Path, out: Path, progress: Progress, label: str) -> ZipSummary:
    def on_entry(index: int, total: int, name: str) -> None:
        if index % max(total // 100, 1) == 0 or index == total:
            progress.live(f"{label}: {index}/{total} entries ({100 * index // total}%) {name}")

    return write_deterministic_zip(out, iter_tree(stage), root=stage, on_entry=on_entry)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(size: int) -> str:
    if size < MIB:
        return f"{size / 1024:.1f} KiB"
    return f"{size / MIB:.1f} MiB"


def build(options: BuildOptions, progress: Progress) -> BuildResult:
    """Build both zips into `options.output`; raise PackageError (and write nothing) on failure."""
    target = options.target
    function_dir = options.function_dir
    if not function_dir.is_dir():
        raise PackageError(f"function folder {function_dir} does not exist or is not a folder")
    if not options.bootstrap.is_file():
        raise PackageError(f"bootstrap script {options.bootstrap} does not exist")

    interpreter = find_interpreter(target.python)
    pip_python = sys.executable
    if interpreter is not None and interpreter != sys.executable and has_pip(interpreter):
        # pip evaluates environment markers (`python_version < "3.11"`) against the Python that
        # runs it, whatever --python-version says; a matching interpreter gets them right.
        pip_python = interpreter
    elif target.python != host_python():
        progress.note(
            f"no python{target.python} with pip on PATH: dependency markers are evaluated for "
            f"Python {host_python()}"
        )

    options.output.mkdir(parents=True, exist_ok=True)
    runtime_dir = Path(__file__).resolve().parent
    requirements = function_dir / "requirements.txt"

    with tempfile.TemporaryDirectory(prefix=".package-", dir=options.output) as tmp:
        stage = Path(tmp)
        layer = stage / "layer"
        function = stage / "function"
        (layer / "python").mkdir(parents=True)
        function.mkdir()

        progress.step(f"runtime layer for {target}")
        shutil.copyfile(options.bootstrap, layer / "bootstrap")
        (layer / "bootstrap").chmod(0o755)
        _copy_tree(runtime_dir, layer / "python" / "runtime")
        deps = runtime_requirements()
        progress.note(f"dependencies: {', '.join(deps)}")
        _run_pip(
            pip_python,
            [*_pip_target_args(target, layer / "python", options.cache_dir), *deps],
            progress, what=f"the runtime's dependencies for {target}",
        )
        _drop_scripts(layer / "python")

        progress.step(f"function {function_dir}")
        _copy_tree(function_dir, function, skip=options.output)
        if requirements.is_file():
            progress.note(f"installing {requirements.name}")
            _run_pip(
                pip_python,
                [*_pip_target_args(target, function, options.cache_dir), "-r",
                 str(requirements.resolve())],
                progress, what=f"{requirements} for {target}", cwd=function_dir,
            )
            _drop_scripts(function)

        precompiled = False
        if options.compile:
            if interpreter is None:
                progress.note(
                    f"no python{target.python} here: .pyc files not precompiled (Lambda will "
                    "compile modules on every cold start); build on a machine with that Python "
                    "for faster cold starts"
                )
            else:
                progress.step(f"precompiling .pyc with Python {target.python}")
                _precompile(interpreter, layer / "python", "/opt/python", progress)
                _precompile(interpreter, function, "/var/task", progress)
                precompiled = True

        progress.step("zipping")
        layer_zip = _zip(layer, stage / LAYER_ZIP, progress, LAYER_ZIP)
        function_zip = _zip(function, stage / FUNCTION_ZIP, progress, FUNCTION_ZIP)
        progress.done()

        _check_limits(layer_zip, function_zip, options)

        final_layer = options.output / LAYER_ZIP
        final_function = options.output / FUNCTION_ZIP
        os.replace(layer_zip.path, final_layer)
        os.replace(function_zip.path, final_function)

    layer_zip = ZipSummary(final_layer, layer_zip.entries, layer_zip.zipped_size,
                           layer_zip.unzipped_size)
    function_zip = ZipSummary(final_function, function_zip.entries, function_zip.zipped_size,
                              function_zip.unzipped_size)
    return BuildResult(layer_zip, function_zip, _sha256(final_layer), _sha256(final_function),
                       precompiled)


def _check_limits(layer: ZipSummary, function: ZipSummary, options: BuildOptions) -> None:
    problems: list[str] = []
    max_zipped = int(options.max_zipped_mib * MIB)
    max_unzipped = int(options.max_unzipped_mib * MIB)
    for summary, name in ((layer, LAYER_ZIP), (function, FUNCTION_ZIP)):
        if summary.zipped_size > max_zipped:
            problems.append(
                f"{name} is {_mib(summary.zipped_size)} zipped, over the limit of "
                f"{options.max_zipped_mib:g} MiB for a direct upload"
            )
    unzipped = layer.unzipped_size + function.unzipped_size
    if unzipped > max_unzipped:
        problems.append(
            f"function and runtime layer unzip to {_mib(unzipped)} "
            f"(layer {_mib(layer.unzipped_size)}, function {_mib(function.unzipped_size)}), "
            f"over the limit of {options.max_unzipped_mib:g} MiB for code plus layers"
        )
    if problems:
        raise PackageError(
            "the package is too large for Lambda:\n  - " + "\n  - ".join(problems) + "\n"
            "Trim the function's requirements, or deploy it as a container image (up to 10 GB)."
        )


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _python_version(text: str) -> str:
    if text not in SUPPORTED_PYTHONS:
        raise argparse.ArgumentTypeError(
            f"unsupported Python {text!r}; choose one of {', '.join(SUPPORTED_PYTHONS)}"
        )
    return text


def _glibc_version(text: str) -> str:
    match = re.fullmatch(r"2\.(\d+)", text)
    if match is None or not 17 <= int(match.group(1)) <= 34:
        raise argparse.ArgumentTypeError(
            f"unsupported glibc {text!r}; choose 2.17 (any Lambda) up to 2.34 (provided.al2023); "
            "provided.al2 has 2.26"
        )
    return text


def _positive_mib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above zero: {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    default_arch = host_arch()
    parser = argparse.ArgumentParser(
        prog="lambda-runtime package",
        description=(
            "Build DIR/runtime-layer.zip (bootstrap + this runtime + its dependencies) and "
            "DIR/function.zip (the function folder + its requirements.txt) for the "
            "provided.al2 / provided.al2023 Lambda runtimes."
        ),
    )
    parser.add_argument("function_dir", metavar="FUNCTION_DIR", type=Path,
                        help="folder with the function's code (and optional requirements.txt)")
    parser.add_argument("--output", "-o", metavar="DIR", type=Path, required=True,
                        help="folder that receives the two zips")
    parser.add_argument("--arch", choices=sorted(ARCHES), default=default_arch,
                        required=default_arch is None,
                        help=f"Lambda architecture (default: this machine's, {default_arch})")
    parser.add_argument("--python", type=_python_version, default=None, metavar="X.Y",
                        help=f"target Python, {SUPPORTED_PYTHONS[0]} to {SUPPORTED_PYTHONS[-1]} "
                        f"(default: this interpreter's, {host_python()})")
    parser.add_argument("--glibc", type=_glibc_version, default="2.17", metavar="2.N",
                        help="newest manylinux glibc to accept wheels for (default 2.17, runs "
                        "on provided.al2 and al2023; al2023 allows up to 2.34)")
    parser.add_argument("--bootstrap", type=Path, default=None, metavar="FILE",
                        help="bootstrap script for the layer root (default: the runtime's own)")
    parser.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help="pip cache folder (default: pip's own)")
    parser.add_argument("--max-zipped-mb", type=_positive_mib, default=ZIPPED_LIMIT_MIB,
                        metavar="MIB", help="fail when a zip is larger (default: Lambda's 50)")
    parser.add_argument("--max-unzipped-mb", type=_positive_mib, default=UNZIPPED_LIMIT_MIB,
                        metavar="MIB",
                        help="fail when layer + function unzip larger (default: Lambda's 250)")
    parser.add_argument("--no-compile", action="store_true",
                        help="do not precompile .pyc files")
    return parser


def main(argv: Sequence[str]) -> int:
    args_list = list(argv)
    if args_list and args_list[0] == "package":
        args_list = args_list[1:]
    args = _parser().parse_args(args_list)
    python = args.python or host_python()
    if python not in SUPPORTED_PYTHONS:
        sys.stderr.write(
            f"lambda-runtime package: this interpreter is Python {python}; pass --python with "
            f"one of {', '.join(SUPPORTED_PYTHONS)}\n"
        )
        return 2
    bootstrap = args.bootstrap or default_bootstrap()
    if bootstrap is None:
        sys.stderr.write(
            "lambda-runtime package: error: cannot find the runtime's bootstrap script; "
            "pass --bootstrap FILE\n"
        )
        return 2
    options = BuildOptions(
        function_dir=args.function_dir,
        output=args.output,
        target=Target(arch=args.arch, python=python, glibc=args.glibc),
        bootstrap=bootstrap,
        cache_dir=args.cache_dir,
        max_zipped_mib=args.max_zipped_mb,
        max_unzipped_mib=args.max_unzipped_mb,
        compile=not args.no_compile,
    )
    progress = Progress(sys.stderr)
    try:
        result = build(options, progress)
    except PackageError as exc:
        progress.done()
        sys.stderr.write(f"lambda-runtime package: error: {exc}\n")
        return 1
    _print_summary(result, options)
    return 0


def _print_summary(result: BuildResult, options: BuildOptions) -> None:
    total_unzipped = result.layer.unzipped_size + result.function.unzipped_size
    rows = [
        (result.layer, result.layer_sha256),
        (result.function, result.function_sha256),
    ]
    out = sys.stdout
    out.write(f"Built for {options.target}:\n")
    for summary, digest in rows:
        out.write(
            f"  {summary.path!s:<40} {_mib(summary.zipped_size):>10} zipped "
            f"{_mib(summary.unzipped_size):>10} unzipped  sha256 {digest}\n"
        )
    largest = max(result.layer.zipped_size, result.function.zipped_size)
    out.write(
        f"  Lambda limits: largest zip {_mib(largest)} of {options.max_zipped_mib:g} MiB; "
        f"unzipped total {_mib(total_unzipped)} of {options.max_unzipped_mib:g} MiB\n"
    )
    if not result.precompiled:
        out.write("  .pyc not precompiled (no interpreter of the target version here)\n")
    runtime_name = "provided.al2023"
    out.write(
        "Deploy with, for example:\n"
        f"  aws lambda publish-layer-version --layer-name lambda-runtime "
        f"--zip-file fileb://{result.layer.path} --compatible-architectures {options.target.arch}\n"
        f"  aws lambda create-function --function-name my-function --runtime {runtime_name} "
        f"--architectures {options.target.arch} --handler app.handler "
        f"--zip-file fileb://{result.function.path} --role ROLE_ARN --layers PYTHON_LAYER_ARN "
        "RUNTIME_LAYER_VERSION_ARN\n"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
