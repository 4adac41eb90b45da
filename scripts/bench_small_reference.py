"""The reference worker for scripts/bench-small.sh: small jobs written the way a team would
write them first, with the official Python SDKs.

Threads, each with its own pika connection (prefetch 1) and its own clients: a job message is
recorded in PostgreSQL (psycopg), VOD's CreateUpload* is called with aliyun-python-sdk-vod, the
file is put to OSS with oss2, the row is marked `uploaded`, and the delivery is acknowledged.

Usage: bench_small_reference.py AMQP_URL QUEUE DATABASE_URL THREADS
Environment: EMULATOR_ENDPOINT (host:port), ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET.
Runs until SIGTERM. Table `ref_jobs` (created if missing) holds the jobs.
"""

import base64
import json
import os
import signal
import sys
import threading

import oss2
import pika
import psycopg
from aliyunsdkcore.client import AcsClient
from aliyunsdkvod.request.v20170321.CreateUploadAttachedMediaRequest import (
    CreateUploadAttachedMediaRequest,
)
from aliyunsdkvod.request.v20170321.CreateUploadImageRequest import CreateUploadImageRequest
from aliyunsdkvod.request.v20170321.CreateUploadVideoRequest import CreateUploadVideoRequest

amqp_url, queue, database_url, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
endpoint = os.environ["EMULATOR_ENDPOINT"]
ak = os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"]
secret = os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]
stop = threading.Event()

with psycopg.connect(database_url, autocommit=True) as conn:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS ref_jobs (
             job_id text PRIMARY KEY, kind text NOT NULL, state text NOT NULL,
             media_id text, created_at timestamptz NOT NULL DEFAULT now(), uploaded_at timestamptz)"""
    )


def create_upload(client, job):
    kind = job["kind"]
    name = os.path.basename(job["source"])
    if kind == "video":
        req = CreateUploadVideoRequest()
        req.set_Title(job.get("title") or name)
        req.set_FileName(name)
        if job.get("template_group_id"):
            req.set_TemplateGroupId(job["template_group_id"])
    elif kind == "image":
        req = CreateUploadImageRequest()
        req.set_ImageType("default")
        req.set_ImageExt(name.rsplit(".", 1)[-1])
    else:
        req = CreateUploadAttachedMediaRequest()
        req.set_BusinessType(job["business_type"])
        req.set_MediaExt(name.rsplit(".", 1)[-1])
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    req.set_accept_format("JSON")
    answer = json.loads(client.do_action_with_exception(req))
    media_id = answer.get("VideoId") or answer.get("ImageId") or answer.get("MediaId")
    address = json.loads(base64.b64decode(answer["UploadAddress"]))
    auth = json.loads(base64.b64decode(answer["UploadAuth"]))
    return media_id, address, auth


def work():
    client = AcsClient(ak, secret, "cn-shanghai")
    db = psycopg.connect(database_url)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)

    def on_message(ch, method, _properties, body):
        job = json.loads(body)
        with db.transaction():
            db.execute(
                "INSERT INTO ref_jobs (job_id, kind, state) VALUES (%s, %s, 'queued') ON CONFLICT DO NOTHING",
                (job["job_id"], job["kind"]),
            )
        media_id, address, auth = create_upload(client, job)
        with db.transaction():
            db.execute(
                "UPDATE ref_jobs SET state = 'uploading', media_id = %s WHERE job_id = %s",
                (media_id, job["job_id"]),
            )
        bucket = oss2.Bucket(
            oss2.StsAuth(auth["AccessKeyId"], auth["AccessKeySecret"], auth["SecurityToken"]),
            address["Endpoint"],
            address["Bucket"],
        )
        bucket.put_object_from_file(address["FileName"], job["source"])
        with db.transaction():
            db.execute(
                "UPDATE ref_jobs SET state = 'uploaded', uploaded_at = now() WHERE job_id = %s",
                (job["job_id"],),
            )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_consume(queue=queue, on_message_callback=on_message)
    while not stop.is_set():
        connection.process_data_events(time_limit=0.2)
    connection.close()


signal.signal(signal.SIGTERM, lambda *_: stop.set())
workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
for w in workers:
    w.start()
print("reference worker ready", flush=True)
for w in workers:
    w.join()
