# A job's training script: an MLP for the PyTorch trainer (the contract
# is in plugins/trainer/python/hearth_trainer.py).
import torch


def build(features, classes, args):
    torch.manual_seed(int(args.get("seed", 1)))
    hidden = int(args.get("hidden", 64))
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, classes),
    )


def train(module, data, args):
    opt = torch.optim.SGD(module.parameters(), lr=float(args.get("lr", 0.1)), momentum=0.9)
    gen = torch.Generator().manual_seed(int(args.get("seed", 1)))
    batch = int(args.get("batch", 32))
    total, n = 0.0, 0
    for _ in range(int(args.get("epochs", 1))):
        order = torch.randperm(data.rows, generator=gen)
        for i in range(0, data.rows, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            n += len(idx)
    return {"loss": total / max(n, 1), "batches": float((n + batch - 1) // batch)}
