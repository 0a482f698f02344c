"""Generate a small 3-class dataset (Gaussian blobs) into data/ of the working directory."""

import argparse
import os

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=3000)
parser.add_argument("--seed", type=int, default=7)
args = parser.parse_args()

rng = np.random.default_rng(args.seed)
centers = np.array([[0.0, 0.0], [3.0, 3.0], [-3.0, 3.0]])
labels = rng.integers(0, 3, size=args.samples)
points = centers[labels] + rng.normal(scale=1.0, size=(args.samples, 2))
rows = np.column_stack([points, labels])
split = int(0.8 * args.samples)
os.makedirs("data", exist_ok=True)
np.savetxt("data/train.csv", rows[:split], delimiter=",", header="x,y,label", comments="", fmt="%.6f")
np.savetxt("data/test.csv", rows[split:], delimiter=",", header="x,y,label", comments="", fmt="%.6f")
print(f"wrote {split} training and {args.samples - split} test rows to data/")
