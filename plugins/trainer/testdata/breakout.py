# A script that tries to outlive its trainer and to spend the site's disk
# and memory, in train(): it forks a child that leaves the process group
# (setsid), lets go of every inherited descriptor and, 2 seconds later, writes a marker file
# in the working folder, as if it went on reading the dataset after the
# site closed the trainer; it calls setpgid and setsid itself, runs a
# program (subprocess), starts a thread (which it may), writes a file in
# its working folder past args["file_size"] bytes, and creates a file in
# its shared memory folder (found where an attacker would: the harness's
# request, up the call stack). Each attempt is a metric, 1 when it
# succeeded; "big_file_bytes" is what the big file holds.
import os
import subprocess
import sys
import threading
import time

import torch


def build(features, classes, args):
    return torch.nn.Linear(features, classes)


def _try(name, fn, out):
    try:
        fn()
        out[name] = 1.0
        print("breakout: %s succeeded" % name)
    except Exception as e:  # noqa: BLE001 (every refusal is the answer)
        out[name] = 0.0
        print("breakout: %s refused: %s: %s" % (name, type(e).__name__, e))


def _fork():
    pid = os.fork()
    if pid == 0:  # the child: leave the group, let go of the pipes, outlive the trainer
        try:
            os.setsid()
            fd = os.open("/dev/null", os.O_RDWR)
            for i in (0, 1, 2):
                os.dup2(fd, i)
            os.closerange(3, 1 << 16)
            time.sleep(2)
            with open("outlived", "w") as f:
                f.write("%d\n" % os.getpid())
        finally:
            os._exit(0)


def _thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def _big_file(limit, out):
    chunk = b"\0" * (1 << 20)
    try:
        with open("big", "wb") as f:
            while f.tell() <= limit:
                f.write(chunk)
                f.flush()
    finally:
        out["big_file_bytes"] = float(os.path.getsize("big"))


def _shm_folder():
    f = sys._getframe()
    while f is not None:
        req = f.f_locals.get("request")
        if req is not None and hasattr(req, "output"):
            return os.path.dirname(req.output.path)
        f = f.f_back
    raise LookupError("no request up the stack")


def _plant(folder):
    with open(os.path.join(folder, "planted"), "x") as f:
        f.write("the script's own\n")


def train(module, data, args):
    out = {"loss": 0.0}
    _try("fork", _fork, out)
    _try("setpgid", lambda: os.setpgid(0, 0), out)
    _try("setsid", os.setsid, out)
    _try("subprocess", lambda: subprocess.run(["/bin/true"], check=True), out)
    _try("thread", _thread, out)
    _try("big_file", lambda: _big_file(int(args["file_size"]), out), out)
    shm = _shm_folder()
    _try("shm_create", lambda: _plant(shm), out)
    _try("shm_base_create", lambda: _plant(os.path.dirname(shm)), out)
    return out
