"""Train a softmax classifier on the dataset bound at /hyperai/input/input0; save the model."""

import argparse
import json
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=300)
parser.add_argument("--lr", type=float, default=0.5)
args = parser.parse_args()

data_dir = os.path.join(os.environ.get("HYPERAI_INPUT0", "/hyperai/input/input0"), "data")
train = np.loadtxt(os.path.join(data_dir, "train.csv"), delimiter=",", skiprows=1)
x, y = train[:, :2], train[:, 2].astype(int)
mean, std = x.mean(axis=0), x.std(axis=0)
x = (x - mean) / std
w, b = np.zeros((2, 3)), np.zeros(3)
onehot = np.eye(3)[y]
for epoch in range(1, args.epochs + 1):
    logits = x @ w + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    w -= args.lr * x.T @ (p - onehot) / len(x)
    b -= args.lr * (p - onehot).mean(axis=0)
    if epoch % max(1, args.epochs // 3) == 0:
        loss = -np.mean(np.log(p[np.arange(len(y)), y] + 1e-9))
        print(f"epoch {epoch:4d}  loss {loss:.4f}", flush=True)
accuracy = float(np.mean((x @ w + b).argmax(axis=1) == y))
np.savez("model.npz", w=w, b=b, mean=mean, std=std)
with open("metrics.json", "w") as handle:
    json.dump({"train_accuracy": accuracy, "epochs": args.epochs}, handle, indent=2)
print(f"train accuracy {accuracy:.3f}; model saved to model.npz")
