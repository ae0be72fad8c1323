"""scikit-learn's fit and transform of the data tests/encoders.rs encodes with fengine.

Usage: encoders_sklearn.py <snapshot folder> <raw training set> <encoded training set>
       <exported encoder JSON>

Fits each estimator on the rows fengine fitted on (the snapshot's customers whose id is not
a multiple of 4), compares its fitted attributes with the exported encoder, transforms the
raw training set and compares the result with fengine's encoded training set, all within
1e-9 (relative, or absolute near 0). Exits 1 naming every difference.
"""

import json
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, OneHotEncoder, StandardScaler

TOLERANCE = 1e-9
snapshot, raw_path, encoded_path, export_path = sys.argv[1:5]
fit_rows = pq.read_table(snapshot).to_pandas()
fit_rows = fit_rows[fit_rows["customer_id"] % 4 != 0]
raw = pq.read_table(raw_path).to_pandas()
encoded = pq.read_table(encoded_path).to_pandas()
exported = {
    name: params
    for transform in json.load(open(export_path))["transforms"]
    for name, params in [(list(transform.values())[0]["column"], list(transform.values())[0])]
}
problems = []


def close(what, ours, theirs):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    if ours.shape != theirs.shape:
        problems.append(f"{what}: shape {ours.shape}, scikit-learn {theirs.shape}")
        return
    both_nan = np.isnan(ours) & np.isnan(theirs)
    same_inf = np.isinf(ours) & (ours == theirs)
    near = np.abs(ours - theirs) <= TOLERANCE * np.maximum(1.0, np.abs(theirs))
    bad = ~(both_nan | same_inf | near)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problems.append(
            f"{what}: {int(bad.sum())} differ, first at {i}: {ours.flat[i]!r} vs scikit-learn's "
            f"{theirs.flat[i]!r}"
        )


def edges(values):
    return [float(v) if not isinstance(v, str) else float(v) for v in values]


def column(frame, name):
    return frame[[name]].astype(float).to_numpy()


# standard_scale(amount): NaN and null both missing, as StandardScaler takes NaN.
scaler = StandardScaler().fit(column(fit_rows, "amount"))
close("amount mean", exported["amount"]["mean"], scaler.mean_[0])
close("amount var", exported["amount"]["var"], scaler.var_[0])
close("amount scale", exported["amount"]["scale"], scaler.scale_[0])
close("amount n_samples_seen", exported["amount"]["count"], scaler.n_samples_seen_)
close("amount encoded", encoded["amount"], scaler.transform(column(raw, "amount"))[:, 0])

# standard_scale(constant): a constant column scales by 1.
constant = StandardScaler().fit(column(fit_rows, "constant"))
close("constant scale", exported["constant"]["scale"], constant.scale_[0])
close("constant encoded", encoded["constant"], constant.transform(column(raw, "constant"))[:, 0])

# min_max(n, out_of_range => 'clip'): MinMaxScaler(clip=True).
minmax = MinMaxScaler(clip=True).fit(column(fit_rows, "n"))
close("n data_min", exported["n"]["data_min"], minmax.data_min_[0])
close("n data_max", exported["n"]["data_max"], minmax.data_max_[0])
close("n scale", exported["n"]["scale"], minmax.scale_[0])
close("n min", exported["n"]["min"], minmax.min_[0])
close("n encoded", encoded["n"], minmax.transform(column(raw, "n"))[:, 0])

# log1p(delta, out_of_range => 'null'): numpy's log1p, null at or below -1.
delta = raw["delta"].astype(float).to_numpy()
expected = np.where(delta > -1, np.log1p(np.where(delta > -1, delta, 0.0)), np.nan)
close("delta encoded", encoded["delta"].astype(float), expected)

# one_hot(category, max_categories => 4, unknown => 'infrequent'); nulls stay null, so both
# are fitted and compared on the rows with a category.
categories = fit_rows["category"].dropna().to_frame()
one_hot = OneHotEncoder(
    max_categories=4, handle_unknown="infrequent_if_exist", sparse_output=False
).fit(categories)
if list(one_hot.categories_[0]) != exported["category"]["categories"]:
    problems.append(
        f"categories {exported['category']['categories']} vs {list(one_hot.categories_[0])}"
    )
if list(one_hot.infrequent_categories_[0]) != exported["category"]["infrequent"]:
    problems.append(
        f"infrequent {exported['category']['infrequent']} vs {list(one_hot.infrequent_categories_[0])}"
    )
present = raw["category"].notna().to_numpy()
names = [n.replace("infrequent_sklearn", "infrequent") for n in one_hot.get_feature_names_out()]
theirs = one_hot.transform(raw.loc[present, ["category"]])
for index, name in enumerate(names):
    if name not in encoded:
        problems.append(f"no column {name} in {list(encoded.columns)}")
        continue
    close(f"{name} encoded", encoded.loc[present, name].astype(float), theirs[:, index])
    if encoded.loc[~present, name].notna().any():
        problems.append(f"{name}: a null category is not null")

# bucketize(big, quantiles => 10): KBinsDiscretizer's default quantile method, no subsample.
def kbins(name, bins, strategy, **options):
    fitted = KBinsDiscretizer(
        n_bins=bins, encode="ordinal", strategy=strategy, subsample=None, **options
    ).fit(column(fit_rows, name))
    close(f"{name} bin_edges", edges(exported[name]["bin_edges"]), fitted.bin_edges_[0])
    close(f"{name} encoded", encoded[name], fitted.transform(column(raw, name))[:, 0])


kbins("big", 10, "quantile", quantile_method="averaged_inverted_cdf")
kbins("width", 5, "uniform")
kbins("flat", 3, "quantile", quantile_method="linear")
kbins("count", 4, "quantile", quantile_method="inverted_cdf")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"scikit-learn agrees on {len(raw)} rows")
