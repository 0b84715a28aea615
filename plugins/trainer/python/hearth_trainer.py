"""Hearth's PyTorch trainer: the Python side of the trainer plugin contract.

A site runs a job's training script through this harness (plugins/trainer,
python.go): it speaks go-plugin's protocol (the handshake line, mutual TLS
with the host's certificate, the grpc.health.v1 service), serves the
hearth.plugin.trainer.v1 Trainer service, maps the models from shared
memory, and reads the site's data in Hearth's set file format.

The job script's contract (all functions at module level):

    build(features, classes, args) -> torch.nn.Module      required
    train(module, data, args) -> float | dict               required
    evaluate(module, data, args) -> dict                    optional

`data` is a Data: `x` (float32, rows x features), `y` (int64 labels),
`features`, `classes`, `rows`. `args` is the job's trainer arguments (a
dict from its JSON). `train` trains `module` in place for one round and
returns the round's mean loss, or a dict with "loss" and further figures
(floats, at most 31, names not starting with "hearth."; the harness adds
"hearth.script_seconds", the time train took). `evaluate` returns {"loss", "accuracy"}; without it the harness
measures cross-entropy and accuracy of the module's outputs (logits).

The model is the module's state_dict: its floating-point entries, in
order, as float32 tensors (other entries, e.g. BatchNorm's counters, stay
local). The harness reads args["dataset"] (a plain name) and trains on
<data_dir>/<dataset>/train.bin, evaluates on val.bin or, asked for the
test split, test.bin: the harness reads data from the data folder only.
The script runs in its working folder (its current directory), under the
limits the launcher set (plugins/trainer, python.go) and, unless the site
turned it off, inside the sandbox (hearth_sandbox.py: it reads only the
system folders, its dataset folder and its working and shared memory
folders, writes only in its working folder and into the host's shared
memory files, has no network but the host's connection, and starts no
process: no subprocess, no multiprocessing, no DataLoader workers; threads
it may); each file it writes is bounded (RLIMIT_FSIZE: EFBIG past it).
What it prints goes to the site's log, never to the handshake.

Generated code beside this file: trainer_pb2*.py, health_pb2*.py;
regenerate with gen.sh (Debian's protoc and python3-grpc-tools).
"""

import base64
import datetime
import errno
import hashlib
import json
import mmap
import os
import re
import struct
import sys
import threading
import time
from concurrent import futures

import grpc

import health_pb2
import health_pb2_grpc
import trainer_pb2
import trainer_pb2_grpc

# The trainer kind's handshake (plugins/trainer/plugin.go).
MAGIC_KEY = "HEARTH_TRAINER_PLUGIN"
MAGIC_VALUE = "8e2f4b17-trainer-v1"
PROTOCOL_VERSION = 1
CORE_PROTOCOL_VERSION = 1

MAX_ARGS = 64 << 10
# The rows the default evaluation pushes through the module at once.
EVAL_BATCH = 4096
MAX_METRICS = 32
MAX_METRIC_NAME = 64
# The largest set file: 2^28 values and as many labels, a header, a hash.
MAX_SET_BYTES = 8 * (1 << 28) + 12 + 255 + 12 + 32

# The metric that carries the seconds the script's train() took (the
# harness's own; a script's figures may not start with "hearth.").
SCRIPT_SECONDS = "hearth.script_seconds"

# Exit status after a memory limit was reached (reported first).
EXIT_MEMORY = 3
# Exit status after the CPU time limit's warning (SIGXCPU).
EXIT_CPU = 4
# Exit status when the sandbox could not be applied (after the refusal
# line, and a wait for the host to end the process).
EXIT_SANDBOX = 5
SANDBOX_REFUSAL_WAIT = 10.0


class Data:
    """One split of a site's dataset."""

    def __init__(self, x, y, features, classes):
        self.x, self.y, self.features, self.classes = x, y, features, classes
        self.rows = int(y.shape[0])


class SetFormatError(ValueError):
    """A file that is not a valid Hearth set file."""


def read_set(path):
    """Reads a Hearth set file (actors/learning/dataset/file.go's format).

    Strict, as the Go reader: magic, version, header bounds, length,
    checksum, labels below classes, finite values, nothing after.
    Returns a Data.
    """
    import torch

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_SET_BYTES:
            raise SetFormatError("%s: %d bytes, more than a set file holds" % (path, size))
        raw = f.read(size + 1)
    if len(raw) < 8 + 4 + 12 + 32:
        raise SetFormatError("%s: too short" % path)
    if raw[:8] != b"HEARTHDS":
        raise SetFormatError("%s: not a set file (bad magic)" % path)
    version, name_len = struct.unpack_from("<HH", raw, 8)
    if version != 1 or name_len > 255:
        raise SetFormatError("%s: version %d, name of %d bytes" % (path, version, name_len))
    off = 12 + name_len
    if len(raw) < off + 12:
        raise SetFormatError("%s: short header" % path)
    classes, features, rows = struct.unpack_from("<III", raw, off)
    off += 12
    if not (2 <= classes <= 1 << 16) or not (1 <= features <= 1 << 20) or not (1 <= rows <= (1 << 28) // features):
        raise SetFormatError("%s: %d classes, %d features, %d rows" % (path, classes, features, rows))
    want = off + 4 * rows + 4 * rows * features + 32
    if len(raw) != want:
        raise SetFormatError("%s: %d bytes, the header says %d" % (path, len(raw), want))
    if hashlib.sha256(raw[:-32]).digest() != raw[-32:]:
        raise SetFormatError("%s: checksum mismatch" % path)
    body = bytearray(raw[off:-32])
    y = torch.frombuffer(body, dtype=torch.int32, count=rows).to(torch.int64)
    x = torch.frombuffer(body, dtype=torch.float32, count=rows * features, offset=4 * rows).clone().view(rows, features)
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise SetFormatError("%s: a label out of range" % path)
    if not bool(torch.isfinite(x).all()):
        raise SetFormatError("%s: a value that is not finite" % path)
    return Data(x, y, features, classes)


def _map(region, writable):
    """Maps a shared memory region; returns (mmap, offset, length)."""
    path, off, length = region.path, region.offset, region.length
    if not os.path.isabs(path) or off < 0 or off % 4 or length < 0:
        raise ValueError("a region %r at %d of %d bytes" % (path, off, length))
    fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        import stat

        if not stat.S_ISREG(st.st_mode) or st.st_size < off + length:
            raise ValueError("shared memory %r: not a regular file of %d bytes" % (path, off + length))
        if off + length == 0:
            return None, 0, 0
        # The input is mapped copy-on-write: torch views it writable, and
        # nothing written reaches the host's file.
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_COPY
        return mmap.mmap(fd, off + length, access=access), off, length
    finally:
        os.close(fd)


def _layout(state):
    """The model's layout: the state_dict's floating-point entries."""
    return [(k, tuple(v.shape)) for k, v in state.items() if v.is_floating_point()]


def _wire_layout(layout):
    return [trainer_pb2.TensorShape(name=k, shape=list(s)) for k, s in layout]


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class MemoryLimit(Exception):
    """The memory limit was reached."""


def _is_oom(e):
    if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text or "std::bad_alloc" in text)


class Trainer(trainer_pb2_grpc.TrainerServicer):
    """The Trainer service over a job script's module."""

    def __init__(self, job, limits):
        self.job, self.limits = job, limits
        self.lock = threading.Lock()
        self.module = None
        self.args = None
        self.ending = False

    # -- helpers

    def _guard(self, context, fn):
        with self.lock:
            if self.ending:
                # Unavailable: the host takes this process for gone, and
                # starts a fresh one for its next call.
                context.abort(grpc.StatusCode.UNAVAILABLE, "this trainer reached its memory limit and is ending")
            try:
                return fn()
            except Exception as e:  # noqa: BLE001 (every error is an answer)
                if _is_oom(e):
                    self.ending = True
                    self._exit_after(context, EXIT_MEMORY)
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  "memory limit of %d bytes reached: %s" % (self.limits.get("memory", 0), _clip(e)))
                if isinstance(e, ValueError) and getattr(e, "hearth_request", False):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, _clip(e))
                context.abort(grpc.StatusCode.UNKNOWN, "%s: %s" % (type(e).__name__, _clip(e)))

    def _exit_after(self, context, code):
        # The process state after a failed allocation is not trusted: end
        # it once the answer is sent (or within a second at most), and
        # answer nothing meanwhile.
        context.add_callback(lambda: os._exit(code))
        t = threading.Timer(1.0, os._exit, args=(code,))
        t.daemon = True
        t.start()

    def _need_module(self):
        if self.module is None:
            self.module = self.job.build(self.train_data.features, self.train_data.classes, self.args)
            import torch

            if not isinstance(self.module, torch.nn.Module):
                raise TypeError("build returned %s, not a torch.nn.Module" % type(self.module).__name__)
        return self.module

    def _load(self, region, layout_wire):
        import torch

        module = self._need_module()
        layout = _layout(module.state_dict())
        got = [(t.name, tuple(t.shape)) for t in layout_wire]
        if got != layout:
            raise _request_error("the model's layout is not the script's")
        total = sum(_numel(s) for _, s in layout)
        if region.length != 4 * total:
            raise _request_error("a region of %d bytes for %d values" % (region.length, total))
        mm, off, _ = _map(region, False)
        if mm is not None:
            flat = torch.frombuffer(mm, dtype=torch.float32, count=total, offset=off)
            state = module.state_dict()
            i = 0
            with torch.no_grad():
                for k, s in layout:
                    n = _numel(s)
                    state[k].copy_(flat[i:i + n].view(s))
                    i += n
            del flat, state
            _close(mm)
        return module, layout

    def _write(self, region, module, capacity):
        import torch

        state = module.state_dict()
        layout = _layout(state)
        total = sum(_numel(s) for _, s in layout)
        if 4 * total > capacity:
            raise RuntimeError("the model takes %d bytes, the site allows %d" % (4 * total, capacity))
        # Only what the model takes is mapped: the region may be far
        # larger (Prepare's), and the mapping counts against RLIMIT_AS.
        mm, off, _ = _map(trainer_pb2.Region(path=region.path, offset=region.offset, length=4 * total), True)
        if mm is not None and total:
            flat = torch.frombuffer(mm, dtype=torch.float32, count=total, offset=off)
            i = 0
            with torch.no_grad():
                for k, s in layout:
                    n = _numel(s)
                    flat[i:i + n].copy_(state[k].detach().reshape(-1).to(torch.float32))
                    i += n
            del flat
            _close(mm)
        return layout

    # -- the service

    def Configure(self, request, context):
        def run():
            if len(request.args) > MAX_ARGS:
                raise _request_error("arguments of %d bytes" % len(request.args))
            args = json.loads(request.args.decode("utf-8") or "{}")
            if not isinstance(args, dict):
                raise ValueError("the trainer arguments are not a JSON object")
            name = args.get("dataset")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
                raise ValueError("args.dataset must name a dataset (a plain name), got %r" % (name,))
            for d in (request.data_dir, request.work_dir):
                if not os.path.isabs(d) or not os.path.isdir(d):
                    raise _request_error("%r is not an absolute folder" % d)
            os.chdir(request.work_dir)
            folder = os.path.join(request.data_dir, name)
            self.train_data = read_set(os.path.join(folder, "train.bin"))
            self.folder, self.eval_sets = folder, {}
            self.args = args
            self.module = None
            return trainer_pb2.ConfigureResponse()

        return self._guard(context, run)

    def Prepare(self, request, context):
        def run():
            self.module = None
            module = self._need_module()
            layout = self._write(request.output, module, request.output.length)
            return trainer_pb2.PrepareResponse(layout=_wire_layout(layout))

        return self._guard(context, run)

    def Train(self, request, context):
        def run():
            module, _ = self._load(getattr(request, "global"), request.layout)
            module.train()
            start = time.perf_counter()
            out = self.job.train(module, self.train_data, self.args)
            took = time.perf_counter() - start
            figures = out if isinstance(out, dict) else {"loss": out}
            loss = float(figures.get("loss", float("nan")))
            metrics = {}
            for k, v in figures.items():
                if k == "loss":
                    continue
                if len(metrics) == MAX_METRICS - 1 or not isinstance(k, str) or not 0 < len(k.encode()) <= MAX_METRIC_NAME or k.startswith("hearth."):
                    raise ValueError("train returned a figure named %r (at most %d, names of 1..%d bytes, none starting hearth.)" % (k, MAX_METRICS - 1, MAX_METRIC_NAME))
                metrics[k] = float(v)
            metrics[SCRIPT_SECONDS] = took
            written = self._write(request.output, module, request.output.length)
            return trainer_pb2.TrainResponse(layout=_wire_layout(written), samples=self.train_data.rows, loss=loss, metrics=metrics)

        return self._guard(context, run)

    def _eval_set(self, split):
        """The site's validation (val.bin) or test (test.bin) data, read once."""
        name = {trainer_pb2.SPLIT_UNSPECIFIED: "val", trainer_pb2.SPLIT_VALIDATION: "val", trainer_pb2.SPLIT_TEST: "test"}.get(split)
        if name is None:
            raise _request_error("an unknown split %d" % split)
        if name not in self.eval_sets:
            self.eval_sets[name] = read_set(os.path.join(self.folder, name + ".bin"))
        return self.eval_sets[name]

    def Evaluate(self, request, context):
        def run():
            import torch

            module, _ = self._load(request.model, request.layout)
            module.eval()
            data = self._eval_set(request.split)
            if hasattr(self.job, "evaluate"):
                r = self.job.evaluate(module, data, self.args)
                loss, acc = float(r["loss"]), float(r["accuracy"])
            else:
                total, right = 0.0, 0
                with torch.no_grad():
                    for i in range(0, data.rows, EVAL_BATCH):
                        logits = module(data.x[i:i + EVAL_BATCH])
                        y = data.y[i:i + EVAL_BATCH]
                        total += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
                        right += int((logits.argmax(dim=1) == y).sum())
                loss, acc = total / data.rows, right / data.rows
            return trainer_pb2.EvaluateResponse(samples=data.rows, loss=loss, accuracy=acc)

        return self._guard(context, run)


def _request_error(msg):
    e = ValueError(msg)
    e.hearth_request = True
    return e


def _clip(e, n=400):
    s = str(e)
    return s if len(s) <= n else s[:n] + "..."


def _close(mm):
    try:
        mm.close()
    except BufferError:
        pass  # a view is still alive somewhere; the mapping goes with it


class Health(health_pb2_grpc.HealthServicer):
    """grpc.health.v1: SERVING for go-plugin's "plugin" service."""

    def Check(self, request, context):
        if request.service in ("", "plugin"):
            return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")

    def Watch(self, request, context):
        yield self.Check(request, context)


def _server_certificate():
    """A fresh self-signed P-256 certificate for localhost, as go-plugin's
    AutoMTLS expects of a plugin (its host pins it from the handshake)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_agreement=True, key_cert_sign=True,
                                     content_commitment=False, data_encipherment=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.public_bytes(serialization.Encoding.DER)


def _check_host():
    """Refuses to go on without the host's handshake variables: run by
    hand, the launcher says what it is and exits with status 1."""
    if os.environ.get(MAGIC_KEY) != MAGIC_VALUE:
        sys.stderr.write("This is a Hearth trainer plugin: a Hearth site runs it, it is not run by hand.\n")
        sys.exit(1)
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
    if str(PROTOCOL_VERSION) not in versions.split(","):
        sys.stderr.write("the host speaks protocol versions %r, this trainer %d\n" % (versions, PROTOCOL_VERSION))
        sys.exit(1)
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "").encode()
    if not client_cert:
        sys.stderr.write("no PLUGIN_CLIENT_CERT: the host must use AutoMTLS\n")
        sys.exit(1)
    return client_cert


def _refuse_unconfined(handshake, reason):
    """Fails closed: the reason on stderr and, in place of the handshake,
    one line that the host reports as its failed start (plugins/trainer,
    sandbox.go: sandboxRefusal); then waits for the host to end the
    process, so that the line is read before the process is seen gone,
    and exits with EXIT_SANDBOX. The job's script is never imported."""
    line = "hearth-trainer: sandbox: " + " ".join(str(reason).replace("|", "/").split())
    sys.stderr.write(line + " (the job's script is not run)\n")
    sys.stderr.flush()
    handshake.write(line + "\n")
    handshake.flush()
    time.sleep(SANDBOX_REFUSAL_WAIT)
    os._exit(EXIT_SANDBOX)


def main(limits, sandbox):
    """The launcher's entry (__main__.py, after it set the limits).

    The order is the sandbox's (hearth_sandbox.py): torch, grpc and the
    TLS certificate first, while the process has one thread (gRPC's core
    starts threads once it makes credentials or a server); the first
    step of the sandbox; the gRPC server made and its listener bound; the
    second step; only then is the job's script imported, as module
    "job", and served. With the sandbox off by the site's configuration
    it logs a warning and skips both steps. The handshake line goes to
    the original standard output; whatever the script prints goes to
    standard error, so that it cannot pass for a handshake."""
    import importlib
    import signal

    handshake = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def cpu_limit(signum, frame):
        sys.stderr.write("hearth-trainer: CPU time limit of %d seconds reached\n" % limits.get("cpu_seconds", 0))
        sys.stderr.flush()
        os._exit(EXIT_CPU)

    signal.signal(signal.SIGXCPU, cpu_limit)
    client_cert = _check_host()
    import torch

    torch.set_num_threads(max(1, int(limits.get("threads", 1))))
    cert_pem, key_pem, cert_der = _server_certificate()

    confined = bool(sandbox.get("on"))
    if confined:
        import hearth_sandbox

        began = time.perf_counter()
        try:
            what = hearth_sandbox.begin(sandbox.get("rules", []), os.path.abspath(sys.argv[0]))
        except hearth_sandbox.SandboxError as e:
            _refuse_unconfined(handshake, e)
        took = time.perf_counter() - began
    else:
        sys.stderr.write("hearth-trainer: WARNING: the sandbox is off by the site's configuration: "
                         "the job's script can read what the site's user can, and use the network\n")

    # gRPC's core starts its threads here (the credentials first), inside
    # the sandbox's first step.
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=client_cert, require_client_auth=True)
    trainer = Trainer(None, limits)
    opts = [("grpc.max_receive_message_length", 4 << 20), ("grpc.max_send_message_length", 4 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=opts)
    trainer_pb2_grpc.add_TrainerServicer_to_server(trainer, server)
    health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
    port = server.add_secure_port("127.0.0.1:0", creds)
    if port == 0:
        sys.stderr.write("could not listen on loopback\n")
        sys.exit(1)
    if confined:
        began = time.perf_counter()
        try:
            hearth_sandbox.finish()
        except hearth_sandbox.SandboxError as e:
            _refuse_unconfined(handshake, e)
        took += time.perf_counter() - began
        sys.stderr.write("hearth-trainer: sandbox: %s; seccomp filter on every thread (%.1f ms)\n" % (what, 1000 * took))

    job = importlib.import_module("job")
    for fn in ("build", "train"):
        if not callable(getattr(job, fn, None)):
            sys.stderr.write("the job's script defines no %s()\n" % fn)
            sys.exit(1)
    trainer.job = job
    # The server's threads start here, inside the sandbox; the host calls
    # only once it has read the handshake.
    server.start()
    cert = base64.b64encode(cert_der).decode().rstrip("=")
    handshake.write("%d|%d|tcp|127.0.0.1:%d|grpc|%s\n" % (CORE_PROTOCOL_VERSION, PROTOCOL_VERSION, port, cert))
    handshake.flush()
    server.wait_for_termination()
