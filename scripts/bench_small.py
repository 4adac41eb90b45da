"""Drives scripts/bench-small.sh (read that file for usage): many small jobs through
`vod-ingest run` and through the Python reference worker, then three `vod-ingest run`
processes against an emulator rate limit. Prints one table; all figures come from this run.

Arguments: BIN EMULATOR_URL WORKDIR. Settings come from the environment (see bench-small.sh).
"""

import atexit
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

import pika
import psycopg

BIN, EMU, WORK = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
N = int(os.environ.get("BENCH_JOBS", "3000"))
CONCURRENCY = os.environ.get("BENCH_CONCURRENCY", "32")
RATE = float(os.environ.get("BENCH_OFFERED_RATE", "300"))
LAT_SECS = float(os.environ.get("BENCH_LATENCY_SECS", "10"))
REF_THREADS = int(os.environ.get("BENCH_REF_THREADS", "32"))
WORKER_LIMITS = os.environ.get(
    "BENCH_WORKER_RATE_LIMITS",
    "CreateUploadVideo=1000,CreateUploadImage=1000,CreateUploadAttachedMedia=1000,RefreshUploadVideo=1000",
)
FLEET_LIMIT = int(os.environ.get("BENCH_FLEET_LIMIT", "50"))
FLEET_PROCS = int(os.environ.get("BENCH_FLEET_PROCESSES", "3"))
FLEET_JOBS = int(os.environ.get("BENCH_FLEET_JOBS", "1200"))
SKIP_REF = os.environ.get("BENCH_SKIP_REFERENCE") == "1"
SKIP_FLEET = os.environ.get("BENCH_SKIP_FLEET") == "1"
SKIP_MAIN = os.environ.get("BENCH_SKIP_VOD_INGEST") == "1"
AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN", "postgres://postgres@127.0.0.1:5432/postgres")
CLK = os.sysconf("SC_CLK_TCK")
KINDS = ("video", "image", "attached_media")
VOD_ACTIONS = ("CreateUploadVideo", "CreateUploadImage", "CreateUploadAttachedMedia", "RefreshUploadVideo")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def http(method, path, body=None):
    req = urllib.request.Request(EMU + path, method=method, data=json.dumps(body).encode() if body is not None else None)
    return json.load(urllib.request.urlopen(req, timeout=10))


def stats():
    return http("GET", "/_emulator/stats")


def machine_busy():
    """Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def fresh_db(name):
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def make_sources():
    os.makedirs(f"{WORK}/src", exist_ok=True)
    files = {}
    for kind, name, size in (("video", "clip.mp4", 50_000), ("image", "still.jpg", 20_000), ("attached_media", "subs.srt", 2_000)):
        path = f"{WORK}/src/{name}"
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        files[kind] = path
    return files


FILES = make_sources()


def job(prefix, i):
    kind = KINDS[i % 3]
    j = {"job_id": f"{prefix}-{i}", "kind": kind, "source": FILES[kind], "title": f"bench {i}"}
    if kind == "attached_media":
        j["business_type"] = "subtitle"
    if kind == "video" and not os.environ.get("BENCH_TRANSCODE"):
        # The figures were taken when a video sent one callback; with transcoding the
        # emulator sends seven (analysis, snapshot, three streams, transcode), which the webhook
        # in the same process handles. BENCH_TRANSCODE=1 measures that as well.
        j["template_group_id"] = "VOD_NO_TRANSCODE"
    return j


def channel():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


def declare(ch, queue):
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


def publish(ch, queue, body):
    ch.basic_publish("", queue, json.dumps(body).encode(), pika.BasicProperties(content_type="application/json", delivery_mode=2))


def preload(queue, prefix, n, declare_it=False):
    conn, ch = channel()
    if declare_it:
        declare(ch, queue)
    for i in range(n):
        publish(ch, queue, job(prefix, i))
    conn.close()


def offer(queue, prefix, rate, secs):
    """Publishes at `rate` jobs/s for `secs`; returns {job_id: publish time}."""
    conn, ch = channel()
    sent = {}
    start = time.time()
    i = 0
    total = int(rate * secs)
    while i < total:
        due = start + i / rate
        now = time.time()
        if due > now:
            time.sleep(due - now)
        j = job(prefix, i)
        sent[j["job_id"]] = time.time()
        publish(ch, queue, j)
        i += 1
    conn.close()
    return sent


def wait_count(db, sql, args, n, proc, timeout=600):
    deadline = time.time() + timeout
    while True:
        with psycopg.connect(db, autocommit=True) as c:
            got = c.execute(sql, args).fetchone()[0]
        if got >= n:
            return time.time()
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}; see {WORK}")
        if time.time() > deadline:
            raise SystemExit(f"timed out: {got} of {n} ({sql})")
        time.sleep(0.05)


def latencies(db, table, sent):
    with psycopg.connect(db, autocommit=True) as c:
        rows = c.execute(
            f"SELECT job_id, extract(epoch FROM uploaded_at)::float8 FROM {table} WHERE job_id = ANY(%s)",
            (list(sent),),
        ).fetchall()
    lat = sorted(t - sent[j] for j, t in rows if t is not None)
    q = statistics.quantiles(lat, n=100)
    return q[49], q[98]


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_worker(db, prefix, limits, http_port, name, extra_env=None):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db,
        "AMQP_URL": AMQP,
        "VOD_INGEST_AMQP_PREFIX": prefix,
        "VOD_ENDPOINT": EMU,
        "STS_ENDPOINT": EMU,
        "VOD_INGEST_CONCURRENCY": CONCURRENCY,
        "VOD_INGEST_SOURCE_ROOTS": f"{WORK}/src",
        "VOD_INGEST_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "VOD_INGEST_ADMIN_ADDR": "127.0.0.1:0",
        "VOD_CALLBACK_URL": f"http://127.0.0.1:{CALLBACK_PORT}/callbacks/vod",
        "VOD_CALLBACK_AUTH_KEYS": "bench-callback-key",
        "VOD_INGEST_VOD_RATE_LIMITS": limits,
        "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
    })
    # BENCH_WORKER_ENV="NAME=value ...": extra environment for the vod-ingest processes only.
    env.update(dict(kv.split("=", 1) for kv in os.environ.get("BENCH_WORKER_ENV", "").split()))
    env.update(extra_env or {})
    out = open(f"{WORK}/{name}.log", "w")
    proc = subprocess.Popen([BIN, "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    STARTED.append(proc)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"{name} did not start; see {WORK}/{name}.log")
            time.sleep(0.05)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


CALLBACK_PORT = int(os.environ["BENCH_CALLBACK_PORT"])
STARTED = []  # every process started here, stopped on exit whatever happens


@atexit.register
def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()
results = {}


def throttled_total():
    return sum(stats().get("throttled", {}).values())


def busy_before(secs=1.0):
    """Cores busy over `secs` before a part starts: what other programs use."""
    m0 = machine_busy()
    time.sleep(secs)
    return (machine_busy() - m0) / CLK / secs


def vod_ingest_run():
    quiet = busy_before()
    log(f"vod-ingest: pre-loading {N} jobs...")
    db = fresh_db("vod_ingest_bench_small")
    prefix = f"bench.small.{uuid.uuid4().hex[:8]}"
    # BENCH_DIAG_NO_CALLBACKS=1 (diagnosis only): no callbacks, so the figures leave the
    # webhook's share out and jobs/s counts to `uploaded`.
    no_callbacks = os.environ.get("BENCH_DIAG_NO_CALLBACKS") == "1"
    http("PUT", "/_emulator/faults", {"rate_limits": {}, "callback_drop": no_callbacks})
    # Start once so the queue and exchanges exist with the worker's own arguments, then stop.
    proc = start_worker(db, prefix, WORKER_LIMITS, CALLBACK_PORT, "vod-ingest-declare")
    stop(proc)
    preload(f"{prefix}.jobs", "pre", N)
    throttled0 = throttled_total()
    proc = start_worker(db, prefix, WORKER_LIMITS, CALLBACK_PORT, "vod-ingest")
    t0, c0, m0 = time.time(), cpu_ticks(proc.pid), machine_busy()
    if os.environ.get("BENCH_PERF"):  # profile the worker for a few seconds (perf record)
        subprocess.Popen(["perf", "record", "-F", os.environ.get("BENCH_PERF_FREQ", "499"), *os.environ.get("BENCH_PERF_ARGS", "-g").split(), "-p", str(proc.pid), "-o", os.environ["BENCH_PERF"], "--", "sleep", "6"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("BENCH_STRACE"):  # count the worker's system calls for a few seconds
        subprocess.Popen(["timeout", "-s", "INT", "5", "strace", *os.environ.get("BENCH_STRACE_ARGS", "-c").split(), "-f", "-p", str(proc.pid), "-o", os.environ["BENCH_STRACE"]],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("BENCH_STRACE"):
        time.sleep(1)
        subprocess.run(f"ls -l /proc/{proc.pid}/fd > {os.environ['BENCH_STRACE']}.fds; ss -tnp | grep pid={proc.pid}, > {os.environ['BENCH_STRACE']}.ss", shell=True)
    t_up = wait_count(db, "SELECT count(*) FROM ingest_jobs WHERE job_id LIKE 'pre-%%' AND state IN ('uploaded','completed')", (), N, proc)
    t1 = t_up if no_callbacks else wait_count(db, "SELECT count(*) FROM ingest_jobs WHERE job_id LIKE 'pre-%%' AND state = 'completed'", (), N, proc)
    c1, m1 = cpu_ticks(proc.pid), machine_busy()
    # Events: every transition reached the events exchange (published_at set).
    log(f"vod-ingest: offering {RATE:g} jobs/s for {LAT_SECS:g} s...")
    sent = offer(f"{prefix}.jobs", "lat", RATE, LAT_SECS)
    wait_count(db, "SELECT count(*) FROM ingest_jobs WHERE job_id LIKE 'lat-%%' AND state IN ('uploaded','completed')", (), len(sent), proc)
    p50, p99 = latencies(db, "ingest_jobs", sent)
    with psycopg.connect(db, autocommit=True) as c:
        deadline = time.time() + 30
        while (unpub := c.execute("SELECT count(*) FROM ingest_job_events WHERE published_at IS NULL").fetchone()[0]) and time.time() < deadline:
            time.sleep(0.1)
    stop(proc)
    results["vod-ingest"] = dict(jobs_s=N / (t1 - t0), up_s=N / (t_up - t0), cpu_ms=(c1 - c0) / CLK * 1000 / N,
                                 p50=p50, p99=p99, throttled=throttled_total() - throttled0, unpublished=unpub,
                                 machine=(m1 - m0) / CLK / (t1 - t0), before=quiet)


def reference_run():
    log(f"reference: pre-loading {N} jobs...")
    db = fresh_db("vod_ingest_bench_small_ref")
    queue = f"bench.small.ref.{uuid.uuid4().hex[:8]}.jobs"
    http("PUT", "/_emulator/faults", {"rate_limits": {}, "callback_drop": True})
    preload(queue, "pre", N, declare_it=True)
    throttled0 = throttled_total()
    env = dict(os.environ, EMULATOR_ENDPOINT=EMU.split("//", 1)[1])
    out = open(f"{WORK}/reference.log", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "bench_small_reference.py"), AMQP, queue, db, str(REF_THREADS)],
                            env=env, stdout=subprocess.PIPE, stderr=out, text=True)
    STARTED.append(proc)
    proc.stdout.readline()
    t0, c0 = time.time(), cpu_ticks(proc.pid)
    t1 = wait_count(db, "SELECT count(*) FROM ref_jobs WHERE job_id LIKE 'pre-%%' AND state = 'uploaded'", (), N, proc)
    c1 = cpu_ticks(proc.pid)
    log(f"reference: offering {RATE:g} jobs/s for {LAT_SECS:g} s...")
    sent = offer(queue, "lat", RATE, LAT_SECS)
    wait_count(db, "SELECT count(*) FROM ref_jobs WHERE job_id LIKE 'lat-%%' AND state = 'uploaded'", (), len(sent), proc)
    p50, p99 = latencies(db, "ref_jobs", sent)
    stop(proc)
    results["reference"] = dict(jobs_s=N / (t1 - t0), up_s=N / (t1 - t0), cpu_ms=(c1 - c0) / CLK * 1000 / N,
                                p50=p50, p99=p99, throttled=throttled_total() - throttled0, unpublished=None)
    conn, ch = channel()
    ch.queue_delete(queue)
    conn.close()


def fleet_run():
    log(f"fleet: {FLEET_PROCS} processes, emulator and worker limit {FLEET_LIMIT}/s per action, {FLEET_JOBS} jobs...")
    db = fresh_db("vod_ingest_bench_small_fleet")
    prefix = f"bench.fleet.{uuid.uuid4().hex[:8]}"
    limit = {a: FLEET_LIMIT for a in VOD_ACTIONS}
    http("PUT", "/_emulator/faults", {"rate_limits": limit, "callback_drop": False})
    limits = ",".join(f"{a}={FLEET_LIMIT}" for a in VOD_ACTIONS)
    proc = start_worker(db, prefix, limits, CALLBACK_PORT, "fleet-declare")
    stop(proc)
    preload(f"{prefix}.jobs", "pre", FLEET_JOBS)
    before = stats()
    # Eight jobs at a time each are plenty for 150 jobs/s, and keep the three pools small.
    conc = {"VOD_INGEST_CONCURRENCY": os.environ.get("BENCH_FLEET_CONCURRENCY", "8")}
    procs = [start_worker(db, prefix, limits, CALLBACK_PORT if i == 0 else free_port(), f"fleet-{i}", conc) for i in range(FLEET_PROCS)]
    wait_count(db, "SELECT count(*) FROM ingest_jobs WHERE state IN ('uploaded','completed')", (), FLEET_JOBS, procs[0])
    after = stats()
    for p in procs:
        stop(p)
    http("PUT", "/_emulator/faults", {"rate_limits": {}})
    per_action = {}
    for a in VOD_ACTIONS[:3]:
        windows = {int(s): n for s, n in after.get("rate_windows", {}).get(a, {}).items()
                   if int(s) not in {int(x) for x in before.get("rate_windows", {}).get(a, {})}}
        secs = sorted(windows)
        interior = [windows[s] for s in secs[1:-1]]
        per_action[a] = dict(
            calls=after["requests"].get(a, 0) - before["requests"].get(a, 0),
            mean=statistics.mean(interior) if interior else float("nan"),
            max=max(windows.values()) if windows else 0,
            throttled=after.get("throttled", {}).get(a, 0) - before.get("throttled", {}).get(a, 0),
            seconds=len(secs))
    results["fleet"] = per_action


if not SKIP_MAIN:
    vod_ingest_run()
if not SKIP_REF:
    reference_run()
if not SKIP_FLEET:
    fleet_run()

print(f"{N} small jobs pre-loaded (videos 50 KB, images 20 KB, subtitles 2 KB, even mix), "
      f"VOD_INGEST_CONCURRENCY={CONCURRENCY}, reference threads {REF_THREADS}; "
      f"{os.cpu_count()} cores shared by emulator, PostgreSQL, RabbitMQ and the worker")
print(f"throughput and latency part: emulator rate limit OFF; vod-ingest VOD_INGEST_VOD_RATE_LIMITS={WORKER_LIMITS}")
print(f"latency: {RATE:g} jobs/s offered for {LAT_SECS:g} s, enqueue (publish) to `uploaded`")
print(f"{'':12}{'jobs/s':>9}{'to uploaded':>13}{'CPU ms/job':>12}{'jobs/CPU-s':>12}{'p50 s':>8}{'p99 s':>8}{'throttled':>11}")
for name in ("vod-ingest", "reference"):
    if name not in results:
        continue
    r = results[name]
    end = "completed" if name == "vod-ingest" else "uploaded"
    print(f"{name:12}{r['jobs_s']:9.1f}{r['up_s']:13.1f}{r['cpu_ms']:12.3f}{1000 / r['cpu_ms']:12.0f}{r['p50']:8.3f}{r['p99']:8.3f}{r['throttled']:11d}   (jobs/s to {end})")
ok = lambda c: "PASS" if c else "FAIL"
if "vod-ingest" in results:
    v = results["vod-ingest"]
    cores = os.cpu_count() or 1
    print(f"machine busy during the vod-ingest run: {v['machine']:.2f} of {cores} cores (worker, emulator, PostgreSQL, RabbitMQ, "
          f"the bench's poller and anything else); {v['before']:.2f} in the second before it")
    if v["before"] > 0.25:
        print("NOTE: other programs were running before the run (more than a quarter of a core busy): the figures are "
              "depressed, jobs/s most; rerun on a quiet machine")
    if v["unpublished"]:
        print(f"WARNING: {v['unpublished']} history rows were not published on the events exchange")
    line = (f"targets: >= 360 jobs/s: {ok(v['jobs_s'] >= 360)}; <= 0.7 CPU ms/job: {ok(v['cpu_ms'] <= 0.7)}; "
            f"p99 < 1 s at {RATE:g}/s: {ok(v['p99'] < 1)}")
    if "reference" in results:
        ratio = results["reference"]["cpu_ms"] / v["cpu_ms"]
        line += f"; jobs per CPU-second {ratio:.1f}x the reference (>= 5x): {ok(ratio >= 5)}"
    print(line)
if "fleet" in results:
    print(f"fleet: {FLEET_PROCS} `vod-ingest run` processes, {FLEET_JOBS} jobs, emulator limit {FLEET_LIMIT}/s per action "
          f"(Throttling.User beyond it), VOD_INGEST_VOD_RATE_LIMITS={FLEET_LIMIT} per action")
    print(f"{'':28}{'calls':>7}{'seconds':>9}{'mean/s (interior)':>19}{'max in a second':>17}{'throttled':>11}")
    fine = True
    for a, r in results["fleet"].items():
        print(f"{a:28}{r['calls']:7d}{r['seconds']:9d}{r['mean']:19.1f}{r['max']:17d}{r['throttled']:11d}")
        fine &= r["throttled"] == 0 and r["mean"] >= 0.9 * FLEET_LIMIT
    print(f"fleet target: no Throttling.User and within 10% of {FLEET_LIMIT}/s: {ok(fine)}")
