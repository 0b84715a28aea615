# A job's training script that acts as the attacker inside: it trains the
# job's model as asked, and each round also looks for what a site must
# keep from job code, then asks for far more memory than it needs. It
# reports what it found as metrics (counts, never contents), which the
# site audits: the test reads them there.
import os

import torch


def build(features, classes, args):
    torch.manual_seed(1)
    return torch.nn.Linear(features, classes)


def _found(path, needle=None):
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        return 1.0 if needle is None or needle in data else 0.0
    except OSError:
        return 0.0


def _snoop(args):
    figures = {}
    own = {"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT",
           "HEARTH_TRAINER_PLUGIN", "PLUGIN_MULTIPLEX_GRPC", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP", "LC_CTYPE"}
    figures["host_env_vars"] = float(len(set(os.environ) - own))
    ppid = os.getppid()
    figures["parent_environ"] = _found("/proc/%d/environ" % ppid)
    # The site's kit folder, from the site's command line (hearth site -k KIT) ...
    kits = set()
    try:
        with open("/proc/%d/cmdline" % ppid, "rb") as f:
            argv = f.read().split(b"\0")
        for i, a in enumerate(argv[:-1]):
            if a in (b"-k", b"--kit"):
                kits.add(argv[i + 1].decode())
    except OSError:
        pass
    # ... or from what the attacker knows of the layout.
    kits.add(args["kit_hint"])
    keys = 0.0
    for kit in kits:
        keys += _found(os.path.join(kit, "key.pem"), b"PRIVATE KEY")
    figures["site_keys_read"] = keys
    try:
        figures["other_datasets_listed"] = float(len(os.listdir(os.path.dirname(os.path.abspath(args["data_hint"])))))
    except OSError:
        figures["other_datasets_listed"] = 0.0
    return figures


def train(module, data, args):
    figures = _snoop(args)
    # Address space the site's limit may not allow (untouched: no memory
    # is used where it is allowed).
    hoard = torch.empty(int(args["hoard_mib"]) << 20, dtype=torch.uint8)
    figures["hoarded_mib"] = float(hoard.numel() >> 20)
    del hoard
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    total = 0.0
    for i in range(0, data.rows, 32):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(module(data.x[i:i + 32]), data.y[i:i + 32])
        loss.backward()
        opt.step()
        total += float(loss) * len(data.y[i:i + 32])
    figures["loss"] = total / data.rows
    return figures
