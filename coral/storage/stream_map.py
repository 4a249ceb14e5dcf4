"""Memory-mapping a stored tensor straight from its pack, where the chunk encoding allows it.

A FULL chunk keeps its bytes as byte planes (`coral.delta.planes`), zstd-coded unless a plane
does not compress. For a one-byte dtype (int8, uint8, bool, float8) there is one plane, and
when it is stored RAW its payload is the tensor's bytes as they are: a tensor of one such
chunk can be read through a read-only memory map of the pack, with no decoding and no copy.
The map is checked once against the chunk's checksum of its decoded bytes (as every read is),
then handed out; its pages are dropped after the check and come back as they are touched.
Anything else (several chunks, wider dtypes, compressed or delta chunks, a remote backend)
returns None and is decoded as usual.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import numpy as np

from coral.core.dtypes import numpy_dtype
from coral.core.mapped_pages import release
from coral.delta.plane_codec import PlaneMode
from coral.storage.base import CHUNK
from coral.storage.chunk_format import ChunkEncoding, parse_header, raw_checksum
from coral.storage.pack import pack_key

if TYPE_CHECKING:
    from coral.storage.store_view import StoreInternals

_PLANE_ENTRY = struct.Struct("<BQ")  # the plane table entry of `plane_codec`


def map_tensor(store: StoreInternals, tensor_id: str) -> np.ndarray | None:
    """The tensor as a read-only array over its pack (verified), or None where not possible."""
    manifest = store.manifest(tensor_id)
    dtype = numpy_dtype(manifest.dtype)
    if len(manifest.chunks) != 1 or dtype.itemsize != 1 or manifest.nbytes == 0:
        return None
    if not store.backend.capabilities.local_path:
        return None
    chunk_id = manifest.chunks[0]
    loc = store.index.get(chunk_id)
    if loc is None or loc.encoding != int(ChunkEncoding.FULL):
        return None
    head_bytes = store.read_record(CHUNK, chunk_id, check=False)[:4096]
    try:
        head = parse_header(head_bytes)
    except ValueError:
        return None
    table = head.header_len
    if head.version != 2 or len(head_bytes) < table + 1 + _PLANE_ENTRY.size:
        return None
    mode, length = _PLANE_ENTRY.unpack_from(head_bytes, table + 1)
    if head_bytes[table] != 1 or mode != PlaneMode.RAW or length != manifest.nbytes:
        return None
    path = store.backend.path(pack_key(loc.pack_id))
    start = loc.offset + table + 1 + _PLANE_ENTRY.size
    if start + length > loc.offset + loc.length:
        return None
    view = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(length,))
    if raw_checksum(view) != head.checksum:
        return None  # damage: the decoder reads it again and says what is wrong
    release(view)
    return np.asarray(view).view(dtype).reshape(manifest.shape)
