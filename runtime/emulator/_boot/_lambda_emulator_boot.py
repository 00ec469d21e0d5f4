"""``python -m _lambda_emulator_boot HANDLER``: how the emulator starts our runtime.

Emulator tooling, never deployed: it is put on the runtime process's ``PYTHONPATH`` (this folder
holds nothing else) and, before running ``runtime.__main__`` exactly as ``python -m runtime``
would, it

* installs an import observer (see :class:`ImportObserver`) that notices modules the function
  imports from outside the task root, the layers, the runtime core and the standard library,
  and warns about each once, or (strict) refuses them with ``ModuleNotFoundError``;
* with a debug address, starts debugpy listening on it (optionally waiting for the attach).

Its settings come in ``_LAMBDA_EMULATOR_*`` variables, removed before the function starts, so
the function sees the same environment as without this wrapper. Standard library only, and
cheap: it runs on every cold start of every environment.
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_PREFIX = "_LAMBDA_EMULATOR_"
# The runtime's own dependency, shipped in its layer: the function may import it on Lambda too.
_RUNTIME_DEPENDENCIES = frozenset({"orjson", "runtime"})


def _under(path: str, roots: "tuple[str, ...]") -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def _real(path: str) -> str:
    return os.path.realpath(path) if path else ""


class ImportObserver:
    """A meta path finder that asks the other finders, then judges where the module came from.

    Allowed: the task root, the layer root, the runtime core, the standard library (but not its
    site-packages), built-in and frozen modules, and the runtime's own dependencies. Modules
    imported by the runtime core (its optional parts, e.g. OpenTelemetry when configured) and by
    what it so imported are the runtime's business, not the function's: they are let through.
    """

    def __init__(self, strict: bool, allowed: "tuple[str, ...]", stdlib: "tuple[str, ...]",
                 sites: "tuple[str, ...]", runtime_dir: str) -> None:
        self.strict = strict
        self.allowed = allowed
        self.stdlib = stdlib
        self.sites = sites
        self.runtime_dir = runtime_dir
        # The runtime core, and the folders of modules it (or one of them, or the function for
        # a package already reported) imported: their own imports are not the function's.
        self.excused: tuple[str, ...] = (runtime_dir,)
        self.warned: set[str] = set()
        self.venv = sys.prefix != sys.base_prefix
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if self._busy:
            return None
        self._busy = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy = False
        if spec is None:
            return None
        origin = spec.origin
        if not origin or not spec.has_location:
            # Built-in, frozen, or a namespace package (its modules are judged one by one).
            return spec
        self._judge(fullname, os.path.abspath(origin))
        return spec

    def _inside(self, path: str) -> bool:
        """Where a deployed function finds modules too (or what the runtime brought)."""
        if _under(path, self.allowed) or _under(path, self.excused):
            return True
        return _under(path, self.stdlib) and not _under(path, self.sites)

    def _judge(self, fullname: str, origin: str) -> None:
        top = fullname.partition(".")[0]
        if top in _RUNTIME_DEPENDENCIES or self._inside(origin):
            return
        real = _real(origin)
        if real != origin and self._inside(real):
            return
        importer = _importer()
        home = _package_home(fullname, real)
        # What it imports in turn is its own business: a warning about the package the function
        # asked for is the one to act on (its requirements come along when it is installed).
        self.excused += (home,)
        if importer and _under(importer, self.excused):
            return  # imported by the runtime, or by a package already excused or reported
        if top in self.warned:
            return
        self.warned.add(top)
        where = "your virtual environment" if self.venv and _under(real, (_real(sys.prefix),)) \
            else f"outside the function ({os.path.dirname(home)})"
        message = (
            f"`{top}` came from {where}; on Lambda it must be in the function package or a layer"
        )
        if self.strict:
            raise ModuleNotFoundError(
                f"No module named '{top}': {message} (--strict-imports)", name=fullname
            )
        sys.stderr.write(f"lambda-runtime emulator: {message} [{real}]\n")
        sys.stderr.flush()


def _package_home(fullname: str, origin: str) -> str:
    """The folder (or file) of the top-level package ``fullname`` belongs to."""
    home = origin
    depth = fullname.count(".") + (1 if os.path.basename(origin).startswith("__init__.") else 0)
    for _ in range(depth):
        home = os.path.dirname(home)
    return home


def _importer() -> str:
    """The file whose code asked for the import (importlib's own frames skipped)."""
    frame = sys._getframe(3)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith("<frozen importlib") and os.sep + "importlib" + os.sep not in name:
            return _real(name)
        frame = frame.f_back  # type: ignore[assignment]
    return ""


def _both(paths: "Iterable[str]") -> "tuple[str, ...]":
    """Each folder as given and with its links resolved (a module's origin may be either)."""
    result: dict[str, None] = {}
    for path in paths:
        if path:
            result[os.path.abspath(path)] = None
            result[_real(path)] = None
    return tuple(result)


def _install_observer(strict: bool, extra_allowed: "list[str]") -> None:
    runtime_dir = _real(os.path.join(os.environ.get("LAMBDA_RUNTIME_DIR", ""), "runtime"))
    roots = [
        os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd(),
        os.environ.get("LAMBDA_RUNTIME_LAYER_ROOT", ""),
        runtime_dir,
        os.path.dirname(os.path.abspath(__file__)),
        *extra_allowed,
    ]
    stdlib = {os.path.dirname(os.__file__)}
    stdlib.update(p for p in sys.path if p.endswith("lib-dynload"))
    sites = {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    observer = ImportObserver(strict, _both(roots), _both(stdlib), _both(sites), runtime_dir)
    sys.meta_path.insert(0, observer)


def _start_debugger(address: str, debugpy_home: str) -> None:
    host, _, rest = address.partition(":")
    port, _, wait = rest.partition(":")
    added = bool(debugpy_home) and debugpy_home not in sys.path
    if added:
        # --isolated: debugpy is tooling, not the function's; it is found where the emulator's is.
        sys.path.append(debugpy_home)
    import time

    import debugpy  # type: ignore[import-not-found, unused-ignore]

    # The environment this one replaces may still hold the port for a moment.
    give_up = time.monotonic() + 3
    while True:
        try:
            debugpy.listen((host, int(port)))
            break
        except Exception as exc:  # debugpy raises RuntimeError (or OSError) for a busy port
            if time.monotonic() > give_up:
                sys.stderr.write(
                    f"lambda-runtime emulator: debugpy cannot listen on {host}:{port}: {exc}\n"
                )
                return
            time.sleep(0.05)
    if added:
        sys.path.remove(debugpy_home)
    sys.stderr.write(f"lambda-runtime emulator: debugpy listening on {host}:{port}"
                     + (", waiting for the debugger to attach\n" if wait else "\n"))
    sys.stderr.flush()
    if wait:
        debugpy.wait_for_client()


def main() -> None:
    settings = {k[len(_PREFIX):]: os.environ.pop(k) for k in list(os.environ)
                if k.startswith(_PREFIX)}
    # `-m` put the task root first on sys.path: keep it out while this wrapper imports, so a
    # user file named like a standard module cannot stand in for it; runtime.__main__ finds it
    # where `python -m runtime` would.
    cwd_first = bool(sys.path) and sys.path[0] == os.getcwd()
    if cwd_first:
        del sys.path[0]
    import runpy

    allowed = [p for p in settings.get("ALLOW", "").split(os.pathsep) if p]
    debug = settings.get("DEBUG")
    if debug:
        _start_debugger(debug, settings.get("DEBUGPY", ""))
    imports = settings.get("IMPORTS", "warn")
    if imports != "off":
        _install_observer(imports == "strict", allowed)
    # This folder was on PYTHONPATH only to start this module: the function does not see it.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p) != here]
    if cwd_first:
        sys.path.insert(0, os.getcwd())
    sys.argv[0] = "runtime"
    runpy.run_module("runtime", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
