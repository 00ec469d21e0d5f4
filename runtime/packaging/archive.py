"""Zip archives: safe extraction and deterministic writing.

Layers and function packages arrive as zips made by other people, so extraction validates every
entry before anything touches the disk: an archive is either unpacked completely inside the target
folder or not at all. Writing is deterministic (fixed timestamps, sorted entries, fixed
permissions) so the same input folder gives the same bytes and the same hash, which lets users and
CI compare builds and lets Lambda skip redundant layer versions.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from runtime.protocol import MAX_UNZIPPED_CODE_BYTES

__all__ = [
    "FIXED_DATE_TIME",
    "UnsafeArchiveError",
    "ZipSummary",
    "iter_tree",
    "safe_extract_zip",
    "write_deterministic_zip",
    "zip_directory",
]

# The earliest time a zip header can store; any fixed value works, this one is conventional.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Linux follows at most 40 links while resolving one path; beyond that it is ELOOP.
_MAX_LINK_HOPS = 40
_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY_CHUNK = 1024 * 1024


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the extraction folder (or the archive is unusable)."""


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


def _entry_mode(info: zipfile.ZipInfo) -> int:
    """Unix st_mode stored by the archiver, or 0 when the archive carries none."""
    if info.create_system != 3:  # 3 = Unix; other systems store no Unix mode
        return 0
    return (info.external_attr >> 16) & 0xFFFF


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = _entry_mode(info)
    return mode != 0 and stat.S_ISLNK(mode)


def _split_name(name: str) -> tuple[str, ...]:
    """The path components of an entry name, or UnsafeArchiveError when the name could escape."""
    if not name or name in ("/", "."):
        raise UnsafeArchiveError(f"archive entry {name!r} has an empty path")
    if "\x00" in name:
        raise UnsafeArchiveError(f"archive entry {name!r} contains a NUL byte")
    if "\\" in name:
        # Windows tools treat backslash as a separator, so `a\..\..\x` is a traversal there.
        raise UnsafeArchiveError(f"archive entry {name!r} contains a backslash")
    if _DRIVE.match(name):
        raise UnsafeArchiveError(f"archive entry {name!r} starts with a drive letter")
    if name.startswith("/"):
        raise UnsafeArchiveError(f"archive entry {name!r} is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"archive entry {name!r} contains a '..' component")
    if not parts:
        raise UnsafeArchiveError(f"archive entry {name!r} has an empty path")
    return parts


class _Resolver:
    """Resolves paths relative to the extraction root the way the kernel will after extraction.

    It follows both the symlinks the archive is about to create and those already on disk under
    the root, so a chain such as `up -> .` plus `z -> up/..` is seen for what it is (the parent of
    the root), which a purely lexical check of `up/..` would miss.
    """

    def __init__(self, root: Path, archive_links: dict[tuple[str, ...], str]) -> None:
        self.root = root
        self.archive_links = archive_links

    def _link_target(self, parts: tuple[str, ...]) -> str | None:
        if parts in self.archive_links:
            return self.archive_links[parts]
        on_disk = self.root.joinpath(*parts)
        if on_disk.is_symlink():
            return os.readlink(on_disk)
        return None

    def resolve(self, base: tuple[str, ...], target: str) -> tuple[str, ...] | None:
        """Components under root that `target`, read from directory `base`, points to.

        None means the path leaves the root (absolute target, or `..` above the root), or does
        not resolve (a loop).
        """
        if target.startswith("/") or "\\" in target or _DRIVE.match(target):
            return None
        current = list(base)
        pending = [p for p in target.split("/") if p not in ("", ".")]
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if not current:
                    return None
                current.pop()
                continue
            current.append(part)
            link = self._link_target(tuple(current))
            if link is None:
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                return None
            if link.startswith("/") or "\\" in link or _DRIVE.match(link):
                return None
            current.pop()
            pending = [p for p in link.split("/") if p not in ("", ".")] + pending
        return tuple(current)


@dataclass(frozen=True)
class _Planned:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    kind: str  # "dir", "file" or "link"
    link_target: str = ""


def _plan(zf: zipfile.ZipFile, root: Path) -> list[_Planned]:
    """Validate every entry; nothing is written here."""
    plan: list[_Planned] = []
    links: dict[tuple[str, ...], str] = {}
    kinds: dict[tuple[str, ...], str] = {}
    for info in zf.infolist():
        parts = _split_name(info.filename)
        if _is_symlink(info):
            raw = zf.read(info)
            try:
                target = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UnsafeArchiveError(
                    f"archive entry {info.filename!r} is a symlink with an undecodable target"
                ) from None
            if not target or "\x00" in target:
                raise UnsafeArchiveError(
                    f"archive entry {info.filename!r} is a symlink with an empty or invalid target"
                )
            if kinds.get(parts) == "dir":
                # Checked here, not when writing: the folder would already be on disk by then.
                raise UnsafeArchiveError(
                    f"archive entry {info.filename!r} appears both as a folder and as a symlink"
                )
            plan.append(_Planned(info, parts, "link", target))
            links[parts] = target
            kinds[parts] = "link"
        else:
            kind = "dir" if info.is_dir() else "file"
            plan.append(_Planned(info, parts, kind))
            kinds.setdefault(parts, kind)
        if (kinds[parts] == "dir") != (plan[-1].kind == "dir"):
            raise UnsafeArchiveError(
                f"archive entry {info.filename!r} appears both as a folder and as a file"
            )

    resolver = _Resolver(root, links)
    for item in plan:
        # Writing `a/b` when `a` is (or will be) a symlink would write wherever `a` points.
        for depth in range(1, len(item.parts)):
            prefix = item.parts[:depth]
            if kinds.get(prefix) == "link":
                raise UnsafeArchiveError(
                    f"archive entry {item.info.filename!r} would be written through the symlink "
                    f"entry {'/'.join(prefix)!r}"
                )
            on_disk = root.joinpath(*prefix)
            if on_disk.is_symlink():
                raise UnsafeArchiveError(
                    f"archive entry {item.info.filename!r} would be written through the existing "
                    f"symlink {str(on_disk)!r}"
                )
            if on_disk.exists() and not on_disk.is_dir():
                raise UnsafeArchiveError(
                    f"archive entry {item.info.filename!r} needs {str(on_disk)!r} to be a folder, "
                    "but a file is already there"
                )
            if kinds.get(prefix) == "file":
                raise UnsafeArchiveError(
                    f"archive entry {item.info.filename!r} needs {'/'.join(prefix)!r} to be a "
                    "folder, but the archive also has it as a file"
                )
        existing = root.joinpath(*item.parts)
        if existing.is_dir() and not existing.is_symlink() and item.kind != "dir":
            raise UnsafeArchiveError(
                f"archive entry {item.info.filename!r} would replace the folder {str(existing)!r}"
            )
        if item.kind == "dir" and existing.exists() and not existing.is_dir():
            raise UnsafeArchiveError(
                f"archive entry {item.info.filename!r} is a folder, but a file is already there"
            )
        if item.kind == "link" and resolver.resolve(item.parts[:-1], item.link_target) is None:
            raise UnsafeArchiveError(
                f"archive entry {item.info.filename!r} is a symlink to {item.link_target!r}, "
                "which points outside the extraction folder"
            )
    return plan


def _remove_existing(path: Path) -> None:
    """Replace rather than follow whatever sits at `path` (a link must never be written through)."""
    if path.is_symlink() or path.is_file():
        path.unlink()


def safe_extract_zip(
    zip_path: Path, dest: Path, *, max_size: int = MAX_UNZIPPED_CODE_BYTES
) -> None:
    """Extract `zip_path` into `dest`, refusing archives with any entry that could escape `dest`,
    and archives that would unpack to more than `max_size` bytes (Lambda's limit for code plus
    layers by default: a zip bomb is refused before anything is written, and zipfile never
    inflates an entry past the size its header declares).

    Rejected (UnsafeArchiveError, naming the entry, before anything is written): absolute paths,
    `..` components, drive letters and backslashes, symlinks whose target resolves outside
    `dest` (following the archive's other links and links already under `dest`), and entries
    that would be written through a symlink. Unix permission bits are kept (so `bootstrap` stays
    executable), minus set-id bits; the owner can always read and write what was extracted.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(dest))
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{zip_path} is not a valid zip archive: {exc}") from None
    with zf:
        declared = sum(info.file_size for info in zf.infolist())
        if declared > max_size:
            raise UnsafeArchiveError(
                f"{zip_path} would unpack to {declared} bytes, over the limit of {max_size} "
                "bytes (Lambda's 250 MiB for code plus layers)"
            )
        plan = _plan(zf, root)
        for item in plan:
            target = root.joinpath(*item.parts)
            mode = _entry_mode(item.info) & 0o777
            if item.kind == "dir":
                if target.is_symlink():
                    target.unlink()
                target.mkdir(parents=True, exist_ok=True)
                if mode:
                    target.chmod(mode | 0o700)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise UnsafeArchiveError(
                    f"archive entry {item.info.filename!r} would replace the folder {str(target)!r}"
                )
            _remove_existing(target)
            if item.kind == "link":
                os.symlink(item.link_target, target)
                continue
            # O_EXCL + O_NOFOLLOW: even a link created behind our back is not followed.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(target, flags, 0o600)
            with os.fdopen(fd, "wb") as out, zf.open(item.info) as src:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
            os.chmod(target, (mode or 0o644) | 0o600)


# ---------------------------------------------------------------------------------------------
# Deterministic writing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipSummary:
    """What a written archive holds: its path, number of entries and sizes in bytes."""

    path: Path
    entries: int
    zipped_size: int
    unzipped_size: int


def iter_tree(
    root: Path, *, exclude_dirs: Iterable[str] = (), exclude_suffixes: Iterable[str] = ()
) -> Iterator[tuple[str, Path]]:
    """(archive name, path) for every file and symlink under `root`, in sorted order.

    Symlinks to folders are listed as links, not descended into, so a link cycle cannot make the
    walk endless.
    """
    skip_dirs = frozenset(exclude_dirs)
    skip_suffixes = tuple(exclude_suffixes)

    def walk(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
        for child in sorted(folder.iterdir(), key=lambda p: p.name):
            name = f"{prefix}{child.name}"
            if child.is_symlink():
                yield name, child
            elif child.is_dir():
                if child.name not in skip_dirs:
                    yield from walk(child, f"{name}/")
            elif not (skip_suffixes and child.name.endswith(skip_suffixes)):
                yield name, child

    yield from walk(root, "")


def _zipinfo(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.create_system = 3
    info.external_attr = (mode & 0xFFFF) << 16
    if stat.S_ISDIR(mode):
        info.external_attr |= 0x10  # MS-DOS directory flag, for tools that ignore Unix modes
    return info


def _set_level(info: zipfile.ZipInfo, level: int) -> None:
    # ZipFile.open(ZipInfo, "w") ignores the archive's level; the attribute was renamed in 3.13.
    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", level)


def write_deterministic_zip(
    out: Path,
    files: Iterable[tuple[str, Path]],
    *,
    root: Path | None = None,
    compresslevel: int = 6,
    on_entry: Callable[[int, int, str], None] | None = None,
) -> ZipSummary:
    """Write `files` (archive name, source path) to `out` so that equal inputs give equal bytes.

    Entries are sorted by name, every timestamp is FIXED_DATE_TIME, files are 0644 or 0755 (by
    whether the source has any execute bit), folders 0755, and parent folders get their own
    entries. Symlinks are stored as links when `root` is given and their target resolves inside
    it; otherwise a symlink is an error, since the archive would point at the build machine.
    The bytes also depend on the zlib build, so compare hashes made with the same toolchain.
    `on_entry(index, total, name)` is called before each entry is written (1-based), for
    progress displays.
    """
    by_name: dict[str, Path] = {}
    for name, path in files:
        parts = _split_name(name)
        clean = "/".join(parts)
        if clean in by_name:
            raise ValueError(f"duplicate archive entry {clean!r}")
        by_name[clean] = path

    folders: set[str] = set()
    for name in by_name:
        components = name.split("/")
        for depth in range(1, len(components)):
            folders.add("/".join(components[:depth]) + "/")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    unzipped = 0
    names = sorted([*folders, *by_name])
    real_root = Path(os.path.realpath(root)) if root is not None else None
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for index, name in enumerate(names, 1):
            if on_entry is not None:
                on_entry(index, len(names), name)
            if name.endswith("/"):
                zf.writestr(_zipinfo(name, stat.S_IFDIR | 0o755), b"")
                continue
            src = by_name[name]
            if src.is_symlink():
                link = os.readlink(src)
                resolved = Path(os.path.realpath(src))
                if real_root is None or not (
                    resolved == real_root or real_root in resolved.parents
                ) or link.startswith("/"):
                    raise UnsafeArchiveError(
                        f"{src} is a symlink to {link!r}, outside the folder being packaged; "
                        "replace it with the file it points to"
                    )
                info = _zipinfo(name, stat.S_IFLNK | 0o777)
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, link.encode("utf-8"))
                unzipped += len(link.encode("utf-8"))
                continue
            st = src.stat()
            perm = 0o755 if st.st_mode & 0o111 else 0o644
            info = _zipinfo(name, stat.S_IFREG | perm)
            info.compress_type = zipfile.ZIP_DEFLATED
            _set_level(info, compresslevel)
            info.file_size = st.st_size
            with src.open("rb") as fin, zf.open(info, "w", force_zip64=st.st_size > 2**31) as fout:
                while chunk := fin.read(_COPY_CHUNK):
                    fout.write(chunk)
            unzipped += st.st_size
    os.replace(tmp, out)
    return ZipSummary(out, len(names), out.stat().st_size, unzipped)


def zip_directory(source: Path, out: Path, *, compresslevel: int = 6) -> ZipSummary:
    """Deterministic zip of everything under `source`, with names relative to it."""
    return write_deterministic_zip(out, iter_tree(source), root=source, compresslevel=compresslevel)
