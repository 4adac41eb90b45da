"""Drives the running emulator with Alibaba Cloud's current "V2.0" Python SDKs, unmodified and
on their default settings (signature V3, ACS3-HMAC-SHA256): alibabacloud-vod20170321 and
alibabacloud-sts20150401. Only the endpoint and protocol are set (Config(endpoint=...,
protocol='http')). Uploads go through oss2, as in sdk_check.py.
Environment: EMULATOR_ENDPOINT (host:port), EMULATOR_AK / EMULATOR_SECRET.
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import base64
import json
import os
import sys
import traceback

import oss2
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import exceptions as tea_exceptions
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vod20170321 import models as vod_models
from alibabacloud_vod20170321.client import Client as VodClient

ENDPOINT = os.environ["EMULATOR_ENDPOINT"]
AK = os.environ.get("EMULATOR_AK", "emulator-access-key-id")
SECRET = os.environ.get("EMULATOR_SECRET", "emulator-access-key-secret")

failures = 0


def check(name):
    def run(fn):
        global failures
        try:
            detail = fn()
            print(f"PASS [v2.0 SDK] {name}" + (f" ({detail})" if detail else ""))
        except Exception as exc:  # noqa: BLE001 - report every failure, keep going
            failures += 1
            print(f"FAIL [v2.0 SDK] {name}: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3, file=sys.stdout)
        return fn

    return run


def config(ak=AK, secret=SECRET, token=None):
    return Config(
        access_key_id=ak,
        access_key_secret=secret,
        security_token=token,
        endpoint=ENDPOINT,
        protocol="http",
        region_id="cn-shanghai",
    )


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def decode(b64):
    return json.loads(base64.b64decode(b64).decode("utf-8"))


def upload(address_b64, auth_b64, body):
    address, auth = decode(address_b64), decode(auth_b64)
    bucket = oss2.Bucket(
        oss2.StsAuth(auth["AccessKeyId"], auth["AccessKeySecret"], auth["SecurityToken"]),
        address["Endpoint"],
        address["Bucket"],
    )
    result = bucket.put_object(address["FileName"], body)
    expect(result.status == 200, result.status)
    return address["FileName"]


def refused(fn, code, status):
    try:
        fn()
    except tea_exceptions.ClientException as exc:
        expect(exc.code == code, f"code {exc.code!r}, wanted {code!r}: {exc}")
        expect(exc.status_code == status, f"status {exc.status_code}, wanted {status}")
        return f"{exc.code} {exc.status_code}"
    raise AssertionError(f"accepted; wanted {code}")


vod = VodClient(config())
state = {}
PAYLOAD = b"v3-sdk-check" * 1000


@check("CreateUploadVideo + oss2 upload")
def _():
    resp = vod.create_upload_video(
        vod_models.CreateUploadVideoRequest(title="v3 测试 a+b*c~d/e", file_name="clip 1.mp4")
    ).body
    state["video"] = resp.video_id
    upload(resp.upload_address, resp.upload_auth, PAYLOAD)
    return "VideoId " + resp.video_id


@check("RefreshUploadVideo + oss2 upload")
def _():
    resp = vod.refresh_upload_video(
        vod_models.RefreshUploadVideoRequest(video_id=state["video"])
    ).body
    expect(resp.video_id == state["video"], resp.video_id)
    upload(resp.upload_address, resp.upload_auth, PAYLOAD)


@check("GetVideoInfo")
def _():
    resp = vod.get_video_info(vod_models.GetVideoInfoRequest(video_id=state["video"])).body
    expect(resp.video.video_id == state["video"], resp.video.video_id)
    return "status " + resp.video.status


@check("CreateUploadImage + oss2 upload")
def _():
    resp = vod.create_upload_image(
        vod_models.CreateUploadImageRequest(image_type="default", image_ext="png")
    ).body
    upload(resp.upload_address, resp.upload_auth, b"\x89PNG" + PAYLOAD)
    return "ImageId " + resp.image_id


@check("CreateUploadAttachedMedia + oss2 upload")
def _():
    resp = vod.create_upload_attached_media(
        vod_models.CreateUploadAttachedMediaRequest(business_type="subtitle", media_ext="vtt")
    ).body
    upload(resp.upload_address, resp.upload_auth, b"WEBVTT\n")
    return "MediaId " + resp.media_id


@check("AssumeRole (STS SDK), then VOD signed with its STS credentials")
def _():
    sts = StsClient(config())
    creds = sts.assume_role(
        sts_models.AssumeRoleRequest(
            role_arn="acs:ram::1234567890123456:role/vod-upload",
            role_session_name="sdk-check",
            duration_seconds=900,
        )
    ).body.credentials
    expect(creds.access_key_id.startswith("STS."), creds.access_key_id)
    client = VodClient(config(creds.access_key_id, creds.access_key_secret, creds.security_token))
    info = client.get_video_info(vod_models.GetVideoInfoRequest(video_id=state["video"])).body
    expect(info.video.video_id == state["video"], "same video")
    state["sts"] = creds


@check("refusal: wrong secret -> SignatureDoesNotMatch 400")
def _():
    bad = VodClient(config(secret="wrong-secret"))
    return refused(
        lambda: bad.get_video_info(vod_models.GetVideoInfoRequest(video_id=state["video"])),
        "SignatureDoesNotMatch",
        400,
    )


@check("refusal: unknown AccessKeyId -> InvalidAccessKeyId.NotFound 404")
def _():
    bad = VodClient(config(ak="no-such-key"))
    return refused(
        lambda: bad.get_video_info(vod_models.GetVideoInfoRequest(video_id=state["video"])),
        "InvalidAccessKeyId.NotFound",
        404,
    )


@check("refusal: garbled STS token -> InvalidSecurityToken.Malformed 400")
def _():
    c = state["sts"]
    bad = VodClient(config(c.access_key_id, c.access_key_secret, c.security_token + "x"))
    return refused(
        lambda: bad.get_video_info(vod_models.GetVideoInfoRequest(video_id=state["video"])),
        "InvalidSecurityToken.Malformed",
        400,
    )


@check("refusal: unknown video -> InvalidVideo.NotFound 404")
def _():
    return refused(
        lambda: vod.get_video_info(vod_models.GetVideoInfoRequest(video_id="0" * 32)),
        "InvalidVideo.NotFound",
        404,
    )


@check("refusal: STS credentials calling STS -> NoPermission 403")
def _():
    c = state["sts"]
    sts = StsClient(config(c.access_key_id, c.access_key_secret, c.security_token))
    return refused(
        lambda: sts.assume_role(
            sts_models.AssumeRoleRequest(
                role_arn="acs:ram::1234567890123456:role/vod-upload", role_session_name="x1"
            )
        ),
        "NoPermission",
        403,
    )


sys.exit(1 if failures else 0)
