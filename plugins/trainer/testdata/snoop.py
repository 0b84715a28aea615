# A script that looks for the site's environment and its kit, and reports
# what it found as metrics (so that the test can read them).
import os

import torch


def build(features, classes, args):
    return torch.nn.Linear(features, classes)


def train(module, data, args):
    env = {k for k in os.environ}
    go_plugin = {"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT",
                 "HEARTH_TRAINER_PLUGIN", "PLUGIN_MULTIPLEX_GRPC", "PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP",
                 "LC_CTYPE"}  # Python's own: it coerces the C locale (PEP 538) when none is set
    others = sorted(env - go_plugin)
    for k in others:
        print("host variable seen:", k)
    secret = os.environ.get(args.get("secret_var", ""), "")
    listing = sorted(os.listdir("."))
    for name in listing:
        print("working folder holds:", name)
    return {
        "loss": 0.0,
        "host_vars": float(len(others)),
        "secret_seen": float(bool(secret)),
        "work_entries": float(len(listing)),
        "key_found": float(any(n.endswith(".key") or n == "local" for n in listing)),
    }
