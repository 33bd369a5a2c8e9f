"""Pack an RP2040 flash image as UF2, the format its USB boot loader takes by drag and drop.

    python3 uf2.py BOOT2 IMAGE OUT

BOOT2 is the 256-byte second-stage boot loader for the board's flash chip, ending in its
CRC-32 (every Pico SDK flash image begins with one); IMAGE is the firmware as a raw binary
linked at 0x10000100 (``arm-none-eabi-objcopy -O binary``). The UF2 block layout and the
RP2040 family id are from the UF2 specification (github.com/microsoft/uf2), the boot2 checksum
(CRC-32, polynomial 0x04C11DB7, not reflected, initial value 0xFFFFFFFF, no final XOR) from
the RP2040 datasheet, section 2.8.1.3.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

FLASH = 0x10000000
FAMILY_RP2040 = 0xE48BFF56
MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
FLAG_FAMILY = 0x00002000
PAYLOAD = 256


def boot2_crc(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def pack(boot2: bytes, image: bytes) -> bytes:
    """UF2 blocks of boot2 followed by the image, from the start of flash."""
    if len(boot2) != 256:
        raise ValueError(f"boot2 must be 256 bytes, not {len(boot2)}")
    if struct.unpack("<I", boot2[252:])[0] != boot2_crc(boot2[:252]):
        raise ValueError("boot2 checksum does not match: not an RP2040 boot stage 2")
    data = boot2 + image
    data += bytes(-len(data) % PAYLOAD)
    count = len(data) // PAYLOAD
    blocks = []
    for n in range(count):
        chunk = data[n * PAYLOAD:(n + 1) * PAYLOAD]
        head = struct.pack("<8I", MAGIC[0], MAGIC[1], FLAG_FAMILY, FLASH + n * PAYLOAD, PAYLOAD,
                           n, count, FAMILY_RP2040)
        blocks.append(head + chunk + bytes(476 - PAYLOAD) + struct.pack("<I", MAGIC[2]))
    return b"".join(blocks)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        out = pack(Path(argv[0]).read_bytes(), Path(argv[1]).read_bytes())
    except (OSError, ValueError) as exc:
        print(f"uf2: {exc}", file=sys.stderr)
        return 2
    Path(argv[2]).write_bytes(out)
    print(f"{argv[2]}: {len(out) // 512} blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
