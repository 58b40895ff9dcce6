"""Compressed camera images as image_transport's `compressed` transport carries them (sensor_msgs/
CompressedImage: a `format` string and the encoded bytes). No ROS here: the node's conversions and the bag
writer share these rules.

The format string image_transport writes is `"<raw encoding>; <codec> compressed <content encoding>"`,
e.g. `"bgr8; jpeg compressed bgr8"` or `"mono8; png compressed "`: the encoding of the image before
compression, the codec, and the channel order of what was handed to the encoder (colour is converted to
bgr8 first, which is what OpenCV's decoder returns). Older publishers and other tools write only the codec
(`"jpeg"`, `"png"`). `compressedDepth` is a depth transport with its own header, not a camera image, and is
refused.

The image's size is read from its header (Pillow, which does not decode the pixels) before any decoding,
so that a receiver can refuse an oversized image without allocating it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

BytesLike = bytes | bytearray | memoryview | np.ndarray

TRANSPORT = "compressed"  # image_transport's name; its topic is "<base topic>/compressed"
TRANSPORTS = ("raw", TRANSPORT)
CODECS = ("jpeg", "png")  # what encode() writes (the decoder takes whatever OpenCV reads)
_CODEC_ALIASES = {"jpg": "jpeg"}
# image_transport's default JPEG quality (what it costs the odometry: docs/node.md, "Compressed images").
DEFAULT_JPEG_QUALITY = 95


def transport_topic(base: str) -> str:
    """image_transport's topic of the compressed transport (/cam/image_raw → /cam/image_raw/compressed)."""
    return f"{base.rstrip('/')}/{TRANSPORT}"


def base_topic(topic: str) -> str:
    """The camera's base topic of a compressed transport topic; any other topic is its own base."""
    return topic.rstrip("/").removesuffix(f"/{TRANSPORT}")


@dataclass(frozen=True)
class CompressedFormat:
    """The parts of a CompressedImage format string (None where the string does not say)."""

    codec: str  # lower case, "jpg" read as "jpeg"
    raw_encoding: str | None = None  # the image's encoding before compression
    content_encoding: str | None = None  # the channel order handed to the encoder


def parse_format(text: str) -> CompressedFormat:
    """Read a CompressedImage `format`; ValueError for an empty one and for compressedDepth."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"CompressedImage.format must name a codec (e.g. 'jpeg'), got {text!r}")
    if "compresseddepth" in text.lower():
        raise ValueError(
            f"CompressedImage.format {text!r} is the compressedDepth transport (a depth image), not a "
            "camera image"
        )
    raw, sep, rest = text.partition(";")
    if not sep:  # only the codec
        raw, rest = "", raw
    words = rest.split()
    if not words:
        raise ValueError(f"CompressedImage.format {text!r} names no codec")
    codec = _CODEC_ALIASES.get(words[0].lower(), words[0].lower())
    content = None
    if len(words) >= 3 and words[1].lower() == "compressed":
        content = words[2]
    return CompressedFormat(codec, raw.strip() or None, content)


def format_string(raw_encoding: str, codec: str) -> str:
    """The format image_transport writes for an image of `raw_encoding` encoded by encode()."""
    content = "bgr8" if raw_encoding in ("rgb8", "bgr8") else ""
    return f"{raw_encoding}; {codec} compressed {content}"


def encode(image: np.ndarray, codec: str, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> tuple[str, bytes]:
    """(format, bytes) of an H×W uint8 (mono8) or H×W×3 uint8 RGB (rgb8) image, as image_transport's
    compressed publisher would send it. PNG is lossless; JPEG is not."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality!r}")
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 2:
        raw, pixels = "mono8", image
    elif image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        raw, pixels = "rgb8", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    else:
        raise ValueError(f"image must be H×W uint8 or H×W×3 uint8 RGB, got {image.dtype} {image.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if codec == "jpeg" else []
    ok, data = cv2.imencode("." + ("jpg" if codec == "jpeg" else codec), pixels, params)
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image in these codecs
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {codec}")
    return format_string(raw, codec), data.tobytes()


def round_trip(image: np.ndarray, codec: str, jpeg_quality: int = DEFAULT_JPEG_QUALITY) -> np.ndarray:
    """What a receiver decodes of `image` (H×W uint8 or H×W×3 uint8 RGB) sent compressed, in the same
    layout: the image a camera streaming JPEG gives the node."""
    fmt, data = encode(image, codec, jpeg_quality)
    pixels, encoding = decode(parse_format(fmt), data)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if encoding == "bgr8" else pixels


def image_size(data: BytesLike) -> tuple[int, int]:
    """(width, height) from the encoded image's header, without decoding it."""
    try:
        with warnings.catch_warnings():
            # Pillow warns above ~89 Mpx; the caller decides with its own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(_as_bytes(data))) as header:
                width, height = header.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"CompressedImage.data is not an image this reader knows: {err}") from err
    return int(width), int(height)


def decode(fmt: CompressedFormat, data: BytesLike) -> tuple[np.ndarray, str]:
    """(pixels, encoding) of a compressed image: H×W mono8 / mono16, or H×W×3 / H×W×4 uint8 in the channel
    order the encoding names (bgr8 / bgra8 as OpenCV decodes colour; rgb8 / rgba8 when the publisher
    encoded RGB as it was). ValueError when OpenCV cannot decode it or its pixel type is not a camera's."""
    buffer = np.frombuffer(_as_bytes(data), dtype=np.uint8)
    if buffer.size == 0:
        raise ValueError("CompressedImage.data is empty")
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # no EXIF rotation, bit depth kept
    if pixels is None:
        raise ValueError(f"CompressedImage.data could not be decoded as {fmt.codec} ({buffer.size} bytes)")
    rgb_content = (fmt.content_encoding or "").lower() in ("rgb8", "rgba8")
    if pixels.ndim == 2 and pixels.dtype == np.uint8:
        return pixels, "mono8"
    if pixels.ndim == 2 and pixels.dtype == np.uint16:
        return pixels, "mono16"
    if pixels.ndim == 3 and pixels.dtype == np.uint8 and pixels.shape[2] == 3:
        return pixels, "rgb8" if rgb_content else "bgr8"
    if pixels.ndim == 3 and pixels.dtype == np.uint8 and pixels.shape[2] == 4:
        return pixels, "rgba8" if rgb_content else "bgra8"
    raise ValueError(
        f"CompressedImage ({fmt.codec}) decodes to {pixels.dtype} with shape {pixels.shape}: the model takes "
        "8-bit grey or colour, or 16-bit grey"
    )


def _as_bytes(data: BytesLike) -> bytes | memoryview:
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data, dtype=np.uint8)).cast("B")
    if isinstance(data, bytes | bytearray):
        return data
    return memoryview(data).cast("B")
