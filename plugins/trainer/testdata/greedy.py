# A script that allocates far beyond its memory limit when it trains.
import torch


def build(features, classes, args):
    # One line per process that built the module (the test counts them:
    # the working folder outlives a restart).
    with open("builds", "a") as f:
        f.write("built\n")
    return torch.nn.Linear(features, classes)


def train(module, data, args):
    hog = torch.ones(8 << 30, dtype=torch.uint8)  # 8 GiB
    return float(hog.sum())
