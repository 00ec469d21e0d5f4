"""What the function may import: warnings, ``--strict-imports``, ``--isolated`` and ``--package``.

Our runtime is started through a small wrapper module (``_boot/_lambda_emulator_boot.py``, on the
runtime's ``PYTHONPATH``) that installs an import observer before it runs ``runtime.__main__``;
the shipped runtime is not changed. This module decides how the emulator starts it:

* by default the function sees the developer's virtual environment, and every module it takes
  from there is named once per environment (a warning line in its log);
* ``--strict-imports``: such an import fails (``ModuleNotFoundError``, so a handler module that
  needs it fails init with ``Runtime.ImportModuleError``, as on Lambda);
* ``--isolated``: a fresh interpreter without ``site`` (``-s -S``): on ``sys.path`` only the task
  root, the layers and a staged copy of what the runtime layer holds (the runtime core and
  orjson);
* ``--package DIR``: the zips ``lambda-runtime package`` wrote, unpacked the way Lambda does
  (``function.zip`` as the task root, ``runtime-layer.zip`` as the layer root), run isolated.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.packaging.package import FUNCTION_ZIP, LAYER_ZIP

from .config import ConfigError

if TYPE_CHECKING:
    from .config import EmulatorConfig

BOOT_DIR = Path(__file__).resolve().parent / "_boot"
# The wrapper's settings (it removes them before the function starts).
SETTING_PREFIX = "_LAMBDA_EMULATOR_"


class Unpacked:
    """``--package DIR`` unpacked: the task root (Lambda's ``/var/task``) in a temporary folder;
    the runtime layer zip is added in front of the layers (extracted like any layer zip)."""

    def __init__(self, config: EmulatorConfig) -> None:
        from runtime.packaging.archive import UnsafeArchiveError, safe_extract_zip

        assert config.package is not None
        folder = Path(config.package).resolve()
        self._temp = tempfile.TemporaryDirectory(prefix="lambda-emulator-task-")
        self.task_root = Path(self._temp.name)
        try:
            safe_extract_zip(folder / FUNCTION_ZIP, self.task_root)
        except (UnsafeArchiveError, OSError) as exc:
            self.cleanup()
            raise ConfigError(f"--package: cannot unpack {folder / FUNCTION_ZIP}: {exc}") from None
        self.config = dataclasses.replace(
            config,
            package=None,
            isolated=True,
            task_root=self.task_root,
            layers=[folder / LAYER_ZIP, *config.layers],
        )

    def cleanup(self) -> None:
        self._temp.cleanup()


class CoreStage:
    """What the runtime layer holds (the runtime core and orjson), staged once in a temporary
    folder for ``--isolated``: the same files ``lambda-runtime package`` puts under
    ``python/``, taken from this installation instead of downloaded."""

    def __init__(self) -> None:
        from runtime.packaging.core import EXCLUDED_DIRS, copy_core

        self._temp = tempfile.TemporaryDirectory(prefix="lambda-emulator-core-")
        self.path = Path(self._temp.name)
        copy_core(self.path / "runtime")
        spec = importlib.util.find_spec("orjson")
        assert spec is not None and spec.submodule_search_locations, "orjson is a dependency"
        source = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(source, self.path / "orjson", ignore=shutil.ignore_patterns(*EXCLUDED_DIRS))

    def cleanup(self) -> None:
        self._temp.cleanup()


def runtime_env(
    config: EmulatorConfig, layer_root: Path, stage: CoreStage | None
) -> dict[str, str]:
    """Variables that start our runtime through the wrapper (merged over the runtime's
    environment); empty for another runtime (``--runtime-cmd``)."""
    if config.runtime_cmd is not None:
        return {}
    user_path = config.env.get("PYTHONPATH", "")
    env = {f"{SETTING_PREFIX}IMPORTS": "strict" if config.strict_imports else "warn"}
    if config.isolated:
        # The runtime core comes from the runtime layer when there is one (--package), else
        # from the staged copy: never from this checkout, whose parent holds everything.
        packaged = layer_root / "python" / "runtime"
        core = layer_root / "python" if packaged.is_dir() else None
        if core is None:
            assert stage is not None, "CoreStage for --isolated"
            core = stage.path
        env["LAMBDA_RUNTIME_DIR"] = str(core)
        parts = [user_path, str(BOOT_DIR), str(core)]
    else:
        parts = [user_path, str(BOOT_DIR), str(Path(_runtime_dir()))]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


def _runtime_dir() -> str:
    import runtime

    return str(Path(runtime.__file__).resolve().parent.parent)
