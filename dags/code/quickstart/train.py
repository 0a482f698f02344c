"""A small real training job: logistic regression with NumPy on a synthetic, separable dataset.

Reads its parameters from --key=value arguments (HyperAI's custom parameters) and from
hyperai_params.json, trains, and writes model.npz and metrics.json into the working directory.
"""

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open("hyperai_params.json") as handle:
        print("parameters file:", json.load(handle))

    rng = np.random.default_rng(args.seed)
    true_w = rng.normal(size=8)
    x = rng.normal(size=(args.samples, 8))
    y = (x @ true_w + 0.1 * rng.normal(size=args.samples) > 0).astype(float)
    split = int(0.8 * args.samples)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]

    w = np.zeros(8)
    b = 0.0
    started = time.time()
    for epoch in range(1, args.epochs + 1):
        p = 1 / (1 + np.exp(-(x_train @ w + b)))
        loss = -np.mean(y_train * np.log(p + 1e-9) + (1 - y_train) * np.log(1 - p + 1e-9))
        w -= args.lr * x_train.T @ (p - y_train) / len(y_train)
        b -= args.lr * float(np.mean(p - y_train))
        if epoch % max(1, args.epochs // 5) == 0:
            print(f"epoch {epoch:4d}  loss {loss:.4f}", flush=True)

    accuracy = float(np.mean(((x_test @ w + b) > 0) == (y_test > 0.5)))
    os.makedirs("model", exist_ok=True)
    np.savez("model/model.npz", w=w, b=b)
    metrics = {
        "accuracy": accuracy,
        "loss": float(loss),
        "epochs": args.epochs,
        "seconds": time.time() - started,
    }
    with open("metrics.json", "w") as handle:
        json.dump(metrics, handle, indent=2)
    print(f"test accuracy {accuracy:.3f}; model saved to {os.getcwd()}/model/model.npz")


if __name__ == "__main__":
    main()
