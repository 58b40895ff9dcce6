"""banet_vo.data.compressed_image: image_transport's format strings, sizes read from headers without
decoding, lossless PNG round trips (grey, colour, 16-bit), JPEG within its loss, the channel order a
publisher names, and clear refusals (compressedDepth, 16-bit colour, bytes that are no image)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from banet_vo.data import compressed_image as ci
from PIL import Image

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (37, 53), dtype=np.uint8)


def _smooth_rgb(height: int = 96, width: int = 128) -> np.ndarray:
    """A camera-like image (smooth gradients and a few edges) that JPEG compresses with a small loss."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], axis=2)
    image[20:40, 30:70] = (200, 40, 90)
    return image.astype(np.uint8)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bgr8; jpeg compressed bgr8", ci.CompressedFormat("jpeg", "bgr8", "bgr8")),
        ("rgb8; png compressed bgr8", ci.CompressedFormat("png", "rgb8", "bgr8")),
        ("mono8; jpeg compressed ", ci.CompressedFormat("jpeg", "mono8", None)),
        ("mono16; png compressed ", ci.CompressedFormat("png", "mono16", None)),
        ("jpeg", ci.CompressedFormat("jpeg")),
        ("JPG", ci.CompressedFormat("jpeg")),
        (" png ", ci.CompressedFormat("png")),
        ("rgb8; jpeg compressed rgb8", ci.CompressedFormat("jpeg", "rgb8", "rgb8")),
    ],
)
def test_format_strings_as_image_transport_and_other_publishers_write_them(text, expected):
    assert ci.parse_format(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "rgb8;", "16UC1; compressedDepth png", "32FC1; compressedDepth"])
def test_formats_without_a_codec_and_the_depth_transport_are_refused(text):
    with pytest.raises(ValueError, match=r"CompressedImage\.format"):
        ci.parse_format(text)


def test_format_string_round_trips_through_the_parser():
    assert ci.parse_format(ci.format_string("rgb8", "jpeg")) == ci.CompressedFormat("jpeg", "rgb8", "bgr8")
    assert ci.parse_format(ci.format_string("mono8", "png")) == ci.CompressedFormat("png", "mono8", None)


@pytest.mark.parametrize(("image", "encoding"), [(GREY, "mono8"), (RGB, "bgr8")])
def test_png_is_lossless_and_colour_decodes_in_opencvs_bgr_order(image, encoding):
    fmt, data = ci.encode(image, "png")
    pixels, decoded_as = ci.decode(ci.parse_format(fmt), data)
    assert decoded_as == encoding
    expected = image if image.ndim == 2 else image[:, :, ::-1]
    np.testing.assert_array_equal(pixels, expected)
    assert ci.image_size(data) == (53, 37)


def test_jpeg_loses_little_on_a_camera_like_image():
    image = _smooth_rgb()
    fmt, data = ci.encode(image, "jpeg")
    assert fmt == "rgb8; jpeg compressed bgr8"
    pixels, encoding = ci.decode(ci.parse_format(fmt), data)
    assert encoding == "bgr8" and pixels.shape == image.shape
    error = np.abs(pixels[:, :, ::-1].astype(int) - image.astype(int))
    assert error.mean() < 2.0 and len(data) < image.nbytes / 3


def test_a_publisher_that_encoded_rgb_as_it_was_is_read_as_rgb():
    # Its encoder took the RGB buffer for BGR: OpenCV hands the bytes back in the order they went in.
    ok, data = cv2.imencode(".png", RGB)
    assert ok
    pixels, encoding = ci.decode(ci.parse_format("rgb8; png compressed rgb8"), data.tobytes())
    assert encoding == "rgb8"
    np.testing.assert_array_equal(pixels, RGB)


def test_sixteen_bit_grey_png_keeps_its_depth_and_sixteen_bit_colour_is_refused():
    grey16 = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    _, data = cv2.imencode(".png", grey16)
    pixels, encoding = ci.decode(ci.parse_format("mono16; png compressed "), data.tobytes())
    assert encoding == "mono16" and pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, grey16)
    _, data = cv2.imencode(".png", np.zeros((20, 30, 3), np.uint16))
    with pytest.raises(ValueError, match="uint16"):
        ci.decode(ci.parse_format("bgr16; png compressed bgr16"), data.tobytes())


def test_alpha_is_kept_for_the_caller_to_drop():
    bgra = RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    _, data = cv2.imencode(".png", bgra)
    pixels, encoding = ci.decode(ci.parse_format("bgra8; png compressed bgra8"), data.tobytes())
    assert encoding == "bgra8"
    np.testing.assert_array_equal(pixels, bgra)


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_comes_from_its_header(progressive):
    buffer = io.BytesIO()
    Image.fromarray(_smooth_rgb(70, 90)).save(buffer, format="JPEG", progressive=progressive)
    assert ci.image_size(buffer.getvalue()) == (90, 70)


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, IHDR and one (empty) IDAT: enough for a header reader, nothing to decode."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_a_huge_declared_size_is_read_without_allocating_it():
    # 60 Mpx declared in 57 bytes: the reader answers from the header (the node then refuses by its limit).
    assert ci.image_size(_png_header(10_000, 6_000)) == (10_000, 6_000)
    with pytest.raises(ValueError, match="not an image"):  # beyond Pillow's own decompression-bomb limit
        ci.image_size(_png_header(40_000, 40_000))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n"])
def test_bytes_that_are_no_image_are_refused(data):
    with pytest.raises(ValueError, match=r"CompressedImage\.data"):
        ci.image_size(data)
    with pytest.raises(ValueError, match=r"CompressedImage\.data"):
        ci.decode(ci.CompressedFormat("jpeg"), data)


def test_a_truncated_jpeg_is_refused_or_decoded_to_its_declared_size():
    _, data = ci.encode(_smooth_rgb(), "jpeg")
    cut = data[: len(data) // 2]
    assert ci.image_size(cut) == (128, 96)  # the header is intact
    try:
        pixels, _ = ci.decode(ci.CompressedFormat("jpeg"), cut)
    except ValueError:
        return
    assert pixels.shape[:2] == (96, 128)  # libjpeg fills the missing rows


def test_every_buffer_type_a_message_can_hold_is_read():
    import array

    _, data = ci.encode(GREY, "png")
    for buffer in (
        data,
        bytearray(data),
        memoryview(data),
        np.frombuffer(data, np.uint8),
        array.array("B", data),
    ):
        assert ci.image_size(buffer) == (53, 37)
        np.testing.assert_array_equal(ci.decode(ci.CompressedFormat("png"), buffer)[0], GREY)


def test_encode_refuses_what_a_camera_image_is_not():
    with pytest.raises(ValueError, match="codec"):
        ci.encode(GREY, "webp")
    with pytest.raises(ValueError, match="image must be"):
        ci.encode(GREY.astype(np.float32), "png")
    with pytest.raises(ValueError, match="jpeg_quality"):
        ci.encode(GREY, "jpeg", jpeg_quality=0)


def test_transport_topic_names_follow_image_transport():
    assert ci.transport_topic("/cam/image_raw") == "/cam/image_raw/compressed"
    assert ci.transport_topic("/cam/image_raw/") == "/cam/image_raw/compressed"
    assert ci.base_topic("/cam/image_raw/compressed") == "/cam/image_raw"
    assert ci.base_topic("/cam/image_raw") == "/cam/image_raw"  # not a compressed topic: its own base
    assert ci.base_topic(ci.transport_topic("/a/b")) == "/a/b"
