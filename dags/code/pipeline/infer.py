"""Predict the test split of the dataset (input0) with the model trained upstream (input1)."""

import json
import os

import numpy as np

data_dir = os.path.join(os.environ["HYPERAI_INPUT0"], "data")
model = np.load(os.path.join(os.environ["HYPERAI_INPUT1"], "model.npz"))
test = np.loadtxt(os.path.join(data_dir, "test.csv"), delimiter=",", skiprows=1)
x = (test[:, :2] - model["mean"]) / model["std"]
predictions = (x @ model["w"] + model["b"]).argmax(axis=1)
accuracy = float(np.mean(predictions == test[:, 2].astype(int)))
np.savetxt("predictions.csv", predictions, fmt="%d", header="label", comments="")
with open("metrics.json", "w") as handle:
    json.dump({"test_accuracy": accuracy, "predictions": len(predictions)}, handle, indent=2)
print(f"wrote {len(predictions)} predictions to /output/predictions.csv; test accuracy {accuracy:.3f}")
