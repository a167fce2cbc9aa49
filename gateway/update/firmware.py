"""The BMS firmware image format: a 36-byte header (version, hardware, CRC) and the payload. Pure.

Header, big-endian: magic ``b"BMSF"``, format 1 (u8), reserved (u8), version major, minor,
patch (3 x u16), payload length (u32), CRC-32 of the payload (u32, the zlib/IEEE 802.3
polynomial), hardware id (16 bytes ASCII, NUL padded). The bootloader (``gateway.sim.bootloader``
simulates one) checks the CRC and the version itself; the gateway checks the TUF hashes before
anything is sent and compares the header with the target's signed custom metadata.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from gateway.update.model import Version

__all__ = ["HEADER", "ImageHeader", "build_image", "image_problem", "parse_header"]

MAGIC = b"BMSF"
HEADER = struct.Struct(">4sBB3HII16s")


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """The parsed header of an image."""

    version: Version
    hardware: str
    payload_length: int
    payload_crc32: int


def build_image(payload: bytes, version: str, hardware: str) -> bytes:
    """Header + ``payload`` (what an operator's build produces).

    Raises:
        ValueError: the version is not ``major.minor.patch`` within u16, or the hardware id is
            longer than 16 ASCII characters.
    """
    parts = (*Version.parse(version).parts, 0, 0, 0)
    if any(p > 0xFFFF for p in parts[:3]) or len(Version.parse(version).parts) > 3:
        raise ValueError(f"version (={version}) must be major.minor.patch, each below 65536")
    hw = hardware.encode("ascii")
    if len(hw) > 16:
        raise ValueError(f"hardware (={hardware!r}) must be at most 16 ASCII characters")
    head = HEADER.pack(MAGIC, 1, 0, *parts[:3], len(payload), zlib.crc32(payload), hw)
    return head + payload


def parse_header(image: bytes) -> ImageHeader:
    """The header of ``image``.

    Raises:
        ValueError: too short, wrong magic or format.
    """
    if len(image) < HEADER.size:
        raise ValueError(f"image of {len(image)} bytes is shorter than its header")
    magic, fmt, _, major, minor, patch, length, crc, hw = HEADER.unpack_from(image)
    if magic != MAGIC or fmt != 1:
        raise ValueError("not a BMS image (bad magic or format)")
    return ImageHeader(
        version=Version.parse(f"{major}.{minor}.{patch}"),
        hardware=hw.rstrip(b"\0").decode("ascii", "replace"),
        payload_length=length,
        payload_crc32=crc,
    )


def image_problem(image: bytes) -> str | None:
    """Why the bootloader would reject ``image`` (length or CRC), or ``None`` if it is sound."""
    try:
        head = parse_header(image)
    except ValueError as e:
        return str(e)
    payload = image[HEADER.size :]
    if len(payload) != head.payload_length:
        return f"payload length {len(payload)} differs from the header's {head.payload_length}"
    if zlib.crc32(payload) != head.payload_crc32:
        return "payload CRC-32 does not match the header"
    return None
