import pytest

from dockpool.errors import InvalidInput
from dockpool.units import format_size, human_size, parse_size


@pytest.mark.parametrize(
    "text, expected",
    [
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("512MB", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("2g", 2 * 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("64k", 64 * 1024),
        ("1t", 1024**4),
        ("1048576", 1048576),
        (" 3 g ", 3 * 1024**3),
        (4096, 4096),
        (None, None),
        ("", None),
    ],
)
def test_parse_size_accepts(text, expected):
    assert parse_size(text, "memory") == expected


@pytest.mark.parametrize("text", ["512x", "m", "-1g", "1e3m", "12 34", "0", "0m", 0, -5, True, "1gg", "5 petabytes"])
def test_parse_size_rejects_naming_the_field(text):
    with pytest.raises(InvalidInput) as info:
        parse_size(text, "disk_limit")
    assert info.value.field == "disk_limit"
    assert "disk_limit" in info.value.message


@pytest.mark.parametrize(
    "size, text", [(512 * 1024**2, "512m"), (2 * 1024**3, "2g"), (1536 * 1024**2, "1536m"), (1000, "1000"), (None, None)]
)
def test_format_size_is_exact_and_short(size, text):
    assert format_size(size) == text
    if size is not None:
        assert parse_size(text, "x") == size


def test_human_size():
    assert [human_size(n) for n in (None, 512, 1536, 25275305984, 5 * 1024**4)] == ["-", "512 B", "1.5 KiB", "23.5 GiB", "5.0 TiB"]


