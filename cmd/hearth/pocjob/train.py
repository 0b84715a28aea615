# The training script of the job that `hearth poc --trainer pytorch` submits:
# an MLP in PyTorch. Each site runs it with its own Python and Debian's
# python3-torch, confined, on its own data only (the contract is in
# plugins/trainer/python/hearth_trainer.py). The job's manifest pins this
# file's SHA-256, so a site runs exactly the bytes that were signed.
import torch

_generator = None


def build(features, classes, args):
    """The model. Every site builds the same initial values (one seed)."""
    torch.manual_seed(int(args["seed"]))
    layers, width = [], features
    for hidden in args.get("hidden", [64]):
        layers += [torch.nn.Linear(width, int(hidden)), torch.nn.ReLU()]
        width = int(hidden)
    layers.append(torch.nn.Linear(width, classes))
    return torch.nn.Sequential(*layers)


def train(module, data, args):
    """One round: momentum SGD over the site's training data, in place."""
    global _generator
    if _generator is None:
        _generator = torch.Generator().manual_seed(int(args["seed"]))
    opt = torch.optim.SGD(module.parameters(), lr=float(args["learning_rate"]), momentum=0.9,
                          weight_decay=float(args.get("l2", 0.0)))
    batch = int(args["batch_size"])
    total, n = 0.0, 0
    module.train()
    for _ in range(int(args["epochs"])):
        order = torch.randperm(data.rows, generator=_generator)
        for i in range(0, data.rows, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            n += len(idx)
    return total / max(n, 1)
