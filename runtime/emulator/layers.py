"""Layers: folders and zips unpacked in order into one layer root (Lambda's ``/opt``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .config import ConfigError


class LayerRoot:
    """The folder handed to the runtime as ``LAMBDA_RUNTIME_LAYER_ROOT``.

    Always a folder the emulator controls (an empty one without layers) so the host's own
    ``/opt`` never leaks into the function. A single folder layer is used in place (no copy, and
    edits show up on the next cold start); anything else is merged into a temporary folder,
    later layers overwriting earlier ones like Lambda does.
    """

    def __init__(self, layers: Sequence[Path]) -> None:
        self._temp: tempfile.TemporaryDirectory[str] | None = None
        if len(layers) == 1 and layers[0].is_dir():
            self.path = layers[0]
            return
        self._temp = tempfile.TemporaryDirectory(prefix="lambda-emulator-opt-")
        self.path = Path(self._temp.name)
        try:
            for layer in layers:
                if layer.is_dir():
                    shutil.copytree(layer, self.path, symlinks=True, dirs_exist_ok=True)
                else:
                    _extract(layer, self.path)
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self) -> None:
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None


def _extract(zip_path: Path, dest: Path) -> None:
    from runtime.packaging.archive import UnsafeArchiveError, safe_extract_zip

    try:
        safe_extract_zip(zip_path, dest)
    except UnsafeArchiveError as exc:
        raise ConfigError(f"--layer {zip_path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--layer {zip_path}: cannot extract: {exc}") from None
