"""Layers given as folders and as zips, unpacked in order into the runtime's layer root."""

from __future__ import annotations

import zipfile

import pytest
from emulator_support import LAYER_SRC

from runtime.emulator import ConfigError, Emulator


def _zip(path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)


def test_layer_folder(emulator):
    fn = emulator("layered.handler", layers=[LAYER_SRC])
    result = fn.invoke({})
    assert result.ok, result.raw
    assert result.payload["from_layer"] == "hello from layer"


def test_layer_zip_and_override_order(emulator, tmp_path):
    first = tmp_path / "first.zip"
    second = tmp_path / "second.zip"
    _zip(first, {"python/layer_lib.py": 'VALUE = "first"\n'})
    _zip(second, {"python/layer_lib.py": 'VALUE = "second"\n'})
    fn = emulator("layered.handler", layers=[first, second])
    assert fn.invoke({}).payload["from_layer"] == "second"


def test_site_packages_layout_and_folder_plus_zip(make, tmp_path):
    import sys

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    pkg = tmp_path / "pkg.zip"
    _zip(pkg, {f"python/lib/{version}/site-packages/layer_lib.py": 'VALUE = "site"\n'})
    fn = make("layered.handler", layers=[pkg])
    result = fn.invoke({})
    assert result.payload["from_layer"] == "site", result.raw
    # A folder stacked on top of a zip wins, as the later layer.
    fn2 = make("layered.handler", layers=[pkg, LAYER_SRC])
    assert fn2.invoke({}).payload["from_layer"] == "hello from layer"


def test_unsafe_zip_is_refused(tmp_path):
    evil = tmp_path / "evil.zip"
    _zip(evil, {"../escape.py": "x = 1\n"})
    with pytest.raises(ConfigError, match="escape"):
        Emulator("layered.handler", layers=[evil], task_root=tmp_path).start()
    assert not (tmp_path.parent / "escape.py").exists()


def test_bad_layer_arguments(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Emulator("a.b", layers=[tmp_path / "missing.zip"], task_root=tmp_path)
    text = tmp_path / "layer.txt"
    text.write_text("x")
    with pytest.raises(ConfigError, match=r"neither a folder nor a \.zip"):
        Emulator("a.b", layers=[text], task_root=tmp_path)
