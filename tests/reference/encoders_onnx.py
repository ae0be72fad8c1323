"""onnxruntime running fengine's ONNX export of an encoder, compared with fengine's encoding.

Usage: encoders_onnx.py <model.onnx> <raw training set> <encoded training set>
       <exported encoder JSON>

Feeds the raw training set's columns to the model (numbers as float64 with NaN for nulls,
categories as strings with "" for nulls) and compares its `encoded` output, column by
column in the export's `outputs` order, with the encoded training set: within 1e-9
(relative, or absolute near 0), the model computing in float64 as fengine does. Where
fengine wrote null (a missing number, out_of_range => 'null') the model gives NaN; rows of
a null category are skipped (ONNX has no null string). Exits 1 naming every difference.
"""

import json
import sys

import numpy as np
import onnxruntime
import pyarrow.parquet as pq

TOLERANCE = 1e-9
model_path, raw_path, encoded_path, export_path = sys.argv[1:5]
raw = pq.read_table(raw_path).to_pandas()
encoded = pq.read_table(encoded_path).to_pandas()
exported = json.load(open(export_path))
session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])

feeds = {}
for transform in exported["transforms"]:
    (kind, params), = transform.items()
    column = params["column"]
    if kind == "one_hot":
        values = raw[column].astype(object).where(raw[column].notna(), "")
        feeds[column] = np.array(values, dtype=object).reshape(-1, 1)
    else:
        feeds[column] = raw[column].astype(float).to_numpy().reshape(-1, 1)
(output,) = session.run(["encoded"], feeds)

problems = []
if output.shape != (len(raw), len(exported["outputs"])):
    problems.append(f"shape {output.shape}, expected {(len(raw), len(exported['outputs']))}")
null_category = {
    name: raw[params["column"]].isna().to_numpy()
    for transform in exported["transforms"]
    for kind, params in transform.items()
    if kind == "one_hot"
    for name in [params["column"]]
}
for index, name in enumerate(exported["outputs"]):
    ours = encoded[name].astype(float).to_numpy()  # nulls as NaN
    theirs = output[:, index]
    keep = np.ones(len(ours), dtype=bool)
    for column, nulls in null_category.items():
        if name.startswith(column + "_"):
            keep = ~nulls
    ours, theirs = ours[keep], theirs[keep]
    both_nan = np.isnan(ours) & np.isnan(theirs)
    near = np.abs(ours - theirs) <= TOLERANCE * np.maximum(1.0, np.abs(ours))
    bad = ~(both_nan | near)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problems.append(
            f"{name}: {int(bad.sum())} differ, first {ours[i]!r} (fengine) vs {theirs[i]!r} (onnx)"
        )

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"onnxruntime agrees on {len(raw)} rows, {output.shape[1]} columns")
