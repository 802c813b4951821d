"""A pydicom decoding plugin: JPEG 2000 frames through Pillow at reduced resolution.

A JPEG 2000 codestream is a wavelet pyramid: Pillow's ``reduce = n`` (set before ``load()``)
makes OpenJPEG skip the ``n`` finest levels and return the picture 2**n times smaller on each
side, with work and memory in proportion (a 5000 x 5000 16-bit frame: 3.6 s / 320 MB in full,
~0.9 s at n = 1). ``ml_core.imaging`` shrinks every picture to ~2048 px right after decoding, so
it asks for the largest reduction that still leaves at least that many pixels.

The decode is pydicom's own Pillow plugin (``pydicom.pixels.decoders.pillow._decode_frame``,
pydicom 3.0) with that one change, so the precision from the codestream, the sign handling
(PixelRepresentation and the codestream's own signedness) and the bit shifts are pydicom's; its
decode runner checks the decoded length against the dataset's Rows x Columns, which the caller
sets to the reduced size. Used only when asked for by name with a ``j2k_reduce`` option.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.pixels.decoders import pillow as _pydicom_pillow

LABEL = "deepmed_pillow_reduced"
DECODER_DEPENDENCIES = {
    uid.JPEG2000Lossless: ("numpy", "pillow>=10.0"),
    uid.JPEG2000: ("numpy", "pillow>=10.0"),
}


def is_available(transfer_syntax: str) -> bool:
    return transfer_syntax in DECODER_DEPENDENCIES and _pydicom_pillow.is_available(transfer_syntax)


def reduced_size(width: int, height: int, reduce: int) -> tuple[int, int]:
    """The size Pillow gives a frame decoded with ``reduce`` (Jpeg2KImageFile.load's rounding)."""
    power = 1 << reduce
    return (width + (power >> 1)) // power, (height + (power >> 1)) // power


def _decode_frame(src: bytes, runner) -> bytes:
    reduce = runner.get_option("j2k_reduce", None)
    if not reduce:
        # Never a fallback for other decodes (pydicom tries every available plugin when one fails).
        raise ValueError("the reduced-resolution JPEG 2000 decoder is only used when asked for")
    image = Image.open(BytesIO(src), formats=("JPEG2000",))
    image.reduce = reduce
    image.load()
    if image.size != (runner.columns, runner.rows):
        raise ValueError(f"the reduced frame is {image.size}, not {(runner.columns, runner.rows)}")

    # From here on as pydicom's Pillow plugin (JPEG 2000 branch).
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    if 0 < precision <= 8:
        runner.set_option("bits_allocated", 8)
    elif 8 < precision <= 16:
        if runner.samples_per_pixel > 1:
            raise ValueError(f"Pillow cannot decode {precision}-bit multi-sample data correctly")
        runner.set_option("bits_allocated", 16)
    else:
        raise ValueError("only (0028,0101) 'Bits Stored' values of up to 16 are supported")
    buffer = bytearray(image.tobytes())  # so the array is writeable
    del image
    dtype = runner.pixel_dtype
    arr = np.frombuffer(buffer, dtype=f"u{dtype.itemsize}")
    is_signed = runner.pixel_representation
    if runner.get_option("apply_j2k_sign_correction", False):
        is_signed = runner.get_option("j2k_is_signed", is_signed)
    if is_signed and runner.pixel_representation == 1:
        arr = arr.view(dtype)
        arr -= np.int32(2 ** (runner.bits_allocated - 1))
    if bit_shift := (runner.bits_allocated - precision):
        np.right_shift(arr, bit_shift, out=arr)
    return arr.tobytes()
