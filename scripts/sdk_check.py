"""Drives the running emulator with Alibaba Cloud's official Python SDKs, unmodified.

If these independent clients accept the emulator, its signatures, encodings and response
shapes match what the real services produce. Environment:
  EMULATOR_ENDPOINT   host:port of the emulator (required)
  EMULATOR_AK, EMULATOR_SECRET   its AccessKey pair (defaults: the emulator's defaults)
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import base64
import json
import os
import sys
import traceback

import oss2
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest
from aliyunsdkvod.request.v20170321.CreateUploadAttachedMediaRequest import (
    CreateUploadAttachedMediaRequest,
)
from aliyunsdkvod.request.v20170321.CreateUploadImageRequest import CreateUploadImageRequest
from aliyunsdkvod.request.v20170321.CreateUploadVideoRequest import CreateUploadVideoRequest
from aliyunsdkvod.request.v20170321.GetImageInfoRequest import GetImageInfoRequest
from aliyunsdkvod.request.v20170321.GetVideoInfoRequest import GetVideoInfoRequest
from aliyunsdkvod.request.v20170321.RefreshUploadVideoRequest import RefreshUploadVideoRequest

ENDPOINT = os.environ["EMULATOR_ENDPOINT"]
AK = os.environ.get("EMULATOR_AK", "emulator-access-key-id")
SECRET = os.environ.get("EMULATOR_SECRET", "emulator-access-key-secret")

failures = 0


def check(name):
    """Runs the decorated function at once (so helpers must be defined above their first
    use) and reports PASS/FAIL."""

    def run(fn):
        global failures
        try:
            detail = fn()
            print(f"PASS {name}" + (f" ({detail})" if detail else ""))
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3, file=sys.stdout)
        return fn

    return run


def prepared(request):
    request.set_endpoint(ENDPOINT)
    request.set_protocol_type("http")
    request.set_accept_format("JSON")
    return request


def call(client, request):
    return json.loads(client.do_action_with_exception(prepared(request)))


def decode(b64):
    return json.loads(base64.b64decode(b64).decode("utf-8"))


def oss_bucket(ticket):
    auth = ticket["auth"]
    address = ticket["address"]
    return oss2.Bucket(
        oss2.StsAuth(auth["AccessKeyId"], auth["AccessKeySecret"], auth["SecurityToken"]),
        address["Endpoint"],
        address["Bucket"],
    )


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


client = AcsClient(AK, SECRET, "cn-shanghai")
state = {}
PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes


@check("CreateUploadVideo (AcsClient, AccessKey)")
def _():
    req = CreateUploadVideoRequest()
    req.set_Title("sdk check 测试 a+b*c~d/e")
    req.set_FileName("movie 1.mp4")
    req.set_Tags("sdk,check")
    resp = call(client, req)
    state["video"] = {
        "id": resp["VideoId"],
        "address": decode(resp["UploadAddress"]),
        "auth": decode(resp["UploadAuth"]),
    }
    auth = state["video"]["auth"]
    expect(auth["AccessKeyId"].startswith("STS."), "STS AccessKeyId")
    expect(set(auth) >= {"SecurityToken", "AccessKeySecret", "Expiration", "ExpireUTCTime"}, auth.keys())
    return "VideoId " + resp["VideoId"]


@check("oss2 put_object with UploadAuth (StsAuth, CRC-64 checked by oss2)")
def _():
    v = state["video"]
    result = oss_bucket(v).put_object(v["address"]["FileName"], PAYLOAD)
    expect(result.status == 200, result.status)
    expect(result.crc is not None, "x-oss-hash-crc64ecma present")
    return f"etag {result.etag}, crc {result.crc}"


@check("oss2 head_object / get_object")
def _():
    v = state["video"]
    bucket = oss_bucket(v)
    meta = bucket.head_object(v["address"]["FileName"])
    expect(meta.content_length == len(PAYLOAD), meta.content_length)
    data = bucket.get_object(v["address"]["FileName"]).read()
    expect(data == PAYLOAD, "bytes match")
    return f"{meta.content_length} bytes, type {meta.object_type}"


def _video_info():
    req = GetVideoInfoRequest()
    req.set_VideoId(state["video"]["id"])
    return req


def _refreshed_ticket():
    req = RefreshUploadVideoRequest()
    req.set_VideoId(state["video"]["id"])
    resp = call(client, req)
    return decode(resp["UploadAddress"]), decode(resp["UploadAuth"])


@check("oss2 resumable_upload in parts (init, upload_part x3, complete; oss2 checks the CRC)")
def _():
    import tempfile

    address, auth = _refreshed_ticket()
    bucket = oss_bucket({"address": address, "auth": auth})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "source.mp4")
        with open(path, "wb") as f:
            f.write(PAYLOAD[: 2 * 102400 + 10])
        result = oss2.resumable_upload(
            bucket,
            address["FileName"],
            path,
            store=oss2.ResumableStore(root=tmp),
            multipart_threshold=102400,
            part_size=102400,
        )
        expect(result.status == 200, result.status)
        meta = bucket.head_object(address["FileName"])
        expect(meta.object_type == "Multipart", meta.object_type)
        expect(meta.content_length == 2 * 102400 + 10, meta.content_length)
    return f"etag {result.etag}"


@check("oss2 with V4 signatures (put, head, resumable multipart)")
def _():
    import tempfile

    address, auth = _refreshed_ticket()
    bucket = oss2.Bucket(
        oss2.StsAuth(
            auth["AccessKeyId"],
            auth["AccessKeySecret"],
            auth["SecurityToken"],
            auth_version=oss2.AUTH_VERSION_4,
        ),
        address["Endpoint"],
        address["Bucket"],
        region=auth["Region"],
    )
    body = PAYLOAD[: 2 * 102400 + 10]
    bucket.put_object(address["FileName"], body)
    expect(bucket.head_object(address["FileName"]).content_length == len(body), "size")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "source.mp4")
        with open(path, "wb") as f:
            f.write(body)
        oss2.resumable_upload(
            bucket,
            address["FileName"],
            path,
            store=oss2.ResumableStore(root=tmp),
            multipart_threshold=102400,
            part_size=102400,
        )
    meta = bucket.head_object(address["FileName"])
    expect(meta.object_type == "Multipart", meta.object_type)
    wrong = oss2.Bucket(
        oss2.StsAuth(
            auth["AccessKeyId"], "wrong", auth["SecurityToken"], auth_version=oss2.AUTH_VERSION_4
        ),
        address["Endpoint"],
        address["Bucket"],
        region=auth["Region"],
    )
    try:
        wrong.head_object(address["FileName"])
    except oss2.exceptions.ServerError as exc:
        expect(exc.status == 403, exc.status)
        return "wrong secret rejected with 403"
    raise AssertionError("V4 request with a wrong secret succeeded")


@check("GetVideoInfo after upload")
def _():
    resp = call(client, _video_info())
    video = resp["Video"]
    expect(video["Status"] in ("UploadSucc", "Normal"), video["Status"])
    expect(video["Size"] == 2 * 102400 + 10, video.get("Size"))
    return video["Status"]


@check("RefreshUploadVideo keeps the address")
def _():
    req = RefreshUploadVideoRequest()
    req.set_VideoId(state["video"]["id"])
    resp = call(client, req)
    expect(decode(resp["UploadAddress"]) == state["video"]["address"], "same address")
    expect(decode(resp["UploadAuth"])["AccessKeyId"] != state["video"]["auth"]["AccessKeyId"], "new key")


@check("wrong AccessKeySecret surfaces as InvalidAccessKeySecret")
def _():
    bad = AcsClient(AK, "not-the-secret", "cn-shanghai")
    try:
        call(bad, _video_info())
    except ServerException as exc:
        expect(exc.get_error_code() == "InvalidAccessKeySecret", exc.get_error_code())
        expect(exc.get_http_status() == 400, exc.get_http_status())
        return exc.get_error_msg()
    raise AssertionError("call succeeded")


@check("unknown video is InvalidVideo.NotFound 404")
def _():
    req = GetVideoInfoRequest()
    req.set_VideoId("0" * 32)
    try:
        call(client, req)
    except ServerException as exc:
        expect(exc.get_error_code() == "InvalidVideo.NotFound", exc.get_error_code())
        expect(exc.get_http_status() == 404, exc.get_http_status())
        return None
    raise AssertionError("call succeeded")


@check("AssumeRole, then VOD signed with the STS token (StsTokenCredential)")
def _():
    req = AssumeRoleRequest()
    req.set_RoleArn("acs:ram::1234567890123456:role/vod-upload")
    req.set_RoleSessionName("sdk-check")
    req.set_DurationSeconds(900)
    creds = call(client, req)["Credentials"]
    sts_client = AcsClient(
        region_id="cn-shanghai",
        credential=StsTokenCredential(
            creds["AccessKeyId"], creds["AccessKeySecret"], creds["SecurityToken"]
        ),
    )
    img = CreateUploadImageRequest()
    img.set_ImageType("default")
    img.set_ImageExt("jpg")
    resp = call(sts_client, img)
    state["image"] = {
        "id": resp["ImageId"],
        "address": decode(resp["UploadAddress"]),
        "auth": decode(resp["UploadAuth"]),
    }
    return "ImageId " + resp["ImageId"]


@check("image upload and GetImageInfo")
def _():
    i = state["image"]
    body = b"\xff\xd8\xff fake jpeg"
    oss_bucket(i).put_object(i["address"]["FileName"], body)
    req = GetImageInfoRequest()
    req.set_ImageId(i["id"])
    info = call(client, req)["ImageInfo"]
    expect(info["Status"] == "Normal", info["Status"])
    expect(info["Mezzanine"]["FileSize"] == len(body), info["Mezzanine"])


@check("attached media upload")
def _():
    req = CreateUploadAttachedMediaRequest()
    req.set_BusinessType("subtitle")
    req.set_MediaExt("vtt")
    resp = call(client, req)
    ticket = {"address": decode(resp["UploadAddress"]), "auth": decode(resp["UploadAuth"])}
    result = oss_bucket(ticket).put_object(ticket["address"]["FileName"], b"WEBVTT\n")
    expect(result.status == 200, result.status)


@check("oss2 sees AccessDenied outside the credential's object")
def _():
    v = state["video"]
    try:
        oss_bucket(v).put_object(v["address"]["ObjectPrefix"] + "elsewhere.mp4", b"x")
    except oss2.exceptions.AccessDenied as exc:
        expect(exc.status == 403, exc.status)
        return exc.details.get("Message")
    raise AssertionError("write succeeded")


@check("oss2 sees SignatureDoesNotMatch with a wrong secret")
def _():
    v = state["video"]
    auth = v["auth"]
    bucket = oss2.Bucket(
        oss2.StsAuth(auth["AccessKeyId"], "wrong", auth["SecurityToken"]),
        v["address"]["Endpoint"],
        v["address"]["Bucket"],
    )
    try:
        bucket.put_object(v["address"]["FileName"], b"x")
    except oss2.exceptions.SignatureDoesNotMatch as exc:
        expect("StringToSign" in exc.details, exc.details.keys())
        return None
    raise AssertionError("write succeeded")


@check("oss2 head_object on a missing key raises NoSuchKey (from x-oss-err)")
def _():
    v = state["video"]
    # Upload credentials reach only their own object, so ask with the AccessKey itself.
    bucket = oss2.Bucket(oss2.Auth(AK, SECRET), v["address"]["Endpoint"], v["address"]["Bucket"])
    try:
        bucket.head_object(v["address"]["ObjectPrefix"] + "missing.mp4")
    except oss2.exceptions.NotFound as exc:
        expect(exc.status == 404, exc.status)
        expect(exc.details.get("Code") == "NoSuchKey", exc.details)
        return f"{type(exc).__name__} {exc.details.get('Code')} ec={exc.ec}"
    raise AssertionError("head succeeded")


print(f"{'FAILED' if failures else 'OK'}: {failures} failure(s)")
sys.exit(1 if failures else 0)
