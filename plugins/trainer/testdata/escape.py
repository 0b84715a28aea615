# A script that tries to leave the sandbox, in train(): it reads a secret
# file the test wrote outside the allowed folders (as if it knew the
# site's kit path), the host's environment and command line, the data
# folder's other dataset and files of /etc; it connects over TCP and
# sends a UDP datagram to the test's listeners on 127.0.0.1, sends one
# over a unix socket by path, signals the host, and as root uses its
# capabilities. Each attempt is a metric: 1 when it succeeded. It also
# reads its own dataset and writes into its working folder, which it may
# (both 1).
import os
import socket
import stat

import torch


def build(features, classes, args):
    return torch.nn.Linear(features, classes)


def _try(name, fn, out):
    try:
        fn()
        out[name] = 1.0
        print("escape: %s succeeded" % name)
    except Exception as e:  # noqa: BLE001 (every refusal is the answer)
        out[name] = 0.0
        print("escape: %s refused: %s: %s" % (name, type(e).__name__, e))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"the site's key")
    s.close()


def _udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"the site's key", ("127.0.0.1", port))
    s.close()


def _unix_dgram(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"the site's key", path)
    s.close()


def _unix_stream(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.close()


def train(module, data, args):
    out = {"loss": 0.0}
    ppid = os.getppid()
    _try("secret_file", lambda: _read(args["secret"]), out)
    _try("host_environ", lambda: _read("/proc/%d/environ" % ppid), out)
    _try("host_cmdline", lambda: _read("/proc/%d/cmdline" % ppid), out)
    _try("other_dataset", lambda: os.listdir(args["other_dataset"]), out)
    _try("etc_shadow", lambda: _read("/etc/shadow"), out)
    _try("etc_passwd", lambda: _read("/etc/passwd"), out)
    _try("tcp", lambda: _tcp(int(args["tcp_port"])), out)
    _try("udp", lambda: _udp(int(args["udp_port"])), out)
    _try("unix_dgram", lambda: _unix_dgram(args["unix_dgram"]), out)
    _try("unix_stream", lambda: _unix_stream(args["unix_stream"]), out)
    _try("signal_host", lambda: os.kill(ppid, 0), out)
    # As root: a capability left, a block device made in its working
    # folder (the site's disk, to read raw).
    _try("capabilities", _capabilities, out)
    _try("mknod", lambda: os.mknod("disk", stat.S_IFBLK | 0o600, os.makedev(8, 0)), out)
    # What the sandbox allows: its own dataset, its working folder.
    _try("own_dataset", lambda: os.listdir(os.path.join(args["data_dir"], args["dataset"])), out)
    _try("work_write", lambda: _write("scratch"), out)
    return out


def _capabilities():
    with open("/proc/self/status") as f:
        caps = [line.split()[1] for line in f if line.startswith("CapEff:")]
    if int(caps[0], 16) == 0:
        raise PermissionError("no effective capability")


def _write(path):
    with open(path, "w") as f:
        f.write("the script's own\n")
