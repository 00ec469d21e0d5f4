"""Safe zip extraction against crafted archives, and deterministic zip writing."""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.packaging.archive import (
    FIXED_DATE_TIME,
    UnsafeArchiveError,
    safe_extract_zip,
    write_deterministic_zip,
    zip_directory,
)

Entry = tuple[str, bytes, int]  # name, content (link target for links), st_mode


def file_entry(name: str, data: bytes = b"x", mode: int = 0o644) -> Entry:
    return (name, data, stat.S_IFREG | mode)


def link_entry(name: str, target: str) -> Entry:
    return (name, target.encode(), stat.S_IFLNK | 0o777)


def dir_entry(name: str) -> Entry:
    return (name.rstrip("/") + "/", b"", stat.S_IFDIR | 0o755)


def craft(path: Path, entries: list[Entry]) -> Path:
    """A zip whose entry names are stored verbatim, as a hostile archiver would write them."""
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the attack surface
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def tree(root: Path) -> list[str]:
    """Every path under root (links not followed), relative and sorted."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to dest that no extraction may touch."""
    o = tmp_path / "outside"
    o.mkdir()
    (o / "victim").write_text("original")
    return o


# ------------------------------------------------------------------------------ extraction: good


def test_extracts_files_folders_and_keeps_the_executable_bit(tmp_path: Path, dest: Path) -> None:
    archive = craft(
        tmp_path / "ok.zip",
        [
            file_entry("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
            dir_entry("python"),
            file_entry("python/mod.py", b"X = 1\n", 0o644),
            file_entry("python/deep/er/data.bin", b"\x00\x01" * 1000, 0o600),
        ],
    )
    safe_extract_zip(archive, dest)

    assert (dest / "bootstrap").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.access(dest / "bootstrap", os.X_OK)
    assert stat.S_IMODE((dest / "bootstrap").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "python/mod.py").stat().st_mode) == 0o644
    assert not os.access(dest / "python/mod.py", os.X_OK)
    assert (dest / "python/deep/er/data.bin").read_bytes() == b"\x00\x01" * 1000


def test_setuid_bits_are_dropped(tmp_path: Path, dest: Path) -> None:
    archive = craft(tmp_path / "suid.zip", [file_entry("tool", b"x", 0o4755)])
    safe_extract_zip(archive, dest)
    assert stat.S_IMODE((dest / "tool").stat().st_mode) == 0o755


def test_links_that_stay_inside_are_created_as_links(tmp_path: Path, dest: Path) -> None:
    archive = craft(
        tmp_path / "links.zip",
        [
            file_entry("lib/libfoo.so.1", b"elf"),
            link_entry("lib/libfoo.so", "libfoo.so.1"),
            link_entry("lib64", "lib"),
            link_entry("bin/python3", "../lib/libfoo.so"),  # through two links, still inside
        ],
    )
    safe_extract_zip(archive, dest)
    assert os.readlink(dest / "lib/libfoo.so") == "libfoo.so.1"
    assert os.readlink(dest / "lib64") == "lib"
    assert (dest / "bin/python3").read_bytes() == b"elf"


def test_archives_from_non_unix_systems_get_default_permissions(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "dos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("readme.txt", date_time=FIXED_DATE_TIME)
        info.create_system = 0  # MS-DOS: no Unix mode stored
        info.external_attr = 0x20
        zf.writestr(info, b"hello")
    safe_extract_zip(archive, dest)
    assert stat.S_IMODE((dest / "readme.txt").stat().st_mode) == 0o644


def test_an_existing_link_at_a_file_path_is_replaced_not_followed(
    tmp_path: Path, dest: Path, outside: Path
) -> None:
    # A previous layer left `f` as a link to a file outside; the new file must not go through it.
    (dest / "f").symlink_to(outside / "victim")
    archive = craft(tmp_path / "over.zip", [file_entry("f", b"new")])
    safe_extract_zip(archive, dest)
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == b"new"
    assert (outside / "victim").read_text() == "original"


# ------------------------------------------------------------------------------ extraction: bad


HOSTILE_NAMES = [
    pytest.param("/etc/cron.d/evil", "absolute", id="absolute"),
    pytest.param("//server/share/evil", "absolute", id="unc-like-absolute"),
    pytest.param("../evil", "'..'", id="dotdot"),
    pytest.param("a/../../evil", "'..'", id="dotdot-after-folder"),
    pytest.param("a/b/../../../evil", "'..'", id="dotdot-deep"),
    pytest.param("a/./../../evil", "'..'", id="dotdot-with-dot"),
    pytest.param("C:/Windows/evil", "drive letter", id="drive-slash"),
    pytest.param("C:evil", "drive letter", id="drive-relative"),
    pytest.param("..\\..\\evil", "backslash", id="backslash-traversal"),
    pytest.param("a\\b", "backslash", id="backslash"),
]


@pytest.mark.parametrize(("name", "reason"), HOSTILE_NAMES)
def test_hostile_names_are_rejected_and_named(
    tmp_path: Path, dest: Path, outside: Path, name: str, reason: str
) -> None:
    archive = craft(tmp_path / "bad.zip", [file_entry("fine.txt"), file_entry(name, b"pwned")])
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract_zip(archive, dest)
    assert repr(name) in str(err.value)
    assert reason in str(err.value)
    assert tree(dest) == []  # not even the harmless entry before it
    assert tree(outside) == ["victim"]


@pytest.mark.parametrize("names", [("b/", "b"), ("b//./", "b//.//")], ids=["plain", "non-normal"])
def test_a_folder_and_a_symlink_of_the_same_name_are_rejected_before_writing(
    tmp_path: Path, dest: Path, names: tuple[str, str]
) -> None:
    # Found by the hypothesis test below: the folder used to be created before the symlink
    # entry was refused.
    archive = craft(tmp_path / "both.zip", [dir_entry(names[0]), link_entry(names[1], "a")])
    with pytest.raises(UnsafeArchiveError, match="both as a folder and as a symlink"):
        safe_extract_zip(archive, dest)
    assert tree(dest) == []


@pytest.mark.parametrize(
    ("entries", "offender"),
    [
        pytest.param([link_entry("etc", "/etc")], "etc", id="absolute-target"),
        pytest.param([link_entry("up", "..")], "up", id="parent-target"),
        pytest.param([link_entry("a/b/up", "../../../outside/victim")], "a/b/up", id="deep"),
        pytest.param([link_entry("sneaky", "a/../../x")], "sneaky", id="lexical-dotdot"),
        # `here` points at the root, so `here/..` is the root's parent although it looks harmless.
        pytest.param(
            [link_entry("here", "."), link_entry("z", "here/..")], "z", id="chain-through-link"
        ),
        pytest.param(
            [link_entry("x", "y"), link_entry("y", "x")], "x", id="link-loop"
        ),
    ],
)
def test_links_pointing_outside_are_rejected(
    tmp_path: Path, dest: Path, outside: Path, entries: list[Entry], offender: str
) -> None:
    archive = craft(tmp_path / "links.zip", [file_entry("ok.txt"), *entries])
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract_zip(archive, dest)
    assert repr(offender) in str(err.value)
    assert tree(dest) == []
    assert tree(outside) == ["victim"]


@pytest.mark.parametrize("link_first", [True, False], ids=["link-first", "file-first"])
def test_writing_through_a_link_entry_is_rejected(
    tmp_path: Path, dest: Path, link_first: bool
) -> None:
    # Even a link that points inside may not be written through: the next entry could rely on it
    # after a later entry re-points it.
    link = link_entry("sub", "real")
    through = file_entry("sub/payload", b"pwned")
    pair = [link, through] if link_first else [through, link]
    entries = [dir_entry("real"), *pair]
    archive = craft(tmp_path / "through.zip", entries)
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract_zip(archive, dest)
    assert "'sub/payload'" in str(err.value)
    assert "symlink" in str(err.value)
    assert tree(dest) == []


def test_writing_through_an_existing_link_on_disk_is_rejected(
    tmp_path: Path, dest: Path, outside: Path
) -> None:
    (dest / "python").symlink_to(outside)
    archive = craft(tmp_path / "layer2.zip", [file_entry("python/victim", b"pwned")])
    with pytest.raises(UnsafeArchiveError, match=r"'python/victim'.*existing symlink"):
        safe_extract_zip(archive, dest)
    assert (outside / "victim").read_text() == "original"


def test_link_through_an_existing_link_on_disk_is_followed_when_checking(
    tmp_path: Path, dest: Path, outside: Path
) -> None:
    # `out` was left by an earlier layer; a new link `via -> out/victim` leads outside through it.
    (dest / "out").symlink_to(outside)
    archive = craft(tmp_path / "layer2.zip", [link_entry("via", "out/victim")])
    with pytest.raises(UnsafeArchiveError, match="'via'"):
        safe_extract_zip(archive, dest)
    assert not (dest / "via").exists()


def test_file_and_folder_with_the_same_name_are_rejected(tmp_path: Path, dest: Path) -> None:
    archive = craft(tmp_path / "clash.zip", [file_entry("a"), file_entry("a/b")])
    with pytest.raises(UnsafeArchiveError, match="'a/b'"):
        safe_extract_zip(archive, dest)
    assert tree(dest) == []


def test_same_name_as_file_and_folder_is_rejected(tmp_path: Path, dest: Path) -> None:
    archive = craft(tmp_path / "clash.zip", [file_entry("a"), dir_entry("a")])
    with pytest.raises(UnsafeArchiveError, match="both as a folder and as a file"):
        safe_extract_zip(archive, dest)
    assert tree(dest) == []


def test_not_a_zip_is_a_clear_error(tmp_path: Path, dest: Path) -> None:
    bogus = tmp_path / "layer.zip"
    bogus.write_bytes(b"this is not a zip")
    with pytest.raises(UnsafeArchiveError, match="not a valid zip"):
        safe_extract_zip(bogus, dest)


_COMPONENTS = st.sampled_from(["a", "b", "..", ".", "", "C:", "\\", "..\\x", "/"])


@st.composite
def _hostile_entries(draw: st.DrawFn) -> list[Entry]:
    entries: list[Entry] = []
    for _ in range(draw(st.integers(1, 5))):
        name = "/".join(draw(st.lists(_COMPONENTS, min_size=1, max_size=5)))
        kind = draw(st.sampled_from(["link", "dir", "file"]))
        if kind == "link":
            target = "/".join(draw(st.lists(_COMPONENTS, min_size=1, max_size=4)))
            entries.append(link_entry(name, target))
        elif kind == "dir":
            entries.append(dir_entry(name))
        else:
            entries.append(file_entry(name, b"data"))
    return entries


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=_hostile_entries())
def test_whatever_the_archive_nothing_lands_outside(tmp_path: Path, entries: list[Entry]) -> None:
    case = Path(os.path.realpath(tmp_path)) / hashlib.sha256(repr(entries).encode()).hexdigest()
    if case.exists():
        return  # hypothesis replayed an example already checked
    root = case / "dest"
    root.mkdir(parents=True)
    sibling = case / "x"  # the name that `..\x`-style tricks aim at
    archive = craft(case / "a.zip", entries)
    try:
        safe_extract_zip(archive, root)
    except UnsafeArchiveError:
        assert tree(root) == []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            real = Path(os.path.realpath(path))
            assert real == root or root in real.parents, f"{path} resolves to {real}"
    assert not sibling.exists()
    assert sorted(p.name for p in case.iterdir()) == ["a.zip", "dest"]


# ------------------------------------------------------------------------------ writing


def make_source(root: Path, *, reverse: bool = False, mtime: int = 1_700_000_000) -> Path:
    files = {
        "bootstrap": (b"#!/bin/sh\nexec python3 -m runtime\n", 0o755),
        "python/runtime/__init__.py": (b"", 0o600),
        "python/runtime/api.py": (b"def next(): ...\n" * 50, 0o664),
        "python/zz/last.txt": (b"z", 0o644),
        "python/aa/first.txt": (b"a", 0o640),
        "tool.sh": (b"#!/bin/sh\n", 0o700),
    }
    for name in sorted(files, reverse=reverse):
        data, mode = files[name]
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_content_gives_the_same_bytes(tmp_path: Path) -> None:
    # Different creation order, mtimes and permission details: only content and x-bit matter.
    a = zip_directory(make_source(tmp_path / "a"), tmp_path / "a.zip")
    b = zip_directory(make_source(tmp_path / "b", reverse=True, mtime=1), tmp_path / "b.zip")
    assert sha256(a.path) == sha256(b.path)
    assert a.entries == b.entries

    (tmp_path / "b" / "python/zz/last.txt").write_bytes(b"changed")
    c = zip_directory(tmp_path / "b", tmp_path / "c.zip")
    assert sha256(c.path) != sha256(a.path)


def test_written_entries_are_sorted_with_fixed_times_and_modes(tmp_path: Path) -> None:
    summary = zip_directory(make_source(tmp_path / "src"), tmp_path / "out.zip")
    with zipfile.ZipFile(summary.path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "python/" in names
    assert "python/runtime/" in names
    assert {i.date_time for i in infos} == {FIXED_DATE_TIME}
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes["bootstrap"] == stat.S_IFREG | 0o755
    assert modes["tool.sh"] == stat.S_IFREG | 0o755
    assert modes["python/runtime/__init__.py"] == stat.S_IFREG | 0o644
    assert modes["python/runtime/api.py"] == stat.S_IFREG | 0o644
    assert modes["python/"] == stat.S_IFDIR | 0o755
    file_bytes = sum(i.file_size for i in infos)
    assert summary.unzipped_size == file_bytes
    assert summary.zipped_size == summary.path.stat().st_size
    assert summary.entries == len(infos)


def test_round_trip_through_safe_extract(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    (src / "python/link.txt").symlink_to("zz/last.txt")
    summary = zip_directory(src, tmp_path / "out.zip")
    dest = tmp_path / "dest"
    safe_extract_zip(summary.path, dest)
    assert tree(dest) == tree(src)
    assert os.access(dest / "bootstrap", os.X_OK)
    assert not os.access(dest / "python/runtime/api.py", os.X_OK)
    assert os.readlink(dest / "python/link.txt") == "zz/last.txt"
    assert (dest / "python/runtime/api.py").read_bytes() == (
        src / "python/runtime/api.py"
    ).read_bytes()


def test_links_leaving_the_packaged_folder_are_refused(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src")
    (src / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="passwd"):
        zip_directory(src, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_explicit_file_list_rejects_unsafe_and_duplicate_names(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.'"):
        write_deterministic_zip(tmp_path / "o.zip", [("../f", f)])
    with pytest.raises(ValueError, match="duplicate"):
        write_deterministic_zip(tmp_path / "o.zip", [("a/f", f), ("a//f", f)])


# ------------------------------------------------------------------------------ extraction: size


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path, dest: Path) -> None:
    """300 MiB of zeros compress to a few hundred KiB: unpacked, it is over Lambda's 250 MiB
    for code plus layers. Break caught: no size check (it would fill the disk)."""
    bomb = tmp_path / "bomb.zip"
    entry = zipfile.ZipInfo("zeros", date_time=FIXED_DATE_TIME)
    entry.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(bomb, "w") as zf, zf.open(entry, "w") as out:
        block = bytes(1 << 20)
        for _ in range(300):
            out.write(block)
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(UnsafeArchiveError, match=r"over the limit of 262144000 bytes"):
        safe_extract_zip(bomb, dest)
    assert tree(dest) == []


def test_the_size_limit_counts_every_entry(tmp_path: Path, dest: Path) -> None:
    archive = craft(tmp_path / "a.zip", [file_entry(f"f{i}", b"x" * 600) for i in range(4)])
    with pytest.raises(UnsafeArchiveError, match="would unpack to 2400 bytes"):
        safe_extract_zip(archive, dest, max_size=2000)
    safe_extract_zip(archive, dest, max_size=2400)
    assert tree(dest) == ["f0", "f1", "f2", "f3"]
