# A script that opens files until it cannot: past its open files limit.
import torch


def build(features, classes, args):
    return torch.nn.Linear(features, classes)


def train(module, data, args):
    held = []
    while True:
        held.append(open("/dev/null"))
