"""The size cap holds while reading from a ``local`` mount: a file over ``max_size_mb`` is refused
with the size reason without being read whole.

What the process read is measured by the kernel: ``rchar`` of ``/proc/self/io`` counts every byte
that ``read``-family system calls returned to this process (all threads). The file is sparse and
64 MiB long, so reading it whole would show as 64 MiB there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.requires_plugins("attachments", "storage_local", "smtp", "auth_token"),
    pytest.mark.skipif(
        not Path("/proc/self/io").exists(), reason="needs /proc/self/io (Linux) to count reads"
    ),
]

CAP_MB = 0.1
FILE_SIZE = 64 * 1024 * 1024


@pytest.fixture
def attachments_settings(tmp_path: Path) -> dict[str, Any]:
    return {"timeout": 2.0, "disk_cache_dir": str(tmp_path / "cache"), "max_size_mb": CAP_MB}


def bytes_read_so_far() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


async def test_a_file_over_the_cap_is_refused_without_reading_it_whole(mail, tmp_path):
    base = tmp_path / "mount"
    base.mkdir()
    with (base / "huge.bin").open("wb") as huge:
        huge.write(b"%PDF-1.7 sparse\n")
        huge.truncate(FILE_SIZE)
    (base / "small.pdf").write_bytes(b"%PDF-1.7 small")
    await mail.mount("HOME", "local", {"base_path": str(base)})

    before = bytes_read_so_far()
    await mail.deliver(
        mail.message("big", {"filename": "huge.bin", "storage_path": "HOME:huge.bin"})
    )
    read = bytes_read_so_far() - before
    assert await mail.history("big") == [
        ("error", "Attachment fetch failed for huge.bin: larger than the limit of 0.1 MB")
    ]
    # cap + 1 bytes from the file, plus whatever else the process read meanwhile (the database)
    assert read < 8 * 1024 * 1024, read

    await mail.deliver(mail.message("ok", {"filename": "s.pdf", "storage_path": "HOME:small.pdf"}))
    assert mail.attachments_of() == [("s.pdf", "application/pdf", b"%PDF-1.7 small")]
