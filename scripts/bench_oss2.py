"""The official-SDK side of scripts/bench.sh: one video upload with Alibaba Cloud's Python SDKs.

Calls VOD CreateUploadVideo on the emulator with AcsClient (aliyun-python-sdk-core + -vod),
decodes UploadAddress / UploadAuth, and uploads the file with
`oss2.resumable_upload(bucket, key, path, part_size, num_threads, multipart_threshold)` and
oss2's defaults otherwise (CRC-64 checks on, as in vod-ingest). The checkpoint store lives in
a temporary directory.

Usage: bench_oss2.py PATH PART_SIZE THREADS MULTIPART_THRESHOLD   (sizes in bytes)
Environment: EMULATOR_ENDPOINT (host:port, required), EMULATOR_AK, EMULATOR_SECRET.
Prints the VideoId on stdout and, on stderr, one line
`oss2-phase upload_s=.. upload_cpu_s=.. import_s=.. create_s=..` describing the upload phase
alone (the harness measures the whole process from outside).
"""

import time

T_START = time.monotonic()

import base64  # noqa: E402 - the import time is measured on purpose
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import oss2  # noqa: E402
from aliyunsdkcore.client import AcsClient  # noqa: E402
from aliyunsdkvod.request.v20170321.CreateUploadVideoRequest import (  # noqa: E402
    CreateUploadVideoRequest,
)

T_IMPORTED = time.monotonic()


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    path, part_size, threads, threshold = sys.argv[1], *map(int, sys.argv[2:5])
    endpoint = os.environ["EMULATOR_ENDPOINT"]
    client = AcsClient(
        os.environ.get("EMULATOR_AK", "emulator-access-key-id"),
        os.environ.get("EMULATOR_SECRET", "emulator-access-key-secret"),
        "cn-shanghai",
    )
    req = CreateUploadVideoRequest()
    req.set_Title(os.path.splitext(os.path.basename(path))[0])
    req.set_FileName(os.path.basename(path))
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    req.set_accept_format("JSON")
    resp = json.loads(client.do_action_with_exception(req))
    address = json.loads(base64.b64decode(resp["UploadAddress"]))
    auth = json.loads(base64.b64decode(resp["UploadAuth"]))
    bucket = oss2.Bucket(
        oss2.StsAuth(auth["AccessKeyId"], auth["AccessKeySecret"], auth["SecurityToken"]),
        address["Endpoint"],
        address["Bucket"],
    )
    t_created = time.monotonic()

    cpu0 = cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="bench-oss2-ckpt-") as ckpt:
        result = oss2.resumable_upload(
            bucket,
            address["FileName"],
            path,
            store=oss2.ResumableStore(root=ckpt),
            multipart_threshold=threshold,
            part_size=part_size,
            num_threads=threads,
        )
    t_done = time.monotonic()
    cpu1 = cpu_seconds()
    if result.status != 200:
        raise SystemExit(f"upload answered HTTP {result.status}")

    print(resp["VideoId"])
    print(
        f"oss2-phase upload_s={t_done - t_created:.3f} upload_cpu_s={cpu1 - cpu0:.3f} "
        f"import_s={T_IMPORTED - T_START:.3f} create_s={t_created - T_IMPORTED:.3f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
