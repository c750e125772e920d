"""`S3Store` keeps blobs as objects in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...).

Credentials, region and endpoint come from the standard variables botocore reads itself
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, or the
usual AWS config files). The client is boto3's, which is synchronous: like `LocalDirStore`, every
call runs in a worker thread, never on the event loop.

Uploads stream in parts of `part_size` bytes (S3's multipart upload), hashed on the way; a blob
smaller than one part is one plain PUT. Either way the object appears only when it is complete.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from goliat_monitor.blobs.common import Readable, StoredBlob, check_key

PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3 refuses smaller parts (but the last)
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _client_config() -> Config:
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        # Every request thread may hold a connection (downloads stream for as long as they last).
        max_pool_connections=32,
        # Send and check checksums only where S3 requires them: several S3-compatible stores do
        # not support the CRC trailers botocore adds by default. SHA-256 is ours anyway.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _read_part(source: Readable, size: int) -> bytes:
    """Up to `size` bytes: `read` may return less than asked before the end of the stream."""
    data = source.read(size)
    if len(data) in (0, size):
        return data
    buffer = bytearray(data)
    while len(buffer) < size and (more := source.read(size - len(buffer))):
        buffer += more
    return bytes(buffer)


class S3Store:
    def __init__(
        self, bucket: str, prefix: str = "", *, part_size: int = PART_SIZE, client: Any = None
    ) -> None:
        if not bucket:
            raise ValueError("an S3 artifacts URL needs a bucket: s3://BUCKET/PREFIX")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts are at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.part_size = part_size
        self.client = client or boto3.session.Session().client("s3", config=_client_config())

    @classmethod
    def from_url(cls, url: str) -> S3Store:
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path)

    def check(self) -> None:
        """Fail at start with a plain reason, not at the first upload: the bucket must be reachable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            reason = {"404": "does not exist", "NoSuchBucket": "does not exist", "403": "refuses access"}
            raise ConnectionError(f"bucket {self.bucket!r} {reason.get(str(code), str(exc))}") from exc
        except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
            raise ConnectionError(f"cannot use bucket {self.bucket!r}: {exc}") from exc

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def object_key(self, key: str) -> str:
        """The object's key in the bucket: the store's prefix, then the blob key."""
        pure = check_key(key).as_posix()
        return f"{self.prefix}/{pure}" if self.prefix else pure

    def put(self, key: str, source: Readable) -> StoredBlob:
        """Stream `source` into the bucket, one part in memory at a time, hashing on the way."""
        object_key = self.object_key(key)
        digest = hashlib.sha256()
        part = _read_part(source, self.part_size)
        digest.update(part)
        size = len(part)
        if size < self.part_size:
            self.client.put_object(Bucket=self.bucket, Key=object_key, Body=part)
            return StoredBlob(key, size, digest.hexdigest())
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=object_key)["UploadId"]
        try:
            done: list[dict[str, Any]] = []
            while part:
                number = len(done) + 1
                answer = self.client.upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=part
                )
                done.append({"ETag": answer["ETag"], "PartNumber": number})
                part = b""  # let the sent part go before the next is read: one part in memory
                part = _read_part(source, self.part_size)
                digest.update(part)
                size += len(part)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=object_key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            # An unfinished upload keeps its parts (and costs storage) until it is aborted.
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            raise
        return StoredBlob(key, size, digest.hexdigest())

    def open(self, key: str) -> Readable:
        """The object's body, read from the network as it is consumed."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise FileNotFoundError(f"no blob {key!r} in {self.url}") from exc
            raise
        return cast(Readable, answer["Body"])

    def size(self, key: str) -> int | None:
        """The object's size, or None when there is none."""
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return int(answer["ContentLength"])

    def delete_prefix(self, prefix: str) -> None:
        """Delete the object `prefix` and everything under `prefix/`, a page of keys at a time."""
        base = self.object_key(prefix)
        self.client.delete_object(Bucket=self.bucket, Key=base)
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{base}/", PaginationConfig={"PageSize": DELETE_BATCH}
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
            if errors := answer.get("Errors"):
                first = errors[0]
                raise OSError(
                    f"{len(errors)} object(s) under {base!r} were not deleted: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
