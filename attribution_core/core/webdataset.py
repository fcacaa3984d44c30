"""Training images inside webdataset tar shards, as ``img2dataset`` writes them.

A shard ``00000.tar`` holds samples named by a key: ``000000012.jpg`` (the image), ``000000012.txt`` (its
caption) and ``000000012.json`` (``{"url": ..., "caption": ..., "key": ...}``). A store names such an image
``00000.tar/000000012.jpg`` — the shard's path, then the member — so the same relative-path rules, thumbnails and
image endpoints work for shards as for folders, and the image is read straight out of the tar.

Reading uses the standard library's ``tarfile`` (an uncompressed tar is a sequence of headers and contents): a
shard's member table (name -> offset, size) is read once per shard version and kept, so reading one image is a
seek and a read, not a scan of the shard. The ``webdataset`` package is built for streaming whole shards in
training loops and has no random access by member, which thumbnails and the service need.
"""

from __future__ import annotations

import functools
import json
import posixpath
import tarfile
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from .errors import InputImageError
from .paths import display_path

#: Suffix of a webdataset shard.
SHARD_SUFFIX = ".tar"


@dataclass(frozen=True)
class Sample:
    """One image of a shard with what the shard says about it."""

    member: str  # "000000012.jpg"
    caption: str | None
    url: str | None


def is_shard(path: Path) -> bool:
    """A ``.tar`` file."""
    return path.suffix.lower() == SHARD_SUFFIX and path.is_file()


def split_member(path: Path | str) -> tuple[Path, str] | None:
    """``…/00000.tar/000000012.jpg`` -> (the shard, the member), when a parent of ``path`` is a shard file."""
    path = Path(path)
    for parent in path.parents:
        if parent.suffix.lower() == SHARD_SUFFIX and parent.is_file():
            return parent, path.relative_to(parent).as_posix()
    return None


def odd_member(member: tarfile.TarInfo, seen: Container[str]) -> str | None:
    """Why a member is not read as a training image (None when it is): only regular files under a clean relative
    name — no absolute name, no ``..`` or ``.`` part, no name met twice — so that a member's stored path never
    leads outside its shard and two rows never share one path."""
    name = member.name
    if member.issym() or member.islnk():
        return "a link inside the shard: not followed"
    if member.issparse():
        return "a sparse file inside the shard: not read (store the image whole)"
    if not member.isfile():
        return "not a regular file inside the shard"
    if name.startswith("/") or "\\" in name or posixpath.normpath(name) != name or name.startswith("../"):
        return "an unsafe member name (absolute, or with '..' or '.' parts): not read"
    if name in seen:
        return "a second member of the same name: not read"
    return None


@functools.lru_cache(maxsize=64)
def _table(shard: str, stamp: tuple[int, int]) -> tuple[dict[str, tuple[int, int]], tuple[tuple[str, str], ...]]:
    """member -> (data offset, size) of a shard's regular files with clean names, and (member, reason) of the others
    (cached per shard version)."""
    table: dict[str, tuple[int, int]] = {}
    odd: list[tuple[str, str]] = []
    try:
        with tarfile.open(shard, mode="r:") as tar:
            for m in tar:
                reason = odd_member(m, table)
                if reason is None:
                    table[m.name] = (m.offset_data, m.size)
                elif not m.isdir():
                    odd.append((m.name, reason))
    except (tarfile.TarError, OSError) as exc:
        raise InputImageError(f"{display_path(Path(shard))}: not a readable tar shard ({exc})") from None
    return table, tuple(odd)


def member_table(shard: Path) -> dict[str, tuple[int, int]]:
    """The shard's member table (read once per version of the file): its regular files with clean names.

    Raises:
        InputImageError: the file is not an uncompressed tar.
    """
    st = shard.stat()
    return _table(str(shard), (st.st_size, st.st_mtime_ns))[0]


def odd_members(shard: Path, image_suffixes: frozenset[str]) -> list[tuple[str, str]]:
    """(member, reason) of every member with an image suffix that is not read (links, unsafe or repeated names)."""
    st = shard.stat()
    odd = _table(str(shard), (st.st_size, st.st_mtime_ns))[1]
    return [(name, why) for name, why in odd if f".{name.rpartition('.')[2].lower()}" in image_suffixes]


def read_member(shard: Path, member: str) -> bytes:
    """The bytes of one member of a shard.

    Raises:
        InputImageError: no such member, or the shard cannot be read.
    """
    table = member_table(shard)
    if member not in table:
        raise InputImageError(f"{display_path(shard / member)}: no such file in the shard")
    offset, size = table[member]
    with shard.open("rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise InputImageError(f"{display_path(shard / member)}: the shard is truncated")
    return data


def shard_images(shard: Path, image_suffixes: frozenset[str]) -> list[str]:
    """The image members of a shard, in member order (listing them reads only the member table)."""
    out = []
    for member in member_table(shard):
        _, dot, suffix = member.rpartition(".")
        if dot and f".{suffix.lower()}" in image_suffixes:
            out.append(member)
    return out


def shard_samples(shard: Path, image_suffixes: frozenset[str]) -> list[Sample]:
    """The images of a shard in member order, each with the caption (``.txt``, else the JSON's ``caption``) and
    the URL (the JSON's ``url``) that ``img2dataset`` stored beside it."""
    table = member_table(shard)
    samples = []
    for member in shard_images(shard, image_suffixes):
        stem = member.rpartition(".")[0]
        meta: dict = {}
        if f"{stem}.json" in table:
            try:
                meta = json.loads(read_member(shard, f"{stem}.json"))
            except ValueError:
                meta = {}
            meta = meta if isinstance(meta, dict) else {}
        caption = meta.get("caption")
        if f"{stem}.txt" in table:
            caption = read_member(shard, f"{stem}.txt").decode("utf-8", "replace").strip()
        url = meta.get("url")
        samples.append(Sample(member, str(caption) if caption else None, str(url) if url else None))
    return samples


def shard_metadata(files: list[Path], image_suffixes: frozenset[str]) -> dict[Path, Sample]:
    """For each file inside a shard (``SHARD.tar/MEMBER``), its :class:`Sample`; other files are left out."""
    by_shard: dict[Path, list[Path]] = {}
    for f in files:
        found = split_member(f)
        if found is not None:
            by_shard.setdefault(found[0], []).append(f)
    out: dict[Path, Sample] = {}
    for shard, members in by_shard.items():
        samples = {s.member: s for s in shard_samples(shard, image_suffixes)}
        for f in members:
            sample = samples.get(f.relative_to(shard).as_posix())
            if sample is not None:
                out[f] = sample
    return out
