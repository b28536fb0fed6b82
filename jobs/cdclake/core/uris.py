"""Locations: how roots and folders are joined, and how a URI becomes what each consumer
needs (a local path, an ``s3://`` URI for Glue and Athena, bucket and key for boto3)."""

from __future__ import annotations

import re
from pathlib import Path

_S3 = re.compile(r"^s3a?://([^/]+)/?(.*)$", re.IGNORECASE)


def join_uri(root: str, *parts: str) -> str:
    """``root/part/part`` (a trailing slash of ``root`` is dropped)."""
    return "/".join([root.rstrip("/"), *parts])


def is_s3(uri: str) -> bool:
    """``s3://`` or ``s3a://``."""
    return bool(_S3.match(uri))


def split_s3(uri: str) -> tuple[str, str, str]:
    """``(scheme, bucket, key)`` of an S3 URI."""
    m = _S3.match(uri)
    if not m:
        raise ValueError(f"not an S3 URI: {uri}")
    return uri.split(":", 1)[0], m.group(1), m.group(2)


def local_path(uri: str) -> str:
    """A local location without its ``file:`` scheme (``file:///x``, ``file:/x`` -> ``/x``).

    Hadoop writes ``file:/x``, Delta's manifests ``file:/x``, users ``file:///x``; a plain
    path is returned as it is.
    """
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if uri.startswith("file:"):
        return uri[len("file:") :]
    return uri


def local_dir(uri: str) -> Path:
    """A local location as a :class:`Path`; refuses S3 (the caller works on local files)."""
    if "://" in uri and not uri.startswith("file:"):
        raise ValueError(f"'{uri}' is not a local path")
    return Path(local_path(uri))


def s3_location(uri: str) -> str:
    """Athena, Glue and Spectrum know ``s3://`` only (the job may be configured with s3a)."""
    return re.sub(r"^s3a://", "s3://", uri, flags=re.IGNORECASE)


def same_location(a: str, b: str) -> bool:
    """Whether two spellings name the same folder (scheme ``file:``, trailing slash)."""
    return local_path(a).rstrip("/") == local_path(b).rstrip("/")
