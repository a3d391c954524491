"""The blob store contract, on the file backend and on S3 (moto's server on loopback)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from fakes.s3 import S3Server
from videogate.blobs import BlobStore, open_blob_store
from videogate.blobs.s3 import MULTIPART_CHUNK
from videogate.errors import NotFound, StorageUnavailable
from videogate.settings import Settings


def s3_settings(tmp_path: Path, s3: S3Server, bucket: str, prefix: str = "vg") -> Settings:
    env = s3.env()
    return Settings(
        data_dir=tmp_path / "var",
        blob_url=f"s3://{bucket}/{prefix}",
        s3_endpoint_url=env["AWS_ENDPOINT_URL"],
        s3_region=env["AWS_REGION"],
        s3_access_key_id=env["AWS_ACCESS_KEY_ID"],
        s3_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(params=["file", "s3"])
async def blobs(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> AsyncIterator[BlobStore]:
    if request.param == "file":
        settings = Settings(data_dir=tmp_path / "var")
    else:
        settings = s3_settings(tmp_path, s3_server, s3_server.new_bucket())
    store = open_blob_store(settings)
    assert store.scheme == request.param
    yield store
    await store.close()


async def read_all(store: BlobStore, key: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_range(key, start, end)])


async def test_bytes_round_trip_and_ranges(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 4000  # ~1 MB: several read chunks
    assert await blobs.put_bytes("results/k/t/video.mp4", data) == len(data)
    assert await blobs.size("results/k/t/video.mp4") == len(data)
    assert await blobs.exists("results/k/t/video.mp4")
    assert await read_all(blobs, "results/k/t/video.mp4", 0, len(data) - 1) == data
    assert await read_all(blobs, "results/k/t/video.mp4", 10, 19) == data[10:20]
    tail = len(data) - 5
    assert await read_all(blobs, "results/k/t/video.mp4", tail, len(data) - 1) == data[tail:]


async def test_large_file_goes_up_in_parts_and_comes_back_whole(
    blobs: BlobStore, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(2 * MULTIPART_CHUNK + 12345)  # three parts on S3
    source.write_bytes(data)
    assert await blobs.put_file("uploads/k/file_1.mp4", source) == len(data)
    dest = tmp_path / "back.bin"
    assert await blobs.get_file("uploads/k/file_1.mp4", dest) == len(data)
    assert dest.read_bytes() == data


async def test_missing_blob_is_not_found(blobs: BlobStore, tmp_path: Path) -> None:
    assert not await blobs.exists("results/k/none/video.mp4")
    with pytest.raises(NotFound):
        await blobs.size("results/k/none/video.mp4")
    with pytest.raises(NotFound):
        await read_all(blobs, "results/k/none/video.mp4", 0, 10)
    with pytest.raises(NotFound):
        await blobs.get_file("results/k/none/video.mp4", tmp_path / "x")
    await blobs.delete("results/k/none/video.mp4")  # not an error


async def test_overwrite_replaces(blobs: BlobStore) -> None:
    await blobs.put_bytes("refs/t/image1.png", b"first")
    await blobs.put_bytes("refs/t/image1.png", b"second!")
    assert await read_all(blobs, "refs/t/image1.png", 0, 6) == b"second!"


async def test_delete_prefix_removes_only_that_prefix(blobs: BlobStore) -> None:
    for name in ("video.mp4", "thumbnail.jpg", "last_frame.png"):
        await blobs.put_bytes(f"results/k/task_a/{name}", b"a")
    await blobs.put_bytes("results/k/task_ab/video.mp4", b"b")  # shares the string prefix
    assert await blobs.delete_prefix("results/k/task_a") == 3
    assert not await blobs.exists("results/k/task_a/video.mp4")
    assert await blobs.exists("results/k/task_ab/video.mp4")
    assert await blobs.delete_prefix("results/k/task_a") == 0


async def test_single_delete(blobs: BlobStore) -> None:
    await blobs.put_bytes("uploads/k/f.png", b"x")
    await blobs.delete("uploads/k/f.png")
    assert not await blobs.exists("uploads/k/f.png")


async def test_check_passes_on_a_working_store(blobs: BlobStore) -> None:
    await blobs.check()


async def test_keys_cannot_escape_the_store(blobs: BlobStore) -> None:
    if blobs.scheme != "file":
        pytest.skip("object keys are names, not paths: '..' cannot climb out of a bucket")
    with pytest.raises(NotFound):
        await blobs.put_bytes("../outside", b"x")


async def test_presigned_url_serves_ranges_and_says_when_it_expires(blobs: BlobStore) -> None:
    await blobs.put_bytes("results/k/t/video.mp4", b"0123456789")
    url = blobs.presign_get("results/k/t/video.mp4", 600)
    if blobs.scheme == "file":
        assert url is None  # the API streams local files itself
        return
    assert url is not None
    assert "X-Amz-Expires=600" in url and "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as http:
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == b"0123456789"
        part = await http.get(url, headers={"Range": "bytes=2-4"})
        assert part.status_code == 206 and part.content == b"234"


async def test_s3_prefix_keeps_deployments_apart(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    one = open_blob_store(s3_settings(tmp_path, s3_server, bucket, "one"))
    two = open_blob_store(s3_settings(tmp_path, s3_server, bucket, "two"))
    await one.put_bytes("results/k/t/video.mp4", b"one")
    assert not await two.exists("results/k/t/video.mp4")
    assert await two.delete_prefix("results") == 0
    assert await one.exists("results/k/t/video.mp4")


async def test_unreachable_s3_is_storage_unavailable(tmp_path: Path, s3_server: S3Server) -> None:
    missing_bucket = open_blob_store(s3_settings(tmp_path, s3_server, "no-such-bucket-here"))
    with pytest.raises(StorageUnavailable):
        await missing_bucket.check()
    settings = s3_settings(tmp_path, s3_server, "b").model_copy(
        update={"s3_endpoint_url": "http://127.0.0.1:9"}  # discard port: nothing listens
    )
    dead = open_blob_store(settings)
    with pytest.raises(StorageUnavailable) as caught:
        await dead.put_bytes("results/k/t/video.mp4", b"x")
    assert "VIDEOGATE_BLOB_URL" in caught.value.message


def test_blob_url_picks_the_backend(tmp_path: Path) -> None:
    default = Settings(data_dir=tmp_path / "var")
    assert default.effective_blob_url == (tmp_path / "var" / "blobs").resolve().as_uri()
    assert open_blob_store(default).local_path("a/b") == (tmp_path / "var/blobs/a/b").resolve()
    other = Settings(data_dir=tmp_path / "var", blob_url=(tmp_path / "elsewhere").as_uri())
    assert open_blob_store(other).local_path("a") == (tmp_path / "elsewhere" / "a").resolve()
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_blob_store(Settings(data_dir=tmp_path, blob_url="gs://bucket"))


def test_aws_variables_fill_the_s3_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SK")
    monkeypatch.setenv("VIDEOGATE_S3_REGION", "auto")  # ours win over AWS_*
    settings = Settings()
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.s3_region == "auto"
    assert (settings.s3_access_key_id, settings.s3_secret_access_key) == ("AK", "SK")
    assert "SK" not in repr(settings)
