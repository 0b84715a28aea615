# A script that spins past its CPU time limit when it trains.
import torch


def build(features, classes, args):
    return torch.nn.Linear(features, classes)


def train(module, data, args):
    n = 0
    while True:
        n += 1
