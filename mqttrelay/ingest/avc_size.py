"""The picture size an H.264 sequence header says (pure, no I/O).

A publisher's onMetaData names the size of its first picture only; the other
tracks of a multitrack publish (ingest/rtmp/tracks.py) get theirs from the
decoder configuration record's first SPS: macroblocks less the cropping.
"""

from __future__ import annotations

_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_MAX_SIZE = 16384


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("the SPS ends early")
            value = value << 1 | (self.data[byte] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("an exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def avc_size(record: bytes) -> tuple[int, int] | None:
    """(width, height) from an AVCDecoderConfigurationRecord, or None."""
    if len(record) < 8 or record[0] != 1 or record[5] & 0x1F == 0:
        return None
    size = int.from_bytes(record[6:8], "big")
    try:
        return sps_size(_unescape(record[8 : 8 + size]))
    except ValueError:
        return None


def sps_size(sps: bytes) -> tuple[int, int] | None:
    """(width, height) of an SPS NAL unit (header byte included, emulation
    prevention removed); raises ValueError when it is cut short."""
    if not sps or sps[0] & 0x1F != 7:
        return None
    bits = _Bits(sps[1:])
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue()  # bit depths
        bits.ue()
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        for _ in range(min(bits.ue(), 255)):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        unit_x = 1 if chroma in (0, 3) else 2
        unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if not (0 < width <= _MAX_SIZE and 0 < height <= _MAX_SIZE):
        return None
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + bits.se() + 256) % 256
        last = next_scale or last


def _unescape(nal: bytes) -> bytes:
    """The NAL unit without its emulation prevention bytes (00 00 03)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")
